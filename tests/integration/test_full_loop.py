"""The whole loop against the emulated API server: operator, controller, trainer."""
from __future__ import annotations

from .cluster import NS, digits_experiment, wait_for


def phase(cluster, name):
    exp = cluster.experiment(name)
    return (exp or {}).get("status", {}).get("phase")


async def test_full_loop_reaches_succeeded(cluster):
    await cluster.create_experiment(digits_experiment("digits", maxTrials=6, parallelTrials=2))
    await wait_for(lambda: phase(cluster, "digits") == "Succeeded", 60, "Succeeded")
    exp = cluster.experiment("digits")
    status = exp["status"]
    assert status["trials"]["succeeded"] == 6
    assert status["trials"]["created"] == 6
    assert status["bestTrial"]["name"] == "digits-5"  # the scripted rewards grow with the index
    assert status["bestTrial"]["reward"] > 0.7
    assert len(status["topTrials"]) == 6
    assert status["observedGeneration"] == 1
    assert status["startTime"] and status["completionTime"]
    complete = [c for c in status["conditions"] if c["type"] == "Complete"][0]
    assert complete["reason"] == "MaxTrialsReached"
    trials = cluster.trials("digits")
    assert sorted(t["metadata"]["name"] for t in trials) == [f"digits-{i}" for i in range(6)]
    for t in trials:
        assert t["status"]["phase"] == "Succeeded"
        assert len(t["status"]["history"]) == 3
        assert t["metadata"]["ownerReferences"][0]["uid"] == exp["metadata"]["uid"]
    # Jobs: one per trial, owned by it.
    jobs = cluster.objects("jobs")
    assert sorted(j["metadata"]["name"] for j in jobs) == [f"digits-{i}" for i in range(6)]
    # The controller is gone once the experiment finished.
    await wait_for(lambda: not cluster.objects("deployments"), 10, "controller deleted")
    reasons = {e["reason"] for e in cluster.events()}
    assert {"Accepted", "ControllerCreated", "MaxTrialsReached"} <= reasons
    assert not reasons & {"JobCreated", "Succeeded", "TrialSucceeded"}  # no Event per routine trial step

    # Deleting the experiment removes its trials, Jobs, pods, checkpoint and controller.
    await cluster.delete_experiment("digits")
    await wait_for(lambda: not cluster.objects("nastrials") and not cluster.objects("jobs")
                   and not cluster.objects("pods") and not cluster.objects("configmaps"), 10, "cascade")
