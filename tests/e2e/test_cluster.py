"""End-to-end tests against a real API server: by default the local real-API-server
tier (tests/realtier: etcd, kube-apiserver and kube-controller-manager built from their
Go modules, pods run by the node stand-in under their real ServiceAccount tokens), or
the cluster named by KUBENAS_E2E_KUBECONFIG. kubenas is installed once with
``kubectl apply -k deploy/``; each test uses a namespace of its own.
"""
from __future__ import annotations

import glob
import json
import re

import yaml

from tests.realtier.cluster import OPERATOR_NS, REPO
from tests.waiting import wait_until


def experiment(name: str, **budget) -> dict:
    with open(REPO / "deploy" / "examples" / "cluster-digits-smoke.yaml") as f:
        body = yaml.safe_load(f)
    body["metadata"]["name"] = name
    body["spec"]["budget"].update(budget)
    return body


def example(file: str, name: str, data, models) -> dict:
    """The shipped example ``deploy/examples/<file>.yaml`` as NASExperiment ``name``, on the
    dataset at ``data``, its trials exporting their models into ``models`` (folders the node
    stand-in's pods see: the run_folder fixture's), each trial pod asking for half a CPU."""
    body = yaml.safe_load((REPO / "deploy" / "examples" / f"{file}.yaml").read_text())
    body["metadata"]["name"] = name
    trial = body["spec"]["trial"]
    trial["dataset"]["path"] = str(data)
    trial["template"] = {"env": [{"name": "KUBENAS_MODEL_DIR", "value": str(models)}],
                         "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
    return body


def apply(cluster, namespace: str, body: dict, user: str | None = None, check: bool = True):
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body), user=user, check=check)


def phase(cluster, namespace: str, name: str) -> str | None:
    return (cluster.get_json("nasexperiment", name, "-n", namespace).get("status") or {}).get("phase")


def ended(cluster, namespace: str, name: str, timeout: float = 900, interval: float = 2) -> dict:
    """NASExperiment ``name`` once it has ended (Succeeded or Failed)."""
    wait_until(lambda: phase(cluster, namespace, name) in ("Succeeded", "Failed"), timeout,
               f"experiment {name} to finish", interval=interval)
    return cluster.get_json("nasexperiment", name, "-n", namespace)


def finish(cluster, namespace: str, name: str, timeout: float = 900, interval: float = 2) -> dict:
    """NASExperiment ``name`` once it has ended, which must be Succeeded with a best trial."""
    exp = ended(cluster, namespace, name, timeout, interval)
    assert exp["status"]["phase"] == "Succeeded" and exp["status"].get("bestTrial"), exp["status"]
    return exp


def every_trial_succeeds(cluster, namespace: str, body: dict, timeout: float, history=()) -> tuple[dict, dict]:
    """Applies experiment ``body`` and waits until it Succeeded with all its budget.maxTrials
    trials Succeeded, each keeping the ``history`` metrics in every epoch of its history
    (the CRD keeps them). Returns the experiment's status and each trial's, by name."""
    name = body["metadata"]["name"]
    apply(cluster, namespace, body)
    status = finish(cluster, namespace, name, timeout, interval=3)["status"]
    assert status["trials"]["succeeded"] == body["spec"]["budget"]["maxTrials"], status["trials"]
    trials = {t["metadata"]["name"]: t["status"] for t in cluster.get_json("nastrials", "-n", namespace)["items"]}
    for trial in trials.values():
        assert trial["phase"] == "Succeeded", trial
        assert all(m in epoch for epoch in trial["history"] for m in history), trial["history"]
    return status, trials


ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |^Traceback ", re.M)


def test_every_example_is_accepted_by_the_api_server(cluster, namespace):
    for path in sorted(glob.glob(str(REPO / "deploy" / "examples" / "*.yaml"))):
        cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", path)


def test_digits_experiment_succeeds_without_restarts_or_errors(cluster, namespace):
    apply(cluster, namespace, experiment("e2e-digits", maxTrials=6, parallelTrials=2))
    wait_until(lambda: phase(cluster, namespace, "e2e-digits") in ("Succeeded", "Failed"), 900,
               "the experiment to finish", interval=2)
    exp = cluster.get_json("nasexperiment", "e2e-digits", "-n", namespace)
    assert exp["status"]["phase"] == "Succeeded", exp["status"]
    assert exp["status"]["trials"]["succeeded"] == 6
    assert exp["status"]["bestTrial"]["reward"] >= 0.9, exp["status"]["bestTrial"]
    table = cluster.kubectl("get", "nasexperiments", "-n", namespace).stdout
    for column in ("PHASE", "STRATEGY", "SUCCEEDED", "BEST"):
        assert column in table
    assert "Succeeded" in table and "random" in table
    pods = cluster.pods(namespace)
    assert "kubenas-trainer" in {p["spec"]["serviceAccountName"] for p in pods}
    # Zero restarts and no ERROR line, operator and controller alike (the controller's
    # pod is gone once the experiment has ended: the local tier keeps its record).
    assert cluster.restarts_ever(OPERATOR_NS, "kubenas-operator") == 0
    assert cluster.restarts_ever(namespace, "e2e-digits-controller") == 0
    for ns, prefix in ((OPERATOR_NS, "kubenas-operator"), (namespace, "e2e-digits-controller")):
        text = cluster.logs_ever(ns, prefix)
        assert not ERROR_LINE.findall(text), f"{prefix}:\n" + "\n".join(
            line for line in text.splitlines() if "ERROR" in line or "Traceback" in line)[:3000]


