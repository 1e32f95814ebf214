"""Failure paths: bad specs, failing trainers, missing rewards, OOM, budget exhaustion."""
from __future__ import annotations

from .cluster import NS, FakeCluster, Script, default_script, digits_experiment, wait_for


def status(cluster, name):
    return (cluster.experiment(name) or {}).get("status") or {}


def trial_status(cluster, name):
    found = [t for t in cluster.trials() if t["metadata"]["name"] == name]
    return (found[0].get("status") or {}) if found else {}


async def test_senseless_spec_fails_with_condition_and_nothing_created(cluster):
    body = digits_experiment("bad", maxTrials=2, parallelTrials=5)  # schema-valid, senseless
    await cluster.create_experiment(body)
    await wait_for(lambda: status(cluster, "bad").get("phase") == "Failed", 20, "Failed")
    st = status(cluster, "bad")
    valid = [c for c in st["conditions"] if c["type"] == "Valid"][0]
    assert valid["status"] == "False" and valid["reason"] == "InvalidSpec"
    assert "spec.budget.parallelTrials" in valid["message"]
    await wait_for(lambda: any(e["reason"] == "InvalidSpec" for e in cluster.events()), 10, "an Event")
    event = [e for e in cluster.events() if e["reason"] == "InvalidSpec"][0]
    assert event["type"] == "Warning" and event["involvedObject"]["name"] == "bad"
    for plural in ("deployments", "nastrials", "jobs", "configmaps", "serviceaccounts", "rolebindings"):
        assert cluster.objects(plural) == [], plural


def scripted(overrides):
    def script(index):
        return overrides.get(index) or default_script(index)
    return script


async def test_trainer_failure_no_reward_and_oom(emulator):
    cluster = FakeCluster(emulator, emulator.conf, script=scripted({
        1: Script(status="Failed", reason="Diverged"),
        2: Script(report=False),
        3: Script(oom=True),
    }))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("f", maxTrials=6, parallelTrials=2, maxFailedTrials=3))
        await wait_for(lambda: status(cluster, "f").get("phase") == "Succeeded", 60, "Succeeded")
        diverged, noreward, oom = (trial_status(cluster, f"f-{i}") for i in (1, 2, 3))
        assert (diverged["phase"], diverged["reason"]) == ("Failed", "Diverged")
        assert (noreward["phase"], noreward["reason"]) == ("Failed", "NoReward")
        assert "no reward" in noreward["message"]
        assert (oom["phase"], oom["reason"]) == ("Failed", "OOMKilled")
        st = status(cluster, "f")
        assert st["trials"]["failed"] == 3 and st["trials"]["succeeded"] == 3
        reasons = {e["reason"] for e in cluster.events()}
        assert {"Failed", "NoReward"} <= reasons
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors


async def test_budget_exhausted_by_failures(emulator):
    cluster = FakeCluster(emulator, emulator.conf,
                          script=lambda i: Script(status="Failed", reason="InvalidArchitecture")
                          if i < 3 else Script(values=[0.5] * 50, epoch_seconds=0.1))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("x", maxTrials=10, parallelTrials=2, maxFailedTrials=2))
        await wait_for(lambda: status(cluster, "x").get("phase") == "Failed", 60, "Failed")
        st = status(cluster, "x")
        complete = [c for c in st["conditions"] if c["type"] == "Complete"][0]
        assert complete["reason"] == "TooManyFailedTrials"
        assert st["trials"]["failed"] == 3
        await wait_for(lambda: not cluster.objects("deployments"), 10, "controller deleted")
        # Trials still running when it ended are stopped and their Jobs deleted.
        await wait_for(lambda: all((t.get("status") or {}).get("phase") in ("Failed", "EarlyStopped")
                                   for t in cluster.trials()), 20, "in-flight trials stopped")
        stopped = [t for t in cluster.trials() if t["status"]["phase"] == "EarlyStopped"]
        assert all(t["status"]["reason"] == "ExperimentFinished" for t in stopped)
        stopped_names = {t["metadata"]["name"] for t in stopped}
        await wait_for(lambda: not {j["metadata"]["name"] for j in cluster.objects("jobs")} & stopped_names,
                       10, "the stopped trials' Jobs deleted")
        assert len(cluster.trials()) <= 5  # no new trials once the budget is spent
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors
