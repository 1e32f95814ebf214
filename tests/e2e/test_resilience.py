"""Chaos on a real API server: operator, controller and trainer pods deleted at random
while a 20-trial experiment runs. It must still succeed, with every trial index created
once, one Job per trial, and no finished result lost."""
from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter

from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until

from tests.e2e.test_cluster import apply, experiment, phase

KILLS = 12


def _targets(cluster, namespace: str) -> list[tuple[str, str, str]]:
    out = []
    for ns, selector, kind in ((OPERATOR_NS, "app.kubernetes.io/component=operator", "operator"),
                               (namespace, "app.kubernetes.io/component=controller", "controller"),
                               (namespace, "app.kubernetes.io/component=trainer", "trainer")):
        for p in cluster.pods(ns, selector):
            status = p.get("status") or {}
            if status.get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
                out.append((ns, p["metadata"]["name"], kind))
    return out


def test_experiment_survives_random_pod_deletions(cluster, namespace):
    body = experiment("chaos", maxTrials=20, parallelTrials=3, maxFailedTrials=2, maxRetries=4)
    body["spec"]["trial"]["training"]["epochs"] = 3
    apply(cluster, namespace, body)
    rng = random.Random(20261130)
    kills: list[tuple[str, str]] = []
    done = threading.Event()

    def killer():
        while not done.is_set() and len(kills) < KILLS:
            if done.wait(rng.uniform(3, 7)):
                return
            targets = _targets(cluster, namespace)
            kinds = sorted({t[2] for t in targets})
            if not kinds:
                continue
            kind = rng.choice(kinds)  # each kind as likely, however many pods it has
            ns, pod, _ = rng.choice([t for t in targets if t[2] == kind])
            force = rng.random() < 0.3
            args = ["delete", "pod", "-n", ns, pod, "--wait=false"] + (
                ["--grace-period=0", "--force"] if force else [])
            if cluster.kubectl(*args, check=False).returncode == 0:
                kills.append((kind, pod))

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        wait_until(lambda: phase(cluster, namespace, "chaos") in ("Succeeded", "Failed", "Stopped")
                   and len(kills) >= KILLS, 1500, f"the experiment to finish after {KILLS} kills", interval=2)
    finally:
        done.set()
        thread.join(30)
    kinds = Counter(k for k, _ in kills)
    assert len(kills) >= KILLS and set(kinds) == {"operator", "controller", "trainer"}, kinds

    exp = cluster.get_json("nasexperiment", "chaos", "-n", namespace)
    status = exp["status"]
    assert status["phase"] == "Succeeded", status
    trials = cluster.get_json("nastrials", "-n", namespace)["items"]
    indices = sorted(t["spec"]["index"] for t in trials)
    assert indices == list(range(20)), indices
    # Every finished trial kept its result; the counts agree with the trials.
    finished = [t for t in trials if (t.get("status") or {}).get("phase") == "Succeeded"]
    assert all(isinstance(t["status"].get("reward"), (int, float)) for t in finished)
    assert status["trials"]["succeeded"] == len(finished) >= 18, status["trials"]
    assert status["bestTrial"]["reward"] == max(t["status"]["reward"] for t in finished)
    if hasattr(cluster, "plane"):
        # From the API server's own audit log: each trial and each Job created once.
        created = created_once(cluster, namespace)
        assert sum(1 for (res, _) in created if res == "nastrials") == 20, created
        assert all(n == 1 for n in created.values()), {k: n for k, n in created.items() if n > 1}


def created_once(cluster, namespace: str) -> Counter:
    """(resource, name) -> successful creates, from the API server's audit log."""
    created: Counter = Counter()
    with open(cluster.plane.audit_log) as f:
        for line in f:
            e = json.loads(line)
            ref = e.get("objectRef") or {}
            if e.get("verb") == "create" and ref.get("namespace") == namespace \
                    and "dryRun=" not in e.get("requestURI", "") \
                    and ref.get("resource") in ("nastrials", "jobs") and not ref.get("subresource") \
                    and (e.get("responseStatus") or {}).get("code") == 201:
                created[(ref["resource"], ref.get("name"))] += 1
    return created


