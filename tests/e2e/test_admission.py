"""The admission policies (deploy/admission.yaml, docs/security.md) on a real API server:
an experiment author gets no more power through kubenas than they hold themselves, the
accepted spec cannot be forged, and a trial's result can only come from its own pod.

Tenants are the control plane's users ``alice`` (granted a Role per test) and the
ServiceAccount tokens of real trainer pods (TokenRequest bound to the pod, as the
kubelet mints them)."""
from __future__ import annotations

import contextlib
import json
import uuid

import pytest
import yaml

from tests.e2e.test_cluster import apply, experiment
from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until

GROUP, VERSION = "kubenas.io", "v1alpha1"
POLICY = "kubenas-admission-policy"
TERMINAL = ("Succeeded", "Failed")


# ---------------------------------------------------------------------------- helpers

def grant(cluster, namespace: str, name: str, user: str, rules: list[dict]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": name, "namespace": namespace}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}]}))


EXPERIMENTS = {"apiGroups": [GROUP], "resources": ["nasexperiments"], "verbs": ["create", "get", "list"]}


@contextlib.contextmanager
def tenant_namespace(cluster, prefix: str, user: str = "alice"):
    """A namespace of its own for the ``with`` block where ``user`` may only create, get and
    list NASExperiments."""
    with cluster.own_namespace(prefix) as namespace:
        grant(cluster, namespace, "experiments", user, [EXPERIMENTS])
        yield namespace


def with_template(name: str, **template) -> dict:
    body = experiment(name, maxTrials=1, parallelTrials=1)
    body["spec"]["trial"]["template"].update(template)
    return body


def refused(done, *fragments: str) -> None:
    assert done.returncode != 0, f"accepted, should have been refused:\n{done.stdout}"
    for fragment in fragments:
        assert fragment in done.stderr, f"{fragment!r} not in the refusal:\n{done.stderr}"


def accepted(done) -> None:
    assert done.returncode == 0, f"refused, should have been accepted:\n{done.stderr}"


def api_with_token(cluster, token: str):
    """A CustomObjectsApi that authenticates with ``token`` only (as a pod would)."""
    from kubernetes import client, config

    api = config.new_client_from_config(cluster.kubeconfig)
    conf = api.configuration
    conf.refresh_api_key_hook = None  # else the kubeconfig's own credentials come back
    conf.api_key = {"authorization": f"Bearer {token}"}
    conf.api_key_prefix = {}
    conf.cert_file = conf.key_file = None
    return client.CustomObjectsApi(api)


def status_write(api, namespace: str, trial: str, status: dict) -> tuple[int, str]:
    """(HTTP status, message) of a status patch as the trainer sends it."""
    from kubernetes.client.exceptions import ApiException

    try:
        api.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "nastrials", trial, {"status": status})
        return 200, ""
    except ApiException as err:
        try:
            return err.status, json.loads(err.body).get("message", "")
        except (TypeError, ValueError):
            return err.status, str(err.body)


def bound_token(cluster, namespace: str, service_account: str, pod: dict) -> str:
    return cluster.kubectl("create", "token", service_account, "-n", namespace, "--duration=10m",
                           "--bound-object-kind", "Pod", "--bound-object-name", pod["metadata"]["name"],
                           "--bound-object-uid", pod["metadata"]["uid"]).stdout.strip()


def stand_in_pod(cluster, namespace: str, name: str, service_account: str) -> dict:
    """A pod that is never scheduled (a scheduling gate), to bind a token to: whoever may
    create pods in a namespace may mint such tokens (docs/security.md)."""
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"serviceAccountName": service_account, "schedulingGates": [{"name": "kubenas.io/never"}],
                 "containers": [{"name": "c", "image": "ghcr.io/kubenas/kubenas-trainer:0.1.0"}]}}))
    return cluster.get_json("pod", name, "-n", namespace)


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def tenant(installed):
    """A namespace where alice may only create, get and list NASExperiments."""
    with tenant_namespace(installed, "kubenas-adm") as namespace:
        yield namespace


