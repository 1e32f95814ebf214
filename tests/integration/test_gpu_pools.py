"""GPU node pools and Kueue: evicted pods are retried (not failed trials); Kueue Jobs start suspended."""
from __future__ import annotations

import asyncio

from .cluster import NS, FakeCluster, Script, default_script, digits_experiment, running, wait_for


def trial(cluster, name):
    found = [t for t in cluster.trials() if t["metadata"]["name"] == name]
    return found[0] if found else {}


async def test_evicted_pod_is_retried_not_a_failed_trial(emulator):
    cluster = FakeCluster(emulator, emulator.conf, script=lambda i: Script(values=default_script(i).values,
                                                                           evictions=2 if i == 0 else 0))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("evict", maxTrials=2, parallelTrials=2, maxFailedTrials=0))
        await wait_for(lambda: cluster.status("evict").get("phase") == "Succeeded",
                       60, "Succeeded")
        st = cluster.experiment("evict")["status"]
        assert st["trials"]["failed"] == 0 and st["trials"]["succeeded"] == 2
        t0 = trial(cluster, "evict-0")["status"]
        assert t0["phase"] == "Succeeded" and t0["retries"] == 2
        retry = [e for e in cluster.events() if e["reason"] == "Retrying"]
        assert retry and all(e["involvedObject"]["name"] == "evict-0" for e in retry)
        (job,) = [j for j in cluster.objects("jobs") if j["metadata"]["name"] == "evict-0"]
        assert job["spec"]["backoffLimit"] == 3  # budget.maxRetries default
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors


async def test_evictions_beyond_max_retries_fail_the_trial(emulator):
    cluster = FakeCluster(emulator, emulator.conf, script=lambda i: Script(evictions=5 if i == 0 else 0))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("evict2", maxTrials=1, parallelTrials=1, maxRetries=1))
        await wait_for(lambda: trial(cluster, "evict2-0").get("status", {}).get("phase") == "Failed", 60, "Failed")
        st = trial(cluster, "evict2-0")["status"]
        assert st["reason"] == "Evicted"
    finally:
        await cluster.close()


async def test_kueue_queue_name_creates_suspended_jobs(emulator):
    async with running(emulator) as cluster:
        body = digits_experiment("kueue", maxTrials=1, parallelTrials=1)
        body["spec"]["trial"]["template"]["queueName"] = "gpu-queue"
        await cluster.create_experiment(body)
        await wait_for(lambda: [j for j in cluster.objects("jobs") if j["metadata"]["name"] == "kueue-0"], 30, "Job")
        (job,) = [j for j in cluster.objects("jobs") if j["metadata"]["name"] == "kueue-0"]
        assert job["spec"]["suspend"] is True
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
        await wait_for(lambda: "Kueue" in (trial(cluster, "kueue-0").get("status") or {}).get("message", ""),
                       20, "a Kueue message")
        assert trial(cluster, "kueue-0")["status"]["phase"] == "Pending"
        # Kueue admits the workload: it unsuspends the Job.
        await asyncio.to_thread(cluster.batch.patch_namespaced_job, "kueue-0", NS, {"spec": {"suspend": False}})
        await wait_for(lambda: cluster.status("kueue").get("phase") == "Succeeded",
                       60, "Succeeded")
