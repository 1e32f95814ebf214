"""What docs/security.md tells a cluster admin to add on top of kubenas ("What an admin
must still add"), applied as the page shows it and proven on a real API server: a tenant
namespace under Pod Security admission ``restricted`` and a ResourceQuota on kubenas'
objects. kubenas' own pods (controller and trainers) pass ``restricted``; the quota
refuses an experiment past its count with the API server's own message."""
from __future__ import annotations

import json

from tests.e2e.test_admission import EXPERIMENTS, grant
from tests.e2e.test_cluster import apply, experiment, phase
from tests.waiting import wait_until


def baseline(cluster, namespace: str, experiments: int) -> None:
    """The admin's baseline for a tenant namespace, exactly as docs/security.md gives it."""
    for mode in ("enforce", "warn", "audit"):
        cluster.kubectl("label", "namespace", namespace, f"pod-security.kubernetes.io/{mode}=restricted",
                        "--overwrite")
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "kubenas"},
        "spec": {"hard": {"count/nasexperiments.kubenas.io": str(experiments),
                          "count/nastrials.kubenas.io": "2000", "count/jobs.batch": "50",
                          "requests.nvidia.com/gpu": "8"}}}))


def test_an_experiment_runs_in_a_restricted_namespace_and_the_quota_bounds_the_count(installed, namespace):
    baseline(installed, namespace, experiments=1)
    grant(installed, namespace, "experiments", "alice", [EXPERIMENTS])
    # Until the quota controller has counted the new resource, the API server refuses every
    # create it covers ("status unknown for quota"; the real tier resyncs every 15 s, a
    # default controller manager every 5 minutes: docs/security.md).
    wait_until(lambda: "count/nasexperiments.kubenas.io" in (
        installed.get_json("resourcequota", "kubenas", "-n", namespace).get("status", {}).get("used") or {}),
        120, "the ResourceQuota to be counted", interval=1)

    apply(installed, namespace, experiment("psa-one", maxTrials=1, parallelTrials=1), user="alice")
    second = apply(installed, namespace, experiment("psa-two", maxTrials=1, parallelTrials=1), user="alice",
                   check=False)
    assert second.returncode != 0, "a second experiment was admitted past count/nasexperiments: 1"
    assert "exceeded quota: kubenas" in second.stderr and "count/nasexperiments.kubenas.io" in second.stderr, \
        second.stderr

    # Every pod kubenas makes here is admitted by Pod Security `restricted`: the controller's
    # and the trainer's (a refused pod would leave its ReplicaSet or Job without one, and the
    # trial PodRefused).
    def made(prefix: str) -> bool:
        return any(p["metadata"]["name"].startswith(prefix) for p in installed.pods(namespace))
    wait_until(lambda: made("psa-one-controller-"), 300, "the controller's pod", interval=1)
    wait_until(lambda: phase(installed, namespace, "psa-one") in ("Succeeded", "Failed"), 600,
               "the experiment in the restricted namespace to finish", interval=2)
    status = installed.get_json("nasexperiment", "psa-one", "-n", namespace)["status"]
    assert status["phase"] == "Succeeded", status
    assert made("psa-one-0-")
    events = installed.get_json("events", "-n", namespace)["items"]
    refusals = [e["message"] for e in events if "violates PodSecurity" in (e.get("message") or "")]
    assert not refusals, refusals