@pytest.fixture(scope="module")
def ran(installed):
    """A namespace where two one-trial experiments, ea and eb, ran to the end: real
    trainer pods (kept by the node after they finish) and real NASTrials."""
    with installed.own_namespace("kubenas-adm-run") as namespace:
        for name in ("ea", "eb"):
            apply(installed, namespace, experiment(name, maxTrials=1, parallelTrials=1))
        wait_until(lambda: all(finished(installed, namespace, n) for n in ("ea", "eb")),
                   600, "experiments ea and eb to finish", interval=2)
        yield namespace


def finished(cluster, namespace: str, name: str) -> bool:
    done = cluster.kubectl("get", "nasexperiment", name, "-n", namespace, "-o", "jsonpath={.status.phase}",
                           check=False)  # a loaded machine may time out a read: ask again
    return done.returncode == 0 and done.stdout.strip() in TERMINAL + ("Stopped",)


def trainer_pod(cluster, namespace: str, trial: str) -> dict:
    pods = cluster.pods(namespace, f"job-name={trial}")
    assert pods, f"no pod of Job {trial}"
    return pods[0]


# ---------------------------------------------------------------- 1. who asks matters

def test_create_nasexperiments_alone_runs_the_plain_experiment(installed, tenant):
    """The baseline the cluster admin allows to everybody needs no other right."""
    accepted(installed.kubectl("apply", "--dry-run=server", "-n", tenant, "-f", "-", user="alice", check=False,
                               input=json.dumps(experiment("plain", maxTrials=1, parallelTrials=1))))


