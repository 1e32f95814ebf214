"""The pieces of the results commands without a run or a cluster: the NASTrial row
converter, the export table, the numbers behind the plots, kubeconfig errors, trial
logs, and user text printed as text (never rich markup)."""
from __future__ import annotations

import csv
import io
import json
import tomllib
from pathlib import Path

import pytest

from kubenas import experiment
from kubenas.cli import main
from kubenas.cli.results import export_text
from kubenas.cli.sources import CliError, connect, trial_log
from kubenas.local.plots import (decision_values, op_frequencies, pareto_front, top_curves, tradeoff_points,
                                 write_plots)

ROOT = Path(__file__).resolve().parents[2]
CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1}, {"op": "identity"}]}
CELL = {"type": "cell", "nodes": 3, "edges": [["conv_3x3"], ["skip_connect", "none"]], "channels": 4,
        "cellsPerStage": 1, "stages": 1}


def nastrial(index: int, phase: str = "Succeeded", reward=0.5, **status) -> dict:
    return {"metadata": {"name": f"e-{index}", "namespace": "ns"},
            "spec": {"experiment": "e", "index": index, "architecture": CHAIN, "hyperparameters": {"lr": 0.1},
                     "objective": {"metric": "accuracy"}},
            "status": {"phase": phase, "reward": reward, "metrics": {"parameters": 100 * (index + 1)},
                       "history": [{"epoch": 1, "accuracy": reward}], **status}}


def row(index: int, reward: float | None, parameters: float | None = None, status="Succeeded", arch=CHAIN,
        history=None) -> dict:
    return {"name": f"r-{index}", "index": index, "status": status, "reward": reward, "architecture": arch,
            "hyperparameters": {}, "metrics": {} if parameters is None else {"parameters": parameters},
            "history": history or []}


# ----------------------------------------------------------------- one converter


def test_a_nastrial_row_ranks_as_the_nastrial_does():
    trials = [nastrial(0, reward=0.4), nastrial(1, reward=0.9), nastrial(2, "Failed", reward=None),
              nastrial(3, "Running", reward=None), nastrial(4, reward=float("nan"))]
    rows = [experiment.row_from_trial_object(t) for t in trials]
    direct = experiment.ranked([experiment.from_trial_object(t) for t in trials], "maximize")
    via_rows = experiment.ranked([experiment.from_row(r) for r in rows], "maximize")
    assert [r.name for r in via_rows] == [r.name for r in direct] == ["e-1", "e-0"]
    assert rows[4]["reward"] is None  # not finite: no reward, as from_trial_object says
    assert rows[1]["architecture"] == CHAIN and rows[1]["hyperparameters"] == {"lr": 0.1}
    assert rows[0]["metrics"] == {"parameters": 100} and rows[0]["history"] == [{"epoch": 1, "accuracy": 0.4}]


def test_a_nastrial_without_status_is_a_pending_row():
    r = experiment.row_from_trial_object({"metadata": {"name": "e-0"}, "spec": {"index": 0}})
    assert (r["status"], r["reward"], r["metrics"], r["history"]) == ("Pending", None, {}, [])


# ------------------------------------------------------------------------ export


def test_csv_export_flattens_hyperparameters_and_metrics():
    rows = [row(1, 0.8, 200), {**row(0, 0.7, 100), "hyperparameters": {"learningRate": 0.05, "optimizer": "sgd"}}]
    table = list(csv.DictReader(io.StringIO(export_text(rows, "csv"))))
    assert [t["name"] for t in table] == ["r-0", "r-1"]  # by index
    assert table[0]["hp.learningRate"] == "0.05" and table[0]["hp.optimizer"] == "sgd"
    assert table[1]["hp.learningRate"] == "" and table[1]["metric.parameters"] == "200"
    assert json.loads(table[0]["genotype"]) == CHAIN and table[0]["architecture"] == "conv3x3/1:8 > identity"


def test_csv_export_of_a_multi_fidelity_experiment_names_candidate_and_rung():
    rows = [{**row(0, 0.6, 100), "fidelity": {"candidate": 0, "rung": 0, "epochs": 1}},
            {**row(1, 0.8, 100), "fidelity": {"candidate": 0, "rung": 1, "epochs": 3}}]
    text = export_text(rows, "csv")
    assert text.splitlines()[0].startswith("name,index,candidate,rung,status")
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(t["candidate"], t["rung"]) for t in table] == [("0", "0"), ("0", "1")]
    assert "candidate" not in export_text([row(0, 0.6, 100)], "csv").splitlines()[0]


def test_jsonl_export_is_the_rows():
    rows = [row(1, 0.8), row(0, None, status="Failed")]
    assert [json.loads(line) for line in export_text(rows, "jsonl").splitlines()] == [rows[1], rows[0]]


# ------------------------------------------------------------------------- plots


