"""The operator's /metrics after real experiments ran in the emulated cluster, scraped
over HTTP and parsed with prometheus-client's parser; the dashboard's and the alert
rules' PromQL may only use what is exported; Events on the experiment."""
from __future__ import annotations

import asyncio
import json
import pathlib
import urllib.request

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubenas.cluster.metrics_server import Verdict
from kubenas.controller import metrics as controller_metrics
from kubenas.operator import metrics

from tests.integration.cluster import FakeCluster, Script, default_script, digits_experiment, wait_for

from . import promql

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/components/grafana/dashboards/kubenas.json"
RULES = ROOT / "deploy/components/prometheus-operator/prometheusrule.yaml"


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


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] if isinstance(v.get("query"), dict) else v["query"]
              for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def rule_exprs() -> list[str]:
    rule = yaml.safe_load(RULES.read_text())
    return [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]


def exported(families: dict) -> tuple[dict[str, set], set]:
    """{family or sample name: label names} and the histogram families."""
    names: dict[str, set] = {}
    histograms = set()
    for fam in families.values():
        if fam.type == "histogram":
            histograms.add(fam.name)
        for s in fam.samples:
            names.setdefault(s.name, set()).update(k for k in s.labels if k != "le")
            names.setdefault(fam.name, set()).update(k for k in s.labels if k != "le")
    names.update({k: set(v) for k, v in promql.BUILTIN.items()})
    return names, histograms


def check_promql(exprs: list[str], families: dict) -> None:
    names, histograms = exported(families)
    problems = []
    for expr in exprs:
        used, labels = promql.references(expr)
        assert used, f"no metric found in {expr!r}"
        carried: set = set()
        for name in used:
            if name not in names:
                problems.append(f"{name} (in {expr!r}) is not exported")
                continue
            carried |= names[name] | names.get(promql.family_of(name, histograms), set())
        missing = labels - carried - {"le"} - promql.TARGET_LABELS
        if missing:
            problems.append(f"labels {sorted(missing)} of {expr!r} are not on {sorted(used)}")
    assert not problems, "\n".join(problems)


def test_promql_reader():
    used, labels = promql.references(
        'histogram_quantile(0.9, sum by (namespace, le) (rate(kubenas_trial_queue_wait_seconds_bucket'
        '{namespace=~"$namespace"}[$__rate_interval]))) > 1800 unless on (experiment) absent(up{job="x"} == 1)')
    assert used == {"kubenas_trial_queue_wait_seconds_bucket", "up"}
    assert labels == {"namespace", "le", "experiment", "job"}
    assert promql.references('label_values(kubenas_trials{namespace=~"$namespace"}, experiment)') == (
        {"kubenas_trials"}, {"namespace", "experiment"})


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

    # Every PromQL expression shipped uses only exported metrics and labels.
    check_promql(dashboard_exprs() + rule_exprs(), {**f, **ctl})

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