WHERE = f"ConfigMap {OPERATOR_NS}/{POLICY}"
CASES = {
    "host-path": ({"volumes": [{"name": "host", "hostPath": {"path": "/etc"}}],
                   "volumeMounts": [{"name": "host", "mountPath": "/host"}]},
                  ["spec.trial.template.volumes[name=host] uses hostPath", "not allowed", "volumeTypes", WHERE]),
    "foreign-service-account": ({"serviceAccountName": "deployer"},
                                ["spec.trial.template.serviceAccountName", "not as deployer",
                                 "may create pods in namespace", "remove the field"]),
    "secret-volume": ({"volumes": [{"name": "creds", "secret": {"secretName": "db"}}],
                       "volumeMounts": [{"name": "creds", "mountPath": "/creds"}]},
                      ["spec.trial.template.volumes[name=creds].secret (Secret db)", "(alice) may not get",
                       "ask a namespace admin for get on them, or remove them"]),
    "secret-env": ({"env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]},
                   ["spec.trial.template.env[name=TOKEN].valueFrom.secretKeyRef (Secret db)", "may not get"]),
    "pull-secret": ({"imagePullSecrets": [{"name": "registry"}]},
                    ["spec.trial.template.imagePullSecrets[name=registry] (Secret registry)", "may not get"]),
    "config-map": ({"volumes": [{"name": "cfg", "configMap": {"name": "settings"}}]},
                   ["spec.trial.template.volumes[name=cfg].configMap (ConfigMap settings)", "may not get"]),
    "claim": ({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}]},
              ["spec.trial.template.volumes[name=data].persistentVolumeClaim (PersistentVolumeClaim shared)",
               "may not get"]),
    "denied-priority-class": ({"priorityClassName": "system-node-critical"},
                              ["spec.trial.template.priorityClassName: system-node-critical is not allowed",
                               "use verb on priorityclasses.scheduling.k8s.io/system-node-critical"]),
    "trainer-image": ({"image": "docker.io/library/python:3.12"},
                      ["spec.trial.template.image: docker.io/library/python:3.12 is not an allowed trainer image",
                       "ghcr.io/kubenas/", "trainerImagePrefixes"]),
    "every-taint": ({"tolerations": [{"operator": "Exists"}]},
                    ["spec.trial.template.tolerations: (no key: every taint) may not be tolerated", "tolerationKeys"]),
    "ld-preload": ({"env": [{"name": "LD_PRELOAD", "value": "/data/hook.so"}]},
                   ["spec.trial.template.env: LD_PRELOAD may not be set", "forbiddenEnvNames"]),
    "pod-label": ({"labels": {"kubenas.io/experiment": "someone-else"}},
                  ["spec.trial.template.labels/annotations: kubenas.io/ keys"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_tenant_gets_no_pod_they_could_not_make_themselves(installed, tenant, case):
    """Refused by `kubectl apply` itself (not by the operator later), naming the field
    and the fix; nothing is stored."""
    template, fragments = CASES[case]
    name = f"no-{case}"
    refused(apply(installed, tenant, with_template(name, **template), user="alice", check=False), *fragments)
    assert installed.kubectl("get", "nasexperiment", name, "-n", tenant, check=False).returncode != 0


def test_controller_image_is_the_admins_choice(installed, tenant):
    body = experiment("ctl-image", maxTrials=1, parallelTrials=1)
    body["spec"]["controller"] = {"image": "evil.example/controller:1"}
    refused(apply(installed, tenant, body, user="alice", check=False),
            "spec.controller.image: evil.example/controller:1 is not an allowed controller image",
            "controllerImagePrefixes")


def test_what_the_requester_may_do_themselves_passes(installed, tenant):
    """The same specs pass once alice holds the right herself: get on that one Secret,
    create pods (so any ServiceAccount and toleration), use on that PriorityClass."""
    ns = tenant
    cr = f"kubenas-test-use-{uuid.uuid4().hex[:6]}"
    grant(installed, ns, "reads", "alice", [
        EXPERIMENTS,
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
    installed.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": cr},
         "rules": [{"apiGroups": ["scheduling.k8s.io"], "resources": ["priorityclasses"],
                    "resourceNames": ["kubenas-high"], "verbs": ["use"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": cr},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}]}))
    try:
        def dry_run(name, **template):
            return installed.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", user="alice", check=False,
                                     input=json.dumps(with_template(name, **template)))

        accepted(dry_run("yes-secret", volumes=[{"name": "creds", "secret": {"secretName": "db"}}],
                         volumeMounts=[{"name": "creds", "mountPath": "/creds"}]))
        refused(dry_run("no-other-secret", volumes=[{"name": "creds", "secret": {"secretName": "other"}}]),
                "volumes[name=creds].secret (Secret other)")
        accepted(dry_run("yes-sa", serviceAccountName="deployer", tolerations=[{"operator": "Exists"}]))
        accepted(dry_run("yes-priority", priorityClassName="kubenas-high"))
        refused(dry_run("no-priority", priorityClassName="system-node-critical"), "priorityClassName")
        # What no RBAC right buys: only the cluster admin's ConfigMap.
        refused(dry_run("no-host-path", volumes=[{"name": "h", "hostPath": {"path": "/"}}]), "hostPath")
        refused(dry_run("no-image", image="evil.example/x:1"), "trainerImagePrefixes")
    finally:
        installed.kubectl("delete", "clusterrolebinding,clusterrole", cr, check=False)
        installed.kubectl("delete", "role,rolebinding", "reads", "-n", ns, check=False)


def test_the_admins_configmap_is_the_policy(installed, tenant):
    """requireJobCreate: "true" makes creating Jobs oneself a condition; the API server
    reads the change without a restart."""
    original = installed.get_json("configmap", POLICY, "-n", OPERATOR_NS)["data"]["requireJobCreate"]

    def plain():
        return installed.kubectl("apply", "--dry-run=server", "-n", tenant, "-f", "-", user="alice", check=False,
                                 input=json.dumps(experiment("plain", maxTrials=1, parallelTrials=1)))

    installed.kubectl("patch", "configmap", POLICY, "-n", OPERATOR_NS, "--type=merge",
                      "-p", json.dumps({"data": {"requireJobCreate": "true"}}))
    try:
        done = wait_until(lambda: (lambda d: d if d.returncode != 0 else None)(plain()), 30,
                          "the policy change to take effect")
        refused(done, "spec: kubenas runs each trial as a Job", "may create Jobs (batch) in namespace " + tenant,
                "requireJobCreate")
        grant(installed, tenant, "jobs", "alice", [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}])
        wait_until(lambda: plain().returncode == 0, 30, "alice, now allowed to create Jobs, to pass")
    finally:
        installed.kubectl("patch", "configmap", POLICY, "-n", OPERATOR_NS, "--type=merge",
                          "-p", json.dumps({"data": {"requireJobCreate": original}}))
        installed.kubectl("delete", "role,rolebinding", "jobs", "-n", tenant, check=False)
    wait_until(lambda: plain().returncode == 0, 30, "the policy to be restored")


# ------------------------------------------------------ 2. the accepted spec is the operator's

def test_a_forged_accepted_spec_is_refused(installed, tenant, ran):
    forged = json.dumps({"trial": {"template": {"image": "evil.example/x:1"}}})
    body = experiment("forged", maxTrials=1, parallelTrials=1)
    body["metadata"]["annotations"] = {"kubenas.io/accepted-spec": forged}
    refused(apply(installed, tenant, body, user="alice", check=False),
            "metadata.annotations: kubenas.io/accepted-spec is written by the kubenas operator only",
            "remove it from your manifest")

    # The operator keeps what it accepted in status.acceptedSpec, which the author (who
    # may patch the experiment) cannot write; and nobody but the operator, not even a
    # cluster admin, may put a kubenas.io/ annotation on it. Other metadata stays theirs.
    grant(installed, ran, "edit-experiments", "alice",
          [{"apiGroups": [GROUP], "resources": ["nasexperiments"], "verbs": ["get", "list", "patch", "update"]}])
    before = installed.get_json("nasexperiment", "ea", "-n", ran)["status"]["acceptedSpec"]
    assert json.loads(before)["trial"]["template"].get("image") != "evil.example/x:1"
    refused(installed.kubectl("patch", "nasexperiment", "ea", "-n", ran, "--subresource=status", "--type=merge",
                              "-p", json.dumps({"status": {"acceptedSpec": forged}}), user="alice", check=False),
            "nasexperiments/status")
    for user in ("alice", None):
        refused(installed.kubectl("annotate", "--overwrite", "nasexperiment", "ea", "-n", ran,
                                  f"kubenas.io/accepted-spec={forged}", user=user, check=False),
                "kubenas.io/accepted-spec is written by the kubenas operator only")
        refused(installed.kubectl("annotate", "nasexperiment", "ea", "-n", ran, "kubenas.io/paused=true",
                                  user=user, check=False), "kubenas.io/paused")
    accepted(installed.kubectl("label", "nasexperiment", "ea", "-n", ran, "team=vision", user="alice", check=False))
    after = installed.get_json("nasexperiment", "ea", "-n", ran)["status"]["acceptedSpec"]
    assert after == before

    # A spec change is judged against who makes it, and only in what it changes.
    patch = {"spec": {"trial": {"template": {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}}}}
    refused(installed.kubectl("patch", "nasexperiment", "ea", "-n", ran, "--type=merge", "-p", json.dumps(patch),
                              "--dry-run=server", user="alice", check=False), "hostPath")
    accepted(installed.kubectl("patch", "nasexperiment", "ea", "-n", ran, "--type=merge", "--dry-run=server",
                               "-p", json.dumps({"spec": {"budget": {"maxTrials": 2}}}), user="alice", check=False))


# ------------------------------------------------ 3. a result comes from its own trial only

def test_a_trainer_token_of_one_experiment_cannot_touch_another_experiments_trial(installed, tenant, ran):
    pod = trainer_pod(installed, ran, "ea-0")
    token = bound_token(installed, ran, "kubenas-trainer", pod)
    api = api_with_token(installed, token)
    b_before = installed.get_json("nastrial", "eb-0", "-n", ran)["status"]

    code, message = status_write(api, ran, "eb-0", {"phase": "Succeeded", "reward": 1.0})
    assert code == 403, (code, message)
    assert "may write the status of its own trial only" in message and pod["metadata"]["name"] in message, message
    code, message = status_write(api, ran, "eb-0", {"history": [{"epoch": 1, "accuracy": 1.0}]})
    assert code == 403, (code, message)
    assert installed.get_json("nastrial", "eb-0", "-n", ran)["status"] == b_before
    # Another namespace: RBAC says no before admission is asked.
    code, message = status_write(api, tenant, "eb-0", {"reward": 1.0})
    assert code == 403 and "cannot patch resource" in message, (code, message)

    # Nor its own trial's operator fields, nor a finished result (the trial has ended: the
    # writes of a trial after its end are test_a_finished_trainers_token_changes_nothing).
    a = installed.get_json("nastrial", "ea-0", "-n", ran)["status"]
    assert a["phase"] in TERMINAL
    for status, fragment in (({"reward": 1.0}, f"is already {a['phase']}: a finished result"),
                             ({"phase": "Running"}, "cannot be changed"),
                             ({"conditions": []}, "status.conditions of a NASTrial are written by the kubenas operator"),
                             ({"retries": 7}, f"is already {a['phase']}: a finished result"),
                             ({"duplicateOf": "eb-0"}, f"is already {a['phase']}: a finished result")):
        code, message = status_write(api, ran, "ea-0", status)
        assert code == 403 and fragment in message, (status, code, message)
    assert installed.get_json("nastrial", "ea-0", "-n", ran)["status"].get("reward") == a.get("reward")


def test_a_finished_trainers_token_changes_nothing(installed, ran):
    """A trial's writes end when the trial ends. The finished trainer's pod is kept (a day,
    ttlSecondsAfterFinished) and its token stays valid for minutes: with it, nothing of its
    trial's status changes once the phase is terminal: not the history the median rule
    reads when judging sibling trials, nor the model users download, message, times,
    device, or anything else."""
    pod = trainer_pod(installed, ran, "eb-0")
    api = api_with_token(installed, bound_token(installed, ran, "kubenas-trainer", pod))
    before = installed.get_json("nastrial", "eb-0", "-n", ran)["status"]
    assert before["phase"] in TERMINAL, before
    other_folder = "pvc://results/nas/ea_0f0f0f0f-0000-0000-0000-000000000000/ea-0/model.pt"
    for status in ({"history": [{"epoch": e, "accuracy": 1.0} for e in range(1, 1001)]},
                   {"model": other_folder}, {"message": "all good"},
                   {"startTime": "2020-01-01T00:00:00Z"}, {"completionTime": "2020-01-01T00:00:00Z"},
                   {"device": "cuda:7"}):
        code, message = status_write(api, ran, "eb-0", status)
        assert code == 403, (status, code, message)
        assert f"is already {before['phase']}: a finished result cannot be changed" in message, message
        assert "only the kubenas operator writes its status" in message, message
    assert installed.get_json("nastrial", "eb-0", "-n", ran)["status"] == before


def test_a_trial_in_flight_takes_its_own_pods_result_but_no_early_stop(installed, ran):
    """A trial no experiment owns (the operator leaves it alone) and a never-scheduled
    pod of its would-be Job, to walk the status rules from Pending to a result."""
    installed.kubectl("apply", "-n", ran, "-f", "-", input=json.dumps({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "NASTrial", "metadata": {"name": "solo-0"},
        "spec": {"experiment": "solo", "index": 0, "architecture": {"type": "chain", "layers": []}}}))
    token = bound_token(installed, ran, "kubenas-trainer", stand_in_pod(installed, ran, "solo-0-bcdfg", "kubenas-trainer"))
    api = api_with_token(installed, token)
    assert status_write(api, ran, "solo-0", {"phase": "Running", "startTime": "2026-01-01T00:00:00Z"})[0] == 200
    for status in ({"retries": 7}, {"duplicateOf": "eb-0"}, {"jobName": "eb-0"}):  # the operator's, even in flight
        code, message = status_write(api, ran, "solo-0", status)
        assert code == 403 and "status.jobName, status.retries and status.duplicateOf" in message, (status, message)
    code, message = status_write(api, ran, "solo-0", {"phase": "EarlyStopped"})
    assert code == 403 and "EarlyStopped is decided by the kubenas operator only" in message, message
    assert status_write(api, ran, "solo-0", {"phase": "Succeeded", "reward": 0.75})[0] == 200
    code, message = status_write(api, ran, "solo-0", {"reward": 0.99})
    assert code == 403 and "already Succeeded" in message, message
    # The trainer's ServiceAccount without a pod-bound token gets nowhere.
    unbound = installed.kubectl("create", "token", "kubenas-trainer", "-n", ran, "--duration=10m").stdout.strip()
    code, message = status_write(api_with_token(installed, unbound), ran, "solo-0", {"history": []})
    assert code == 403 and "is bound to no pod" in message, message
    assert installed.get_json("nastrial", "solo-0", "-n", ran)["status"]["reward"] == 0.75


def test_the_controller_creates_trials_of_its_own_experiment_only(installed, ran):
    """A token bound to (a stand-in for) ea's controller pod, named as the Deployment's
    ReplicaSet names it: trials of ea pass, of eb or with a foreign owner do not. Dry
    runs: admission runs, nothing is stored."""
    exps = {n: installed.get_json("nasexperiment", n, "-n", ran) for n in ("ea", "eb")}
    pod = stand_in_pod(installed, ran, "ea-controller-5d4b7c9f8-x2kq9", "kubenas-controller")
    api = api_with_token(installed, bound_token(installed, ran, "kubenas-controller", pod))

    def trial(name, exp, index, owner):
        meta = exps[owner]["metadata"]
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "NASTrial",
                "metadata": {"name": name, "labels": {"kubenas.io/experiment": exp, "kubenas.io/trial-index": str(index)},
                             "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "NASExperiment",
                                                  "name": meta["name"], "uid": meta["uid"], "controller": True}]},
                "spec": {"experiment": exp, "index": index, "architecture": {"type": "chain", "layers": []}}}

    def create(body):
        from kubernetes.client.exceptions import ApiException

        try:
            api.create_namespaced_custom_object(GROUP, VERSION, ran, "nastrials", body, dry_run="All")
            return 201, ""
        except ApiException as err:
            return err.status, json.loads(err.body).get("message", "")

    assert create(trial("ea-5", "ea", 5, "ea")) == (201, "")
    code, message = create(trial("eb-5", "eb", 5, "eb"))
    assert code == 403 and "may create trials of its own experiment only" in message, message
    code, message = create(trial("ea-6", "ea", 6, "eb"))
    assert code == 403 and "metadata.ownerReferences" in message, message
    code, message = create(trial("ea-x", "ea", 7, "ea"))
    assert code == 403 and "metadata.name: a trial of experiment ea with spec.index 7 is named ea-7" in message
    body = trial("ea-8", "ea", 8, "ea")
    body["metadata"]["labels"]["kubenas.io/experiment"] = "eb"
    code, message = create(body)
    assert code == 403 and "metadata.labels" in message, message


def test_the_policies_are_installed_as_shipped(installed):
    """What `kubectl apply -k deploy/` installed is deploy/admission.yaml, and the API
    server compiled it without type errors."""
    from tests.realtier.cluster import REPO

    with open(REPO / "deploy" / "admission.yaml") as f:
        shipped = {d["metadata"]["name"] for d in yaml.safe_load_all(f) if d and d["kind"] == "ValidatingAdmissionPolicy"}
    live = installed.get_json("validatingadmissionpolicies")["items"]
    assert shipped <= {p["metadata"]["name"] for p in live}
    for policy in live:
        if policy["metadata"]["name"] in shipped:
            assert not (policy.get("status") or {}).get("typeChecking", {}).get("expressionWarnings"), policy["status"]