@pytest.mark.parametrize("goal, front", [
    ("maximize", [(10, 0.5), (20, 0.7), (40, 0.9)]),
    ("minimize", [(10, 0.5), (15, 0.4)]),
])
def test_pareto_front(goal, front):
    points = [(10, 0.5, "a"), (20, 0.7, "b"), (30, 0.6, "c"), (40, 0.9, "d"), (15, 0.4, "e"), (20, 0.65, "f")]
    assert [(p[0], p[1]) for p in pareto_front(points, goal)] == front


def test_tradeoff_points_only_succeeded_trials_that_measured_the_cost():
    rows = [row(0, 0.5, 100), row(1, 0.6), row(2, None, 50, status="Failed"), row(3, 0.7, float("inf"))]
    assert tradeoff_points(rows, "parameters") == [(100, 0.5, "r-0")]


def test_op_frequencies_over_groups_of_trials():
    chain_conv = {"type": "chain", "layers": [{"op": "conv"}, {"op": "conv"}]}
    chain_pool = {"type": "chain", "layers": [{"op": "max_pool"}, {"op": "conv"}]}
    rows = [row(i, 0.5, arch=chain_pool) for i in range(2)] + [row(i, 0.5, arch=chain_conv) for i in range(2, 4)]
    centers, shares = op_frequencies(rows, windows=2)
    assert centers == [0.5, 2.5]
    assert shares == {"conv": [0.5, 1.0], "max_pool": [0.5, 0.0]}
    centers, shares = op_frequencies([row(0, 0.5, arch=CELL)], windows=10)
    assert centers == [0.0] and shares == {"conv_3x3": [1 / 3], "none": [1 / 3], "skip_connect": [1 / 3]}


def test_top_curves_are_the_ranked_trials_histories():
    history = lambda v: [{"epoch": 1, "accuracy": v / 2}, {"epoch": 2, "accuracy": v}]  # noqa: E731
    rows = [row(0, 0.5, history=history(0.5)), row(1, 0.9, history=history(0.9)),
            row(2, None, status="Failed", history=history(0.3))]
    assert top_curves(rows, "maximize", "accuracy", top=5) == [("r-1", [1, 2], [0.45, 0.9]),
                                                               ("r-0", [1, 2], [0.25, 0.5])]


