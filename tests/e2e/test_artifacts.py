"""spec.artifacts on the real-API-server tier (docs/cluster.md, "Artifacts"): trial
outputs on a PersistentVolumeClaim (a hostPath PersistentVolume, as a PVC-like host
folder) and in an S3 object store (moto's S3 server on this machine's loopback, relayed
into each pod by the node stand-in like the API server); after the experiment succeeds
`kubenas model` downloads the best model and plain torch.jit.load runs it; with
`trial.export.formats: [torchscript, onnx]` `kubenas model --format onnx` downloads the
ONNX file, and onnxruntime predicts what TorchScript predicts. `kubenas logs` reads a
trial's pod log through the API server. Also: the admission policy checks the claim and
the credentials Secret against the author."""
from __future__ import annotations

import json
import subprocess
import sys

from kubenas.cli import main as kubenas
from tests.e2e.test_admission import EXPERIMENTS, accepted, grant, refused
from tests.e2e.test_cluster import apply, experiment, finish
from tests.waiting import wait_until

BUCKET = "kubenas-e2e"


def small(name: str, artifacts: dict, formats: list[str] | None = None) -> dict:
    """2 trials of 4 epochs that keep their outputs in ``artifacts`` (and export ``formats``)."""
    body = experiment(name, maxTrials=2, parallelTrials=2)
    body["spec"]["trial"]["training"]["epochs"] = 4
    body["spec"]["artifacts"] = artifacts
    if formats:
        body["spec"]["trial"]["export"] = {"formats": formats}
    return body


BOTH_FORMATS = ["torchscript", "onnx"]


def digits_images():
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    return torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1), digits.target


def predicts_digits(path) -> float:
    """Accuracy of the downloaded model on the digits images, loaded with torch only."""
    import torch

    x, target = digits_images()
    model = torch.jit.load(str(path))
    with torch.no_grad():
        predicted = model(x).argmax(1).numpy()
    return float((predicted == target).mean())


def onnx_agrees_with_torchscript(onnx_path, torchscript_path) -> None:
    """onnxruntime's logits equal TorchScript's on every digits image (the tolerance of
    tests/trainer/test_onnx.py), so both predict the same classes."""
    import numpy as np
    import onnxruntime
    import torch

    x, _ = digits_images()
    with torch.no_grad():
        expected = torch.jit.load(str(torchscript_path))(x).numpy()
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-4), float(np.abs(got - expected).max())
    assert (got.argmax(1) == expected.argmax(1)).all()


