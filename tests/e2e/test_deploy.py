"""spec.deploy on the real-API-server tier (docs/serving.md, "On a cluster"): without
KServe the operator serves the best model with a Deployment + Service running
``kubenas serve`` on the model folder of the artifacts claim, mounted read-only; the
serving pod (run by the node stand-in, reached at its pod IP) answers Open Inference
Protocol requests, and its predictions over the digits test split score the best
trial's reported test accuracy. Rolling the Deployment to another trial's model drops no
request of a client that keeps sending through the Service's endpoints (ServiceRouter:
the stand-in routes no Service) and the answers switch to the new model."""
from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request

from tests.e2e.test_artifacts import BOTH_FORMATS, claim, small
from tests.e2e.test_cluster import apply, finish
from tests.background import Background
from tests.waiting import wait_until

SERVE_PORT = 8080


def digits_test_split():
    """The digits test split as the trainer holds it out (kubenas_trainer.data), in [0, 1]."""
    import numpy as np
    from sklearn.datasets import load_digits

    from kubenas_trainer.data import DIGITS_TEST_FRACTION, DIGITS_TEST_SEED
    from kubenas_trainer.data.splits import stratified_split

    bunch = load_digits()
    _, test = stratified_split(bunch.target.astype(np.int64), DIGITS_TEST_FRACTION,
                               np.random.RandomState(DIGITS_TEST_SEED))
    return (bunch.images[test][:, None] / 16.0).astype(np.float32), bunch.target[test]


def http(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError as err:
        return 0, repr(err)


def serving_pod(cluster, namespace: str, experiment: str) -> dict | None:
    pods = cluster.get_json("pods", "-n", namespace, "-l",
                            f"kubenas.io/experiment={experiment},app.kubernetes.io/component=serving")["items"]
    running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running" and p["status"].get("podIP")
               and not p["metadata"].get("deletionTimestamp")]
    return running[0] if running else None


def deployed(cluster, namespace: str, experiment: str, reasons=("Deployed",), trial: str | None = None) -> dict:
    """``experiment``'s status.deployment once its reason is one of ``reasons`` (and it
    serves ``trial``, when given)."""
    def shown():
        status = cluster.get_json("nasexperiment", experiment, "-n", namespace).get("status") or {}
        deployment = status.get("deployment") or {}
        return deployment if deployment.get("reason") in reasons and trial in (None, deployment.get("trial")) else None

    return wait_until(shown, 120, f"status.deployment of {experiment} ({'/'.join(reasons)}"
                      f"{f', serving {trial}' if trial else ''})", interval=2)


def serves_best(cluster, namespace: str, experiment: str, best: dict) -> tuple[dict, dict]:
    """The running serving pod of ``experiment`` and its model's metadata, once the pod is
    ready and serves ``best``: its predictions over the digits test split score the best
    trial's reported test accuracy."""
    pod = wait_until(lambda: serving_pod(cluster, namespace, experiment), 180, "a running serving pod", interval=2)
    base = f"http://{pod['status']['podIP']}:{SERVE_PORT}"
    wait_until(lambda: http(f"{base}/v2/health/ready")[0] == 200, 180, "the serving pod to be ready", interval=2)
    code, meta = http(f"{base}/v2/models/{experiment}")
    assert code == 200 and meta["versions"] == [best["name"]], meta
    x, y = digits_test_split()
    code, answer = http(f"{base}/v2/models/{experiment}/infer", {"inputs": [
        {"name": meta["inputs"][0]["name"], "shape": list(x.shape), "datatype": "FP32", "data": x.ravel().tolist()}]})
    assert code == 200, answer
    predicted = next(o for o in answer["outputs"] if o["name"] == "predicted_class")["data"]
    accuracy = sum(int(p) == int(t) for p, t in zip(predicted, y)) / len(y)
    assert abs(accuracy - best["metrics"]["testAccuracy"]) <= 0.005, (accuracy, best["metrics"])
    return pod, meta


