"""`kubenas get`, `watch`, `top`, `export` and `plot` against a running experiment on a real API
server, as a user runs them: a subprocess given the cluster's kubeconfig. The trials
are run by the node stand-in's instant trainer (a reward from the genotype's hash, three
epochs of history, no training), so the test costs the control plane only.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from tests.e2e.test_cluster import apply, experiment
from tests.realtier.cluster import OPERATOR_NS, REPO, LocalCluster
from tests.realtier.node import INSTANT_TRAINER_IMAGE

POLICY = "kubenas-admission-policy"
TRIALS = 6


def kubenas(cluster, *args, kubeconfig: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubenas.cli", *args, "--kubeconfig",
                           kubeconfig or str(cluster.kubeconfig)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


@pytest.fixture()
def instant_trainer_allowed(installed):
    """As a cluster admin would for a new trainer image: allow the instant trainer's
    prefix in the admission policy's ConfigMap, and put it back afterwards."""
    before = installed.get_json("configmap", POLICY, "-n", OPERATOR_NS).get("data") or {}
    prefixes = before.get("trainerImagePrefixes", "")
    allowed = ", ".join(p for p in (prefixes, INSTANT_TRAINER_IMAGE.rsplit("/", 1)[0] + "/") if p)
    installed.kubectl("-n", OPERATOR_NS, "patch", "configmap", POLICY, "--type=merge",
                      "-p", json.dumps({"data": {"trainerImagePrefixes": allowed}}))
    yield
    installed.kubectl("-n", OPERATOR_NS, "patch", "configmap", POLICY, "--type=merge",
                      "-p", json.dumps({"data": {"trainerImagePrefixes": prefixes}}))


def test_watch_top_export_get_plot_follow_a_running_experiment(cluster, namespace, instant_trainer_allowed, tmp_path):
    body = experiment("e2e-cli", maxTrials=TRIALS, parallelTrials=2)
    body["spec"]["trial"]["template"]["image"] = INSTANT_TRAINER_IMAGE
    apply(cluster, namespace, body)

    # watch: started while the experiment runs, it prints each trial as it finishes and
    # returns when the experiment has ended (rc 0 for Succeeded).
    watch = kubenas(cluster, "watch", "e2e-cli", "-n", namespace, timeout=600)
    assert watch.returncode == 0, watch.stderr + watch.stdout
    lines = watch.stdout.splitlines()
    assert lines[0].startswith(f"kubenas: watching {namespace}/e2e-cli"), lines[0]
    assert "Succeeded)" not in lines[0], "the watch began after the experiment had ended"
    trials = json.loads(cluster.kubectl("get", "nastrials", "-n", namespace, "-o", "json").stdout)["items"]
    assert len(trials) == TRIALS
    for t in trials:
        line = next(x for x in lines if f" {t['metadata']['name']} " in x)
        assert line.startswith("Succeeded") and f"reward {t['status']['reward']:.4f}" in line, line
    assert f"Succeeded: {TRIALS} trials finished" in watch.stdout
    exp = cluster.get_json("nasexperiment", "e2e-cli", "-n", namespace)
    assert exp["status"]["phase"] == "Succeeded"
    best = exp["status"]["bestTrial"]

    # top: the leaderboard, best first, agrees with the operator's bestTrial.
    top = kubenas(cluster, "top", "e2e-cli", "-n", namespace, "-k", "3")
    assert top.returncode == 0, top.stderr
    ranked = [line.split("│")[2].strip() for line in top.stdout.splitlines() if line.startswith("│")]
    assert len(ranked) == 3 and ranked[0] == best["name"], top.stdout
    assert f"{best['reward']:.4f}" in top.stdout and f"{TRIALS} succeeded" in top.stdout

    # export: every trial with its architecture, hyperparameters and metrics, as the API has them.
    by_name = {t["metadata"]["name"]: t for t in trials}
    rows = list(csv.DictReader(io.StringIO(kubenas(cluster, "export", "e2e-cli", "-n", namespace,
                                                   "--format", "csv").stdout)))
    assert sorted(r["name"] for r in rows) == sorted(by_name)
    for r in rows:
        t = by_name[r["name"]]
        assert float(r["reward"]) == pytest.approx(t["status"]["reward"])
        assert json.loads(r["genotype"]) == t["spec"]["architecture"]
        assert float(r["metric.parameters"]) == t["status"]["metrics"]["parameters"]
        assert r["epochs"] == "3" and r["status"] == "Succeeded"
    jsonl = kubenas(cluster, "export", "e2e-cli", "-n", namespace, "--format", "jsonl").stdout
    objects = [json.loads(line) for line in jsonl.splitlines()]
    assert [o["index"] for o in objects] == list(range(TRIALS))
    for o in objects:
        t = by_name[o["name"]]
        assert o["architecture"] == t["spec"]["architecture"]
        assert o["hyperparameters"] == t["spec"].get("hyperparameters", {})
        assert o["history"] == t["status"]["history"] and o["metrics"] == t["status"]["metrics"]

    # get: the namespace's experiments, phase and best.
    get = kubenas(cluster, "get", "-n", namespace)
    row = next(line for line in get.stdout.splitlines() if "e2e-cli" in line)
    assert "Succeeded" in row and f"{best['reward']:.4f}" in row and best["name"] in row

    everywhere = kubenas(cluster, "get", "-A")
    assert any(line.split("│")[1].strip() == namespace and "e2e-cli" in line for line in everywhere.stdout.splitlines()
               if line.startswith("│")), everywhere.stdout

    # plot: the run directory's plots, drawn from the NASTrials.
    plot = kubenas(cluster, "plot", "e2e-cli", "-n", namespace, "--out", str(tmp_path / "plots"))
    assert plot.returncode == 0, plot.stderr
    for name in ("progress.png", "tradeoff.png", "curves.png", "ops.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"

    # Errors are one line naming the fix.
    missing = kubenas(cluster, "top", "nope", "-n", namespace)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (f"error: nasexperiment nope not found in namespace {namespace}; list them "
                                      f"with `kubenas get -n {namespace}` (or pass -n, or a run directory)")
    if isinstance(cluster, LocalCluster):  # a user with no role in the namespace
        forbidden = kubenas(cluster, "top", "e2e-cli", "-n", namespace, kubeconfig=cluster.user_kubeconfig("alice"))
        assert forbidden.returncode == 1 and len(forbidden.stderr.strip().splitlines()) == 1, forbidden.stderr
        assert forbidden.stderr.startswith("error: forbidden: cannot get nasexperiment e2e-cli in namespace")
        assert "ask an admin for read access" in forbidden.stderr
