"""Own before you touch, on a real API server (issue 23, MEDIUM): the operator and the
controller find their objects by deterministic names (``<experiment>-controller``,
``<trial>``, ``<experiment>-strategy``), and a tenant chooses the experiment's name. A
namesake someone else made (here: the cluster admin) is never adopted, patched, read or
deleted; the experiment or trial ends NameConflict instead. alice holds only the author
Role of docs/security.md (create, get, list nasexperiments): she cannot delete Deployments
or Jobs, nor patch ConfigMaps, herself, and kubenas must not do it for her.

What the operator and controller did is read from the API server's audit log (who, which
verb, which object), so these need the local tier."""
from __future__ import annotations

import json
from urllib.parse import unquote

import pytest

from tests.e2e.test_admission import EXPERIMENTS, grant
from tests.e2e.test_cluster import apply, experiment, phase
from tests.waiting import wait_until

TERMINAL = ("Succeeded", "Failed", "Stopped")


@pytest.fixture()
def audited(local_only):
    return local_only


def requests(cluster, namespace: str, user_suffix: str, resource: str, name: str | None = None) -> list[dict]:
    """The audit log's requests by a kubenas identity (``:kubenas-operator``,
    ``:kubenas-controller``) on ``resource`` (and ``name``) in ``namespace``."""
    found = []
    with open(cluster.plane.audit_log) as f:
        for line in f:
            e = json.loads(line)
            ref = e.get("objectRef") or {}
            if (e.get("user") or {}).get("username", "").endswith(user_suffix) and ref.get("namespace") == namespace \
                    and ref.get("resource") == resource and (name is None or ref.get("name") == name):
                found.append(e)
    return found


def verbs(events: list[dict]) -> list[str]:
    return [e["verb"] for e in events]


def admin_deployment(cluster, namespace: str, name: str) -> dict:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1", "command": ["true"]}]}}}}))
    return cluster.get_json("deployment", name, "-n", namespace)


def admin_job(cluster, namespace: str, name: str, *, suspend: bool, command: list[str]) -> dict:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"suspend": suspend, "backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1", "command": command}]}}}}))
    return cluster.get_json("job", name, "-n", namespace)


def test_an_invalid_experiment_never_deletes_the_admins_deployment_of_its_controllers_name(audited, installed,
                                                                                          namespace):
    """The audit-log repro: alice's invalid experiment `web` ended Failed, and the
    operator deleted the admin's Deployment `web-controller` a second later (the finished
    branch deleted `<experiment>-controller` without asking whose it was)."""
    cluster = installed
    grant(cluster, namespace, "experiments", "alice", [EXPERIMENTS])
    admins = admin_deployment(cluster, namespace, "web-controller")
    body = experiment("web", maxTrials=1, parallelTrials=1)
    body["spec"]["objective"] = {"metric": "accuracy", "goal": "minimize"}  # only the operator's check knows
    apply(cluster, namespace, body, user="alice")
    wait_until(lambda: phase(cluster, namespace, "web") == "Failed", 120, "experiment web to fail", interval=1)
    status = cluster.get_json("nasexperiment", "web", "-n", namespace)["status"]
    assert any(c["reason"] == "InvalidSpec" and "spec.objective.goal" in c["message"] for c in status["conditions"])
    # The finished experiment's clean-up looks at web-controller (a GET now; a DELETE before).
    wait_until(lambda: requests(cluster, namespace, ":kubenas-operator", "deployments", "web-controller"), 60,
               "the operator's clean-up of web-controller", interval=1)
    assert "delete" not in verbs(requests(cluster, namespace, ":kubenas-operator", "deployments"))
    still = cluster.get_json("deployment", "web-controller", "-n", namespace)
    assert still["metadata"]["uid"] == admins["metadata"]["uid"] and not still["metadata"].get("deletionTimestamp")