def claim(cluster, namespace: str, name: str, folder) -> None:
    """A PersistentVolumeClaim bound to a hostPath PersistentVolume on ``folder`` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    pv = f"{namespace}-{name}"
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
         "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "manual",
                  "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(folder), "type": "Directory"},
                  "claimRef": {"namespace": namespace, "name": name}}},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
         "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "manual", "volumeName": pv,
                  "resources": {"requests": {"storage": "1Gi"}}}}]}))


def test_artifacts_on_a_volume_and_kubenas_model(local_only, installed, namespace, tmp_path):
    folder = tmp_path / "volume"
    claim(installed, namespace, "results", folder)
    apply(installed, namespace, small("e2e-pvc", {"persistentVolumeClaim": {"claimName": "results", "path": "nas"}},
                                      BOTH_FORMATS))
    exp = finish(installed, namespace, "e2e-pvc")
    best = exp["status"]["bestTrial"]
    own = f"e2e-pvc_{exp['metadata']['uid']}"  # the experiment's folder: its name and uid
    assert best["model"] == f"pvc://results/nas/{own}/{best['name']}/model.pt", best
    for trial in ("e2e-pvc-0", "e2e-pvc-1"):  # every succeeded trial: result, history and model
        saved = folder / "nas" / own / trial
        result = json.loads((saved / "result.json").read_text())
        assert result["status"] == "Succeeded" and result["reward"] > 0, result
        assert len((saved / "history.jsonl").read_text().splitlines()) == 4
        assert (saved / "model.pt").stat().st_size > 0 and (saved / "model.onnx").stat().st_size > 0
    out = tmp_path / "best_model.pt"
    assert kubenas(["model", "e2e-pvc", "-n", namespace, "--kubeconfig", installed.kubeconfig,
                    "--volume-dir", str(folder), "-o", str(out)]) == 0
    assert predicts_digits(out) >= best["reward"] - 0.05  # the best trial's model, as measured
    onnx_out = tmp_path / "best_model.onnx"
    assert kubenas(["model", "e2e-pvc", "-n", namespace, "--kubeconfig", installed.kubeconfig,
                    "--volume-dir", str(folder), "--format", "onnx", "-o", str(onnx_out)]) == 0
    onnx_agrees_with_torchscript(onnx_out, out)

    # kubenas logs: the trial pod's log, through the API server's pods/log (the node
    # stand-in serves it as a kubelet does).
    logs = subprocess.run([sys.executable, "-m", "kubenas.cli", "logs", best["name"], "-n", namespace,
                           "--kubeconfig", str(installed.kubeconfig)], capture_output=True, text=True, timeout=120)
    assert logs.returncode == 0, logs.stderr
    assert f"kubenas-train: {namespace}/{best['name']} Succeeded" in logs.stdout, logs.stdout[-2000:]


def test_artifacts_in_an_object_store_keep_the_top_model(installed, namespace, s3_store, tmp_path):
    fs = s3_store
    fs.mkdir(BUCKET)
    apply(installed, namespace, small("e2e-s3", {"url": f"s3://{BUCKET}/runs", "credentialsSecret": "s3-creds",
                                                 "models": "top", "topK": 1}, BOTH_FORMATS))
    exp = finish(installed, namespace, "e2e-s3")
    best = exp["status"]["bestTrial"]
    own = f"{BUCKET}/runs/e2e-s3_{exp['metadata']['uid']}"  # the experiment's folder: its name and uid
    assert best["model"] == f"s3://{own}/{best['name']}/model.pt", best
    results = sorted(fs.glob(f"{own}/*/result.json"))
    assert len(results) == 2, results
    models = sorted(fs.glob(f"{own}/*/model.pt"))
    # topK 1: only the best trial's model remains (two trials may finish at the same
    # moment and both keep theirs until a later one decides; here the operator's best
    # must be among them and at most two are left).
    assert f"{own}/{best['name']}/model.pt" in models and len(models) <= 2, models
    out = tmp_path / "best.pt"
    assert kubenas(["model", "e2e-s3", "-n", namespace, "--kubeconfig", installed.kubeconfig, "-o", str(out)]) == 0
    assert predicts_digits(out) >= best["reward"] - 0.05  # the best trial's model, as measured
    onnx_out = tmp_path / "best.onnx"
    assert kubenas(["model", "e2e-s3", "-n", namespace, "--kubeconfig", installed.kubeconfig, "--format", "onnx",
                    "-o", str(onnx_out)]) == 0
    onnx_agrees_with_torchscript(onnx_out, out)


def test_admission_checks_the_claim_and_the_secret_against_the_author(installed, namespace):
    grant(installed, namespace, "experiments", "alice", [EXPERIMENTS])

    def try_apply(artifacts):
        return installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", user="alice", check=False,
                                 input=json.dumps(small("e2e-adm", artifacts)))

    on_claim = {"persistentVolumeClaim": {"claimName": "team-results"}}
    refused(try_apply(on_claim), "spec.artifacts.persistentVolumeClaim.claimName",
            "may not get PersistentVolumeClaim team-results")
    in_store = {"url": "s3://bucket/x", "credentialsSecret": "team-s3"}
    refused(try_apply(in_store), "spec.artifacts.credentialsSecret", "may not get Secret team-s3")
    grant(installed, namespace, "artifacts", "alice", [
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "resourceNames": ["team-results"],
         "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["team-s3"], "verbs": ["get"]}])
    accepted(try_apply(on_claim))
    accepted(try_apply(in_store))
    # The CRD refuses a path that climbs out of the claim's folder.
    bad = installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", check=False,
                            input=json.dumps(small("e2e-adm", {"persistentVolumeClaim": {"claimName": "x",
                                                                                       "path": "a/../../b"}})))
    refused(bad, "spec.artifacts.persistentVolumeClaim.path")


def test_nested_experiment_folders_stay_apart(local_only, installed, namespace, tmp_path):
    """The attack: experiment `q` keeps its trial `q-0` in <claim>/p/q/q-0, and experiment
    `q-0` with `path: p/q` got <claim>/p/q/q-0 as its whole folder: its trial pods mounted
    q's trial's folder, could write the model.pt the operator believes for q, and q's
    results became q-0's. Each experiment's folder is now <name>_<uid>: disjoint."""
    folder = tmp_path / "volume"
    claim(installed, namespace, "shared", folder)
    bodies = {"q": small("q", {"persistentVolumeClaim": {"claimName": "shared", "path": "p"}}),
              "q-0": small("q-0", {"persistentVolumeClaim": {"claimName": "shared", "path": "p/q"}})}
    for body in bodies.values():
        body["spec"]["budget"].update(maxTrials=1, parallelTrials=1)
        body["spec"]["trial"]["training"]["epochs"] = 2
        apply(installed, namespace, body)
    exps = {name: finish(installed, namespace, name) for name in bodies}

    def sub_path(job: str) -> str:
        pod = installed.get_json("job", job, "-n", namespace)["spec"]["template"]["spec"]
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kubenas-artifacts"]
        return mount["subPath"]

    mounted = {"q": sub_path("q-0"), "q-0": sub_path("q-0-0")}  # each trial pod's view of the claim
    assert mounted == {"q": f"p/q_{exps['q']['metadata']['uid']}",
                       "q-0": f"p/q/q-0_{exps['q-0']['metadata']['uid']}"}, mounted
    q_trial = f"{mounted['q']}/q-0"
    for a, b in ((mounted["q-0"], q_trial), (mounted["q-0"], mounted["q"])):
        assert not f"{a}/".startswith(f"{b}/") and not f"{b}/".startswith(f"{a}/"), (a, b)
    # What each wrote is in its own folder only.
    files = {name: sorted(str(p.relative_to(folder / path)) for p in (folder / path).rglob("*") if p.is_file())
             for name, path in mounted.items()}
    assert files["q"] and all(f.startswith("q-0/") and f.count("/") == 1 for f in files["q"]), files
    assert files["q-0"] and all(f.startswith("q-0-0/") and f.count("/") == 1 for f in files["q-0"]), files
    # The operator believes q's model only in q's folder, never in q-0's.
    model = exps["q"]["status"]["bestTrial"]["model"]
    assert model == f"pvc://shared/{q_trial}/model.pt", model
    assert not model.startswith(f"pvc://shared/{mounted['q-0']}/")


def test_an_object_store_without_a_credentials_secret_needs_the_admins_allow_ambient_credentials(installed,
                                                                                                namespace):
    """`url: s3://any-bucket` without credentialsSecret: the trial pods would use whatever
    credentials the node or pod has (an instance profile, Workload Identity). Refused at
    `kubectl apply`, naming the key that allows it; allowed once the admin sets it."""
    grant(installed, namespace, "experiments", "alice", [EXPERIMENTS])

    def try_apply():
        return installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", user="alice", check=False,
                                 input=json.dumps(small("e2e-ambient", {"url": "s3://any-bucket"})))

    refused(try_apply(), "spec.artifacts.credentialsSecret: s3://any-bucket without credentialsSecret",
            "ambient credentials", 'allowAmbientCredentials: "true" in ConfigMap kubenas-system/kubenas-admission-policy')
    installed.kubectl("patch", "configmap", "kubenas-admission-policy", "-n", "kubenas-system", "--type=merge",
                      "-p", json.dumps({"data": {"allowAmbientCredentials": "true"}}))
    try:
        wait_until(lambda: try_apply().returncode == 0, 30, "the admin's allowAmbientCredentials to take effect")
    finally:
        installed.kubectl("patch", "configmap", "kubenas-admission-policy", "-n", "kubenas-system", "--type=merge",
                          "-p", json.dumps({"data": {"allowAmbientCredentials": "false"}}))
    wait_until(lambda: try_apply().returncode != 0, 30, "the policy to be restored")