def test_api_faults_cause_no_crash_duplicate_or_lost_result(faulty_cluster):
    cluster = faulty_cluster
    namespace = cluster.new_namespace("kubenas-faults")
    body = experiment("faults", maxTrials=10, parallelTrials=2, maxFailedTrials=1)
    body["spec"]["trial"]["training"]["epochs"] = 2
    apply(cluster, namespace, body)
    wait_until(lambda: phase(cluster, namespace, "faults") in ("Succeeded", "Failed", "Stopped"), 1200,
               "the experiment to finish through the faulty proxy", interval=2)
    injected = cluster.proxy.injected
    status = cluster.get_json("nasexperiment", "faults", "-n", namespace)["status"]
    assert status["phase"] == "Succeeded", (status, injected)
    # The faults happened, of every kind that had a chance.
    assert sum(injected.values()) >= 20, injected
    assert {"write_conflict", "server_error", "throttle", "watch_rejected", "watch_gone", "watch_cut",
            "watch_stall"} <= set(injected), injected
    trials = cluster.get_json("nastrials", "-n", namespace)["items"]
    assert sorted(t["spec"]["index"] for t in trials) == list(range(10))
    finished = [t for t in trials if (t.get("status") or {}).get("phase") == "Succeeded"]
    assert len(finished) == status["trials"]["succeeded"] >= 9
    assert all(isinstance(t["status"].get("reward"), (int, float)) for t in finished)
    created = created_once(cluster, namespace)
    assert all(n == 1 for n in created.values()), {k: n for k, n in created.items() if n > 1}
    # No crash: the controller never restarted. The 400 on kopf's first watch ended kopf's
    # tasks; the operator listed and watched again in-process. Sometimes kopf's shutdown
    # after that 400 waits forever (an open bug: the event loop idle, no thread busy);
    # then, and only then, the operator exits after main.STOP_DEADLINE_SECONDS and its
    # Deployment starts a fresh process, which must finish the experiment as above.
    logs = cluster.logs_ever(OPERATOR_NS, "kubenas-operator")
    restarts = cluster.restarts_ever(OPERATOR_NS, "kubenas-operator")
    bounded_stop = "kopf did not stop within" in logs
    assert ("kopf stopped: APIClientError" in logs and restarts == 0) or (bounded_stop and restarts == 1), (
        restarts, logs[-3000:])
    assert cluster.restarts_ever(namespace, "faults-controller") == 0


def test_a_failed_final_status_write_still_yields_the_reward(installed):
    """The API server refuses the trainer's final status write (here: a policy that
    denies it, as a webhook outage or a lost connection would): the trainer has already
    written its result to the termination log, and the operator takes the reward from
    the pod, which only the kubelet of this trial's pod can write."""
    cluster = installed
    namespace = cluster.new_namespace("kubenas-lostwrite")
    cluster.kubectl("label", "namespace", namespace, "kubenas-test/lost-final-write=true")
    name = f"deny-final-write-{namespace}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": ["kubenas.io"], "apiVersions": ["*"],
                                                         "operations": ["UPDATE"], "resources": ["nastrials/status"]}]},
                 "validations": [{"expression": "!request.userInfo.username.endsWith(':kubenas-trainer') || "
                                                "!has(object.status.phase) || object.status.phase != 'Succeeded'",
                                  "message": "test: the trainer's final write is refused"}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": name},
               "spec": {"policyName": name, "validationActions": ["Deny"],
                        "matchResources": {"namespaceSelector": {"matchLabels": {
                            "kubenas-test/lost-final-write": "true"}}}}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [policy, binding]}))
    try:
        body = experiment("lost", maxTrials=1, parallelTrials=1)
        body["spec"]["trial"]["training"]["epochs"] = 2
        apply(cluster, namespace, body)
        wait_until(lambda: phase(cluster, namespace, "lost") in ("Succeeded", "Failed"), 600, "the experiment", 2)
        trial = cluster.get_json("nastrial", "lost-0", "-n", namespace)
        assert trial["status"]["phase"] == "Succeeded", trial["status"]
        assert trial["status"]["reason"] == "ResultFromTerminationMessage"
        assert 0 < trial["status"]["reward"] <= 1
        status = cluster.get_json("nasexperiment", "lost", "-n", namespace)["status"]
        assert status["phase"] == "Succeeded" and status["bestTrial"]["reward"] == trial["status"]["reward"]
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name, check=False)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_a_job_the_api_server_refuses_ends_the_trial_with_the_servers_reason(installed):
    """A template the CRD and the admission policies let through but the API server's
    Job validation refuses (an invalid volume name): the trial ends Failed (JobRefused)
    with the server's own message, and the experiment fails, instead of a silent loop."""
    cluster = installed
    namespace = cluster.new_namespace("kubenas-refused")
    try:
        body = experiment("refused", maxTrials=1, parallelTrials=1, maxFailedTrials=0)
        template = body["spec"]["trial"]["template"]
        template["volumes"] = [{"name": "Scratch_1", "emptyDir": {}}]
        template["volumeMounts"] = [{"name": "Scratch_1", "mountPath": "/scratch"}]
        apply(cluster, namespace, body)
        wait_until(lambda: phase(cluster, namespace, "refused") in ("Succeeded", "Failed"), 300, "the end", 1)
        trial = cluster.get_json("nastrial", "refused-0", "-n", namespace)["status"]
        assert trial["phase"] == "Failed" and trial["reason"] == "JobRefused", trial
        assert "Scratch_1" in trial["message"] and "422" in trial["message"], trial["message"]
        status = cluster.get_json("nasexperiment", "refused", "-n", namespace)["status"]
        assert status["phase"] == "Failed", status
        assert not cluster.get_json("jobs", "-n", namespace)["items"]
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                 "involvedObject.name=refused-0").stdout
        assert "JobRefused" in events
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