class ServiceRouter(Background):
    """A client that sends to a Service as kube-proxy would route it, from the API server's
    view of the pods (the node stand-in routes no Service: loopback pod IPs are refused in
    EndpointSlices): each request goes, on a new connection, to the next of the serving
    pods that are Ready and not terminating (an EndpointSlice's ready endpoints; the
    stand-in runs the readiness probe, tests/realtier/probes.py), from a pod list read
    every ``refresh`` seconds. It sends one image after another until stopped, keeping
    every answer's model_version and every failure."""

    def __init__(self, cluster, namespace: str, experiment: str, image, refresh: float = 0.25):
        self.cluster, self.namespace, self.experiment, self.image = cluster, namespace, experiment, image
        self.refresh = refresh
        self.answers: list[tuple[float, str, str]] = []  # (time, pod IP, model_version)
        self.failures: list[tuple[float, str, str]] = []  # (time, pod IP, what)
        self.no_endpoint = 0.0                           # seconds with no ready endpoint
        self._endpoints: list[str] = []
        super().__init__(self._watch, self._send)

    def ready_endpoints(self) -> list[str]:
        pods = self.cluster.get_json("pods", "-n", self.namespace, "-l",
                                     f"kubenas.io/experiment={self.experiment},app.kubernetes.io/component=serving")
        ready = []
        for pod in pods["items"]:
            conditions = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
            if conditions.get("Ready") == "True" and pod["status"].get("podIP") and \
                    not pod["metadata"].get("deletionTimestamp"):
                ready.append(pod["status"]["podIP"])
        return sorted(ready)

    def _watch(self):
        while not self.stopping.is_set():
            try:
                self._endpoints = self.ready_endpoints()
            except Exception:  # noqa: BLE001 - a slow API server: keep the last view, as kube-proxy does
                pass
            self.stopping.wait(self.refresh)

    def _send(self):
        body = {"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32",
                            "data": self.image.ravel().tolist()}], "outputs": [{"name": "predicted_class"}]}
        turn = itertools.count()
        while not self.stopping.is_set():
            endpoints = self._endpoints
            if not endpoints:
                self.no_endpoint += 0.05
                time.sleep(0.05)
                continue
            ip = endpoints[next(turn) % len(endpoints)]
            code, answer = http(f"http://{ip}:{SERVE_PORT}/v2/models/{self.experiment}/infer", body)
            if code == 200:
                self.answers.append((time.monotonic(), ip, answer["model_version"]))
            else:
                self.failures.append((time.monotonic(), ip, f"{code}: {answer}"))

    join_seconds = 60.0

    def __enter__(self):
        self._endpoints = self.ready_endpoints()
        return super().__enter__()

    def versions(self) -> list[str]:
        """The model versions answered, each run of equal ones once (in order)."""
        return [version for version, _ in itertools.groupby(v for _, _, v in self.answers)]


