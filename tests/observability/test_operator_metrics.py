"""The operator's /metrics after real experiments ran in the emulated cluster, scraped
over HTTP and parsed with prometheus-client's parser; the dashboard's and the alert
rules' use of them is tested by a real Prometheus (tests/e2e/test_prometheus.py); Events on
the experiment."""
from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubenas.cluster.metrics_server import Verdict
from kubenas.controller import metrics as controller_metrics
from kubenas.operator import metrics

from tests.integration.cluster import FakeCluster, Script, default_script, digits_experiment, wait_for


def scrape(port: int) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer t"})
    text = urllib.request.urlopen(request, timeout=10).read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(families: dict, family: str, sample: str | None = None, **labels) -> list:
    return [s for s in families[family].samples
            if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items())]


def value(families, family, sample=None, **labels) -> float:
    return sum(s.value for s in samples(families, family, sample, **labels))


def phase(cluster, name):
    return ((cluster.experiment(name) or {}).get("status") or {}).get("phase")


async def test_operator_metrics_after_experiments(emulator):
    # Behind the gate, with a reviewer that allows the token (tests/e2e/test_metrics_auth.py
    # has the API server's reviews); plain HTTP on loopback here.
    server = metrics.serve(0, "127.0.0.1", review=lambda token: Verdict(200, "prometheus"), tls=False)
    port = server.server_port
    cluster = FakeCluster(emulator, emulator.conf, script=lambda i: (
        Script(status="Failed", reason="InvalidArchitecture") if i == 2 else
        Script(values=default_script(i).values, evictions=1) if i == 3 else default_script(i)))
    await cluster.start()
    try:
        # 1. An experiment runs to the end: one trial fails, one pod is evicted once.
        await cluster.create_experiment(digits_experiment("obs", maxTrials=5, parallelTrials=2, maxFailedTrials=2))
        await wait_for(lambda: phase(cluster, "obs") == "Succeeded", 60, "obs Succeeded")
        # 2. With the kubelet paused (no GPU node yet), trials wait: GPU demand shows as pending.
        cluster.kubelet_paused.set()
        body = digits_experiment("obs-gpu", maxTrials=2, parallelTrials=2)
        body["spec"]["trial"]["template"]["resources"] = {"limits": {"nvidia.com/gpu": 2}}
        await cluster.create_experiment(body)
        await wait_for(lambda: len([j for j in cluster.objects("jobs") if j["metadata"]["name"].startswith("obs-gpu-")]) == 2,
                       30, "2 Jobs")
        await asyncio.sleep(0.5)
        pending = await asyncio.to_thread(scrape, port)
        cluster.kubelet_paused.clear()
        await wait_for(lambda: phase(cluster, "obs-gpu") == "Succeeded", 60, "obs-gpu Succeeded")
        await asyncio.sleep(0.5)
        final = await asyncio.to_thread(scrape, port)
        events = cluster.events()
    finally:
        await cluster.close()
        server.shutdown()
        server.server_close()
    assert not cluster.errors, cluster.errors

    ns = "research"
    assert value(pending, "kubenas_gpus_requested", namespace=ns, experiment="obs-gpu", phase="Pending") == 4
    assert value(pending, "kubenas_trials", namespace=ns, experiment="obs-gpu", phase="Pending") == 2
    assert value(pending, "kubenas_experiments", namespace=ns, phase="Running") >= 1

    f = final
    assert value(f, "kubenas_experiments", namespace=ns, phase="Succeeded") >= 2
    assert value(f, "kubenas_trials", namespace=ns, experiment="obs", phase="Succeeded") == 4
    assert value(f, "kubenas_trials", namespace=ns, experiment="obs", phase="Failed") == 1
    assert value(f, "kubenas_experiment_best_reward", namespace=ns, experiment="obs") > 0.7
    assert value(f, "kubenas_gpus_requested", namespace=ns, experiment="obs-gpu", phase="Pending") == 0
    assert value(f, "kubenas_gpus_requested", namespace=ns, experiment="obs-gpu", phase="Running") == 0
    assert value(f, "kubenas_trials_created", "kubenas_trials_created_total", experiment="obs") == 5
    assert value(f, "kubenas_trials_finished", "kubenas_trials_finished_total", experiment="obs",
                 outcome="Succeeded") == 4
    assert value(f, "kubenas_trials_finished", "kubenas_trials_finished_total", experiment="obs",
                 outcome="Failed") == 1
    assert value(f, "kubenas_trial_retries", "kubenas_trial_retries_total", experiment="obs") == 1
    assert value(f, "kubenas_trial_duration_seconds", "kubenas_trial_duration_seconds_count", experiment="obs") == 5
    assert value(f, "kubenas_trial_queue_wait_seconds", "kubenas_trial_queue_wait_seconds_count",
                 experiment="obs") == 5
    assert value(f, "kubenas_trial_queue_wait_seconds", "kubenas_trial_queue_wait_seconds_count",
                 experiment="obs-gpu") == 2
    assert value(f, "kubenas_experiments_finished", "kubenas_experiments_finished_total", namespace=ns,
                 outcome="Succeeded", reason="MaxTrialsReached") >= 2
    assert samples(f, "kubenas_reconcile_errors", "kubenas_reconcile_errors_total", kind="trial")
    assert value(f, "process_resident_memory_bytes") > 0
    for family in f.values():
        assert family.name.startswith(("kubenas_", "process_")), family.name
        for s in family.samples:
            assert "trial" not in s.labels and "name" not in s.labels, s
            if family.type == "counter":
                assert s.name.endswith("_total"), s.name

    # The controller pods' metrics (served by each controller pod; in-process here).
    ctl = {fam.name: fam for fam in text_string_to_metric_families(generate_latest(controller_metrics.REGISTRY).decode())}
    assert value(ctl, "kubenas_controller_proposals", "kubenas_controller_proposals_total", experiment="obs") == 5
    assert value(ctl, "kubenas_controller_strategy_update_seconds",
                 "kubenas_controller_strategy_update_seconds_count", experiment="obs") >= 1

    # That every dashboard query and rule returns data from these metrics, with the labels
    # the legends use, is shown by a real Prometheus scraping the real tier
    # (tests/e2e/test_prometheus.py); promtool parses them (test_rules.py).

    # `kubectl describe nasexperiment obs`: start, the failed trial, the finish; no
    # Event per succeeded trial (routine, and two writes each).
    mine = [e for e in events if e["involvedObject"].get("kind") == "NASExperiment"
            and e["involvedObject"]["name"] == "obs"]
    reasons = [e["reason"] for e in mine]
    assert {"Accepted", "Started", "ControllerCreated", "MaxTrialsReached"} <= set(reasons), reasons
    ended = sorted(e["message"].split()[1] for e in mine if e["reason"].startswith("Trial"))
    assert len(ended) == 1, ended
    assert reasons.count("TrialSucceeded") == 0 and reasons.count("TrialFailed") == 1
    assert not [e for e in events if e["reason"] in ("JobCreated", "Running", "Succeeded")]
    failed = [e for e in mine if e["reason"] == "TrialFailed"][0]
    assert failed["type"] == "Warning" and "InvalidArchitecture" in failed["message"]
    retry = [e for e in events if e["reason"] == "Retrying"]
    assert retry and retry[0]["involvedObject"]["name"] == "obs-3"