def test_delete_removes_everything_it_made(cluster, namespace):
    apply(cluster, namespace, experiment("e2e-gone", maxTrials=4, parallelTrials=2))
    wait_until(lambda: cluster.get_json("jobs", "-n", namespace)["items"], 300, "the first Jobs", interval=1)
    cluster.kubectl("delete", "nasexperiment", "e2e-gone", "-n", namespace, "--wait=true", "--timeout=120s")

    left: dict = {}

    def nothing_left() -> bool:
        left.clear()
        for kind in ("nastrials", "jobs", "deployments", "replicasets", "configmaps", "pods"):
            names = [o["metadata"]["name"] for o in cluster.get_json(kind, "-n", namespace)["items"]
                     if o["metadata"]["name"] != "kube-root-ca.crt"]
            if names:
                left[kind] = names
        return not left

    try:
        wait_until(nothing_left, 180, "cascading deletion of trials, Jobs, pods, controller and checkpoint", 1)
    except AssertionError as err:
        raise AssertionError(f"{err}; still there: {left}") from None


def test_apply_itself_refuses_what_the_schema_can_tell(cluster, namespace):
    """Cross-field rules in the CRD (CEL): kubectl apply says no, naming the field."""
    done = apply(cluster, namespace, experiment("e2e-cel", maxTrials=2, parallelTrials=5), check=False)
    assert done.returncode != 0
    assert "spec.budget" in done.stderr and "parallelTrials must be at most budget.maxTrials" in done.stderr
    long_name = experiment("x" * 51)
    done = apply(cluster, namespace, long_name, check=False)
    assert done.returncode != 0 and "metadata.name must be at most 50 characters" in done.stderr
    assert not cluster.get_json("nasexperiments", "-n", namespace)["items"]


def test_senseless_experiment_fails_with_a_condition(cluster, namespace):
    """What only the semantic check knows: the experiment ends Failed naming the field,
    with an Event, and nothing is created."""
    body = experiment("e2e-bad", maxTrials=2, parallelTrials=1)
    body["spec"]["objective"] = {"metric": "accuracy", "goal": "minimize"}
    apply(cluster, namespace, body)
    wait_until(lambda: phase(cluster, namespace, "e2e-bad") == "Failed", 120, "Failed", interval=1)
    status = cluster.get_json("nasexperiment", "e2e-bad", "-n", namespace)["status"]
    assert any("spec.objective.goal" in c.get("message", "") for c in status["conditions"]), status
    assert not cluster.get_json("nastrials", "-n", namespace)["items"]
    assert not cluster.get_json("deployments", "-n", namespace)["items"]
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                             "involvedObject.name=e2e-bad").stdout
    assert "InvalidSpec" in events


def test_a_repeated_candidate_gets_its_twins_result_and_no_job(cluster, namespace):
    """A space of two networks and four trials: once both are trained the strategy can only
    repeat; the operator answers each repeat from its twin (status.duplicateOf) and makes no
    Job for it, through the real API server's status schema and admission."""
    body = experiment("e2e-twins", maxTrials=4, parallelTrials=1)
    body["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 1, "operations": ["conv", "identity"],
                                                              "filters": [8], "kernelSizes": [3], "strides": [1]}}
    body["spec"]["objective"].pop("target", None)
    apply(cluster, namespace, body)
    wait_until(lambda: phase(cluster, namespace, "e2e-twins") in ("Succeeded", "Failed"), 600,
               "the experiment to finish", interval=2)
    exp = cluster.get_json("nasexperiment", "e2e-twins", "-n", namespace)
    assert exp["status"]["phase"] == "Succeeded" and exp["status"]["trials"]["succeeded"] == 4, exp["status"]
    trials = {t["metadata"]["name"]: t for t in cluster.get_json("nastrials", "-n", namespace)["items"]}
    repeats = {n: t["status"] for n, t in trials.items() if t["status"].get("duplicateOf")}
    assert sorted(repeats) == ["e2e-twins-2", "e2e-twins-3"], {n: t["status"] for n, t in trials.items()}
    for name, status in repeats.items():
        twin = trials[status["duplicateOf"]]
        assert status["reason"] == "Duplicate" and status["reward"] == twin["status"]["reward"]
        assert twin["spec"]["architecture"]["layers"] == trials[name]["spec"]["architecture"]["layers"]
    jobs = {j["metadata"]["name"] for j in cluster.get_json("jobs", "-n", namespace)["items"]}
    assert jobs == {"e2e-twins-0", "e2e-twins-1"}, jobs