def test_an_experiment_whose_controller_name_is_taken_ends_name_conflict(audited, installed, namespace):
    """A valid experiment whose `<experiment>-controller` is someone else's: not adopted as
    its controller (its pods would not be kubenas's), the experiment ends NameConflict,
    and the Deployment stays as it was."""
    cluster = installed
    grant(cluster, namespace, "experiments", "alice", [EXPERIMENTS])
    admins = admin_deployment(cluster, namespace, "site-controller")
    apply(cluster, namespace, experiment("site", maxTrials=1, parallelTrials=1), user="alice")
    wait_until(lambda: phase(cluster, namespace, "site") in TERMINAL, 120, "experiment site to end", interval=1)
    exp = cluster.get_json("nasexperiment", "site", "-n", namespace)
    assert exp["status"]["phase"] == "Failed", exp["status"]
    assert exp["status"]["message"].startswith(f"Deployment site-controller already exists in namespace {namespace} "
                                               "and is not this experiment's"), exp["status"]
    assert any(c["reason"] == "NameConflict" for c in exp["status"]["conditions"]), exp["status"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=site").stdout
    assert "NameConflict" in events
    still = cluster.get_json("deployment", "site-controller", "-n", namespace)
    assert still["metadata"]["uid"] == admins["metadata"]["uid"] and still["spec"]["replicas"] == 0
    assert not still["metadata"].get("ownerReferences")
    assert not cluster.get_json("nastrials", "-n", namespace)["items"]  # no controller ran for it


REWARD = json.dumps({"status": "Succeeded", "reward": 0.99})


def test_trials_never_adopt_read_or_delete_the_admins_jobs_and_the_controller_leaves_its_configmap(
        audited, installed, namespace):
    """The admin's suspended Job `jobx-0`, completed Job `jobx-1` (whose pod's termination
    message looks like a trainer's result, reward 0.99) and ConfigMap `jobx-strategy`
    exist; alice's experiment `jobx` runs. Before: `jobx-0` was adopted as trial jobx-0's
    Job and deleted when jobx stopped; `jobx-1`'s termination message became trial jobx-1's
    reward; the controller's checkpoint create answered 409 and it patched the admin's
    ConfigMap. Now: both trials end NameConflict, with no reward; the Jobs, their pods
    and the ConfigMap are untouched."""
    cluster = installed
    grant(cluster, namespace, "experiments", "alice", [EXPERIMENTS])
    suspended = admin_job(cluster, namespace, "jobx-0", suspend=True, command=["true"])
    done = admin_job(cluster, namespace, "jobx-1", suspend=False,
                     command=["python", "-c", f"open('/dev/termination-log', 'w').write({REWARD!r})"])
    wait_until(lambda: any(c["type"] == "Complete" and c["status"] == "True" for c in
                           (cluster.get_json("job", "jobx-1", "-n", namespace).get("status") or {}).get("conditions")
                           or []), 120, "the admin's Job jobx-1 to complete", interval=1)
    cluster.kubectl("create", "configmap", "jobx-strategy", "-n", namespace, "--from-literal=owner=admin")
    configmap = cluster.get_json("configmap", "jobx-strategy", "-n", namespace)

    apply(cluster, namespace, experiment("jobx", maxTrials=2, parallelTrials=2), user="alice")

    def trial_status(name):
        done_ = cluster.kubectl("get", "nastrial", name, "-n", namespace, "-o", "json", check=False)
        return (json.loads(done_.stdout).get("status") or {}) if done_.returncode == 0 else {}

    for name in ("jobx-1", "jobx-0"):
        status = wait_until(lambda: (lambda s: s if s.get("phase") in TERMINAL else None)(trial_status(name)), 120,
                            f"trial {name} to end", interval=1)
        assert status["phase"] == "Failed" and status.get("reason") == "NameConflict", (name, status)
        assert status["message"].startswith(f"Job {name} already exists in namespace {namespace} and is not this "
                                            "trial's"), status
        assert "reward" not in status, status  # the admin's pod's termination message is nobody's result
    wait_until(lambda: phase(cluster, namespace, "jobx") in TERMINAL, 120, "experiment jobx to end", interval=1)
    # The controller is stopped (the finished experiment's clean-up): it has had its
    # last word on the checkpoint, and so has the operator on the trials' Jobs.
    wait_until(lambda: "delete" in verbs(requests(cluster, namespace, ":kubenas-operator", "deployments",
                                                  "jobx-controller")), 60, "the controller's deletion", interval=1)
    wait_until(lambda: not cluster.pods(namespace, "app.kubernetes.io/component=controller"), 60,
               "the controller pod to go", interval=1)

    for job in (suspended, done):
        name = job["metadata"]["name"]
        now = cluster.get_json("job", name, "-n", namespace)
        assert now["metadata"]["uid"] == job["metadata"]["uid"] and not now["metadata"].get("deletionTimestamp")
        assert not now["metadata"].get("ownerReferences")
        assert not [e for e in requests(cluster, namespace, ":kubenas-operator", "jobs", name)
                    if e["verb"] not in ("get", "create")], f"the operator touched the admin's Job {name}"
        pod_reads = [e for e in requests(cluster, namespace, ":kubenas-operator", "pods")
                     if f"job-name={name}" in unquote(e.get("requestURI", ""))]
        assert not pod_reads, f"the operator read the pods of the admin's Job {name}"
    assert cluster.get_json("job", "jobx-0", "-n", namespace)["spec"]["suspend"] is True

    after = cluster.get_json("configmap", "jobx-strategy", "-n", namespace)
    assert after["data"] == {"owner": "admin"} and after["metadata"]["uid"] == configmap["metadata"]["uid"]
    writes = [e for e in requests(cluster, namespace, ":kubenas-controller", "configmaps", "jobx-strategy")
              if e["verb"] in ("patch", "update", "delete")]
    assert not writes, "the controller wrote the admin's ConfigMap jobx-strategy"