def test_deploy_serves_the_best_model_from_the_volume(local_only, installed, namespace, tmp_path):
    claim(installed, namespace, "models", tmp_path / "volume")
    body = small("e2e-deploy", {"persistentVolumeClaim": {"claimName": "models", "path": "nas"}}, BOTH_FORMATS)
    body["spec"]["deploy"] = {"maxBatchSize": 64}  # auto: no KServe here, so a Deployment
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-deploy")
    best = exp["status"]["bestTrial"]
    shown = deployed(installed, namespace, "e2e-deploy")
    assert shown["kind"] == "Deployment" and shown["name"] == "e2e-deploy-serve", shown
    assert shown["trial"] == best["name"] and shown["model"] == best["model"], shown
    assert shown["url"] == f"http://e2e-deploy-serve.{namespace}.svc.cluster.local:{SERVE_PORT}", shown
    dep = installed.get_json("deployment", "e2e-deploy-serve", "-n", namespace)
    pod_spec = dep["spec"]["template"]["spec"]
    assert pod_spec["automountServiceAccountToken"] is False
    assert dep["metadata"].get("ownerReferences") in (None, []), "deleteWithExperiment unset: not owned"
    installed.get_json("service", "e2e-deploy-serve", "-n", namespace)
    pod, _ = serves_best(installed, namespace, "e2e-deploy", best)

    # kubenas deploy --trial: another of the experiment's models replaces the served one
    # with a rolling update of the same Deployment (a new pod template), while a client keeps
    # sending through the Service's ready endpoints: no request fails, answers switch.
    template = dep["spec"]["template"]["spec"]["containers"][0]
    assert template["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", template
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, dep["spec"]["strategy"]
    assert "--drain-seconds" in template["command"], template["command"]
    from kubenas.cli import main as kubenas

    other = next(t for t in ("e2e-deploy-0", "e2e-deploy-1") if t != best["name"])
    old_ip = pod["status"]["podIP"]
    with ServiceRouter(installed, namespace, "e2e-deploy", digits_test_split()[0][0]) as client:
        wait_until(lambda: len(client.answers) >= 5, 60, "the client's first answers", interval=0.2)
        assert kubenas(["deploy", "e2e-deploy", "--trial", other, "-n", namespace,
                        "--kubeconfig", str(installed.kubeconfig)]) == 0
        shown = deployed(installed, namespace, "e2e-deploy", trial=other)
        # the roll is over when the old pod is gone and the client has been answered by the new one since
        wait_until(lambda: serving_pod(installed, namespace, "e2e-deploy") is not None and
                   old_ip not in {p["status"].get("podIP") for p in installed.get_json(
                       "pods", "-n", namespace, "-l", "kubenas.io/experiment=e2e-deploy,"
                       "app.kubernetes.io/component=serving")["items"]}, 240, "the old serving pod to go",
                   interval=1)
        done = len(client.answers)
        wait_until(lambda: len(client.answers) >= done + 20, 60, "answers after the roll", interval=0.2)
    print(f"roll: {len(client.answers)} answers, {len(client.failures)} failed, answered by "
          f"{sorted({ip for _, ip, _ in client.answers})}, versions in order {client.versions()}, "
          f"{client.no_endpoint:.2f} s without a ready endpoint")
    assert client.failures == [], client.failures[:5]
    assert client.versions()[0] == best["name"] and client.versions()[-1] == other, client.versions()
    assert all(v == other for _, _, v in client.answers[done:]), "the old model answered after its pod went"
    assert {ip for _, ip, _ in client.answers} - {old_ip}, "no answer came from a new pod"
    assert shown["model"].endswith(f"/{other}/model.pt"), shown
    rolled = installed.get_json("deployment", "e2e-deploy-serve", "-n", namespace)
    assert rolled["metadata"]["uid"] == dep["metadata"]["uid"], "the same Deployment, rolled, not a new one"
    assert rolled["spec"]["template"]["metadata"]["annotations"]["kubenas.io/trial"] == other


def install_kserve_crd(cluster) -> None:
    """KServe's own InferenceService CRD (hack/kserve/crd.sh: its Go module, pinned version)."""
    import subprocess

    from tests.e2e.test_cluster import REPO

    path = subprocess.run(["bash", str(REPO / "hack" / "kserve" / "crd.sh")], check=True, capture_output=True,
                          text=True, timeout=600).stdout.strip().splitlines()[-1]
    # server-side: the CRD (~1 MB) is too large for client-side apply's annotation
    cluster.kubectl("apply", "--server-side", "-f", path)
    wait_until(lambda: "serving.kserve.io/v1beta1" in cluster.kubectl("api-versions").stdout, 60,
               "the API server to serve serving.kserve.io/v1beta1")


def test_deploy_creates_an_inference_service_that_kserves_crd_accepts(installed, namespace, tmp_path):
    install_kserve_crd(installed)
    try:
        claim(installed, namespace, "models", tmp_path / "volume")
        body = small("e2e-isvc", {"persistentVolumeClaim": {"claimName": "models", "path": "nas"}}, BOTH_FORMATS)
        body["spec"]["deploy"] = {"replicas": 2, "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "2Gi"}}}
        apply(installed, namespace, body)
        exp = finish(installed, namespace, "e2e-isvc")
        best = exp["status"]["bestTrial"]
        # DeployRefused carries the API server's message when KServe's schema refuses the object
        deployment = deployed(installed, namespace, "e2e-isvc", ("Deployed", "DeployRefused"))
        assert deployment["reason"] == "Deployed" and deployment["kind"] == "InferenceService", deployment
        isvc = installed.get_json("inferenceservices.serving.kserve.io", "e2e-isvc", "-n", namespace)
        model = isvc["spec"]["predictor"]["model"]
        assert model["modelFormat"]["name"] == "onnx" and model["protocolVersion"] == "v2", model
        assert model["storageUri"] == best["model"].rpartition("/")[0], (model, best["model"])
        assert model["storageUri"].startswith("pvc://models/nas/e2e-isvc_"), model
        assert model["resources"]["limits"]["nvidia.com/gpu"] == "1", model
        assert isvc["spec"]["predictor"]["minReplicas"] == 2
        assert deployment["url"] == f"http://e2e-isvc-predictor.{namespace}.svc.cluster.local", deployment
        # The installed CRD's schema does judge: the same object with a field of the wrong
        # type is refused (so a refusal of the operator's object would have shown above).
        broken = {**isvc, "metadata": {"name": "e2e-isvc-broken", "namespace": namespace},
                  "spec": {"predictor": {**isvc["spec"]["predictor"], "minReplicas": "two"}}}
        done = installed.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(broken), check=False)
        assert done.returncode != 0 and "minReplicas" in done.stderr, done.stderr
    finally:
        installed.kubectl("delete", "crd", "inferenceservices.serving.kserve.io", "--wait=false", check=False)


def test_admission_checks_the_authors_right_to_create_the_serving_kind(installed, namespace):
    """The attack: alice may create experiments but not Deployments; spec.deploy would
    have the operator create one for her. Refused, naming the field and the fix."""
    from tests.e2e.test_admission import EXPERIMENTS, accepted, grant, refused

    grant(installed, namespace, "experiments", "alice", [
        EXPERIMENTS, {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get"]}])
    body = small("e2e-deploy-adm", {"persistentVolumeClaim": {"claimName": "models"}})

    def try_apply(deploy):
        body["spec"]["deploy"] = deploy
        return installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", user="alice", check=False,
                                 input=json.dumps(body))

    refused(try_apply({"kind": "Deployment"}), "spec.deploy", "who may not create Deployments")
    grant(installed, namespace, "serving", "alice", [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create"]}])
    accepted(try_apply({"kind": "Deployment"}))
    # auto may become an InferenceService, which alice may not create
    refused(try_apply({}), "spec.deploy", "may not create Deployments and InferenceServices")