def test_write_plots_writes_three_pngs(tmp_path):
    rows = [row(i, 0.5 + i / 10, 100 * (i + 1), history=[{"epoch": 1, "accuracy": 0.5}]) for i in range(4)]
    written = write_plots(tmp_path, rows, "maximize", "accuracy", "t")
    assert [p.name for p in written] == ["tradeoff.png", "curves.png", "ops.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


# -------------------------------------------------------------------- kubeconfig


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
- {name: one, context: {cluster: c, user: u, namespace: research}}
- {name: two, context: {cluster: c, user: u}}
current-context: one
"""


def test_connect_takes_the_contexts_namespace(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    kube, namespace = connect(str(path), None)
    assert namespace == "research" and kube.api.configuration.host == "https://127.0.0.1:1"
    assert kube.api.user_agent.startswith("kubenas-cli/")
    assert connect(str(path), "two")[1] is None


def test_an_unknown_context_names_the_known_ones(tmp_path):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    with pytest.raises(CliError, match=r"--context three is not in .* \(it has: one, two\); pass one of those"):
        connect(str(path), "three")


def test_no_kubeconfig_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["get"]) == 1
    assert capsys.readouterr().err.strip() == ("error: no kubeconfig: set KUBECONFIG or pass --kubeconfig FILE "
                                               "(or give a run directory such as runs/demo to read a local run)")


def test_an_unreachable_api_server_is_one_line(tmp_path, capsys):
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    assert main(["top", "e", "--kubeconfig", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach the API server to get nasexperiment e") and "\n" not in err
    assert err.endswith("check that the cluster is up and the --context/--kubeconfig is the right one")


# -------------------------------------------------------------------------- logs


class FakeKube:
    def __init__(self, trial, pods, log="epoch 1 ...\n"):
        self.trial, self.pods, self.log = trial, pods, log
        self.core = self
        self.asked = []

    def get_custom(self, plural, namespace, name):
        return self.trial

    def list_pods(self, namespace, selector):
        self.asked.append(selector)
        return self.pods

    def read_namespaced_pod_log(self, name, namespace, **kwargs):
        return f"{name}: {self.log}"


def test_logs_read_the_newest_pod_of_the_trials_job():
    pods = [{"metadata": {"name": "e-3-aaaaa", "creationTimestamp": "2026-01-01T00:00:00Z"}},
            {"metadata": {"name": "e-3-bbbbb", "creationTimestamp": "2026-01-01T00:05:00Z"}}]
    kube = FakeKube(nastrial(3, jobName="e-3"), pods)
    assert trial_log(kube, "ns", "e-3") == "e-3-bbbbb: epoch 1 ...\n"
    assert kube.asked == ["job-name=e-3"]


def test_logs_of_a_trial_without_pods_or_missing_say_why():
    with pytest.raises(CliError, match="trial e-3 has no pod in namespace ns .*kubectl get nastrial e-3 -n ns"):
        trial_log(FakeKube(nastrial(3, "Pending", reward=None), []), "ns", "e-3")
    with pytest.raises(CliError, match="nastrial e-9 not found in namespace ns"):
        trial_log(FakeKube(None, []), "ns", "e-9")


# ------------------------------------------------------------ text, not markup


def test_user_text_is_printed_as_text(tmp_path, capsys):
    odd = "[/bold][link=x]boom"
    run = tmp_path / "run"
    run.mkdir()
    (run / "experiment.yaml").write_text("metadata: {name: '[red]x'}\nspec: {objective: {metric: accuracy}}\n")
    bad = {**row(0, 0.5), "name": odd, "message": odd, "hyperparameters": {"opt": odd}}
    (run / "trials.jsonl").write_text(json.dumps(bad) + "\n")
    assert main(["top", str(run)]) == 0
    assert main(["get", str(run)]) == 0
    assert main(["export", str(run), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.count(odd) >= 3 and "[red]x: top trials" in out


def test_kubectl_plugin_name_is_a_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-kubenas"] == scripts["kubenas"] == "kubenas.cli:main"


def test_plots_of_a_parameters_space_search_have_no_operations_and_do_not_fail(tmp_path):
    """A `parameters` space's decisions are the user's, not operations: the op chart says
    so instead of failing the run's end (it did: matplotlib's stackplot of nothing)."""
    arch = {"type": "parameters", "parameters": {"lr": 0.01, "layers": [{"width": 32}]}}
    rows = [row(i, 0.5 + i / 10, arch=arch, history=[{"epoch": 1, "accuracy": 0.5}]) for i in range(3)]
    centers, shares = op_frequencies(rows)
    assert centers and shares == {}
    written = write_plots(tmp_path, rows, "maximize", "accuracy", "t")
    assert [p.name for p in written] == ["tradeoff.png", "curves.png", "ops.png"]


def test_ops_png_of_a_parameters_space_plots_each_decision_over_the_search(tmp_path):
    """ops.png of a `parameters` space said "no operations to chart"; it plots the
    decisions instead: one panel per flat decision, the value per trial, coloured by reward."""
    arch = lambda lr, norm, widths: {"type": "parameters", "parameters": {  # noqa: E731
        "lr": lr, "norm": {"option": norm, "momentum": 0.9}, "layers": [{"width": w} for w in widths]}}
    rows = [row(0, 0.5, arch=arch(0.1, "batch", [32])), row(1, None, status="Failed", arch=arch(0.01, "layer", [64, 8])),
            row(2, 0.8, arch=arch(0.001, "batch", [16]))]
    values = decision_values(rows)
    assert list(values) == ["lr", "norm", "norm.momentum", "layers", "layers[0].width", "layers[1].width"]
    assert values["lr"] == [(0, 0.1, 0.5), (1, 0.01, None), (2, 0.001, 0.8)]
    assert values["norm"] == [(0, "batch", 0.5), (1, "layer", None), (2, "batch", 0.8)]
    assert values["layers[1].width"] == [(1, 8, None)]
    assert decision_values([row(0, 0.5, arch=CHAIN)]) == {}
    written = write_plots(tmp_path, rows, "maximize", "accuracy", "t")
    ops = written[[p.name for p in written].index("ops.png")].read_bytes()
    width, height = int.from_bytes(ops[16:20], "big"), int.from_bytes(ops[20:24], "big")
    assert (width, height) == (1380, 580)  # 3 x 2 decision panels, not the 700 x 400 operations chart


def test_csv_export_of_a_parameters_space_has_a_column_per_decision():
    arch = lambda lr, widths: {"type": "parameters", "parameters": {  # noqa: E731
        "lr": lr, "act": "gelu", "layers": [{"width": w} for w in widths]}}
    rows = [row(1, 0.8, arch=arch(0.01, [64, 8])), row(0, 0.7, arch=arch(0.1, [32]))]
    text = export_text(rows, "csv")
    header = text.splitlines()[0].split(",")
    assert header[header.index("genotype") + 1:header.index("genotype") + 6] == \
        ["param.lr", "param.act", "param.layers", "param.layers[0].width", "param.layers[1].width"]
    table = list(csv.DictReader(io.StringIO(text)))
    assert [(t["param.lr"], t["param.layers"], t["param.layers[0].width"], t["param.layers[1].width"])
            for t in table] == [("0.1", "1", "32", ""), ("0.01", "2", "64", "8")]
    assert "param." not in export_text([row(0, 0.6, 100)], "csv").splitlines()[0]  # chain/cell: the genotype only
