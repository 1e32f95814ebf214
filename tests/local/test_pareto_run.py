"""A Pareto search run locally end to end (deploy/examples/pareto-digits-latency.yaml,
shrunk): the front in pareto.json is the non-dominated set of the trials, it is plotted,
and the leaderboard marks it."""
from __future__ import annotations

import json

import pytest
import yaml

from kubenas.cli import main
from kubenas.contract.pareto import dominates

from .conftest import ROOT, finished_lines, write

EXAMPLE = ROOT / "deploy" / "examples" / "pareto-digits-latency.yaml"


def objectives(row) -> tuple:
    return (row["reward"], -row["metrics"]["latencyMs"])


def check_front(run_dir):
    rows = [r for r in finished_lines(run_dir) if r["status"] == "Succeeded"]
    pareto = json.loads((run_dir / "pareto.json").read_text())
    assert pareto["objectives"] == [{"metric": "reward", "goal": "maximize"},
                                    {"metric": "latencyMs", "goal": "minimize"}]
    front = {t["name"] for t in pareto["front"]}
    assert front
    by_name = {r["name"]: r for r in rows}
    for t in pareto["front"]:
        assert t["metrics"]["latencyMs"] == by_name[t["name"]]["metrics"]["latencyMs"]
    # exactly the trials no other trial dominates
    for r in rows:
        dominated = any(dominates(objectives(o), objectives(r)) for o in rows)
        assert (r["name"] in front) == (not dominated), r["name"]
    rewards = [t["reward"] for t in pareto["front"]]
    assert rewards == sorted(rewards, reverse=True)
    return front


def test_a_small_pareto_search_lists_and_plots_its_front(tmp_path, capsys):
    experiment = yaml.safe_load(EXAMPLE.read_text())
    experiment["spec"]["budget"].update(maxTrials=6, parallelTrials=2)
    experiment["spec"]["strategy"]["evolution"] = {"populationSize": 3, "sampleSize": 2}
    experiment["spec"]["trial"]["dataset"]["limit"] = 300
    experiment["spec"]["trial"]["training"].update(epochs=1)
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, experiment)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    front = check_front(run_dir)
    assert (run_dir / "pareto.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["top", str(run_dir)]) == 0
    table = capsys.readouterr().out
    assert "latencyMs" in table and "front" in table
    marked = [line for line in table.splitlines() if line.rstrip(" │|").endswith("yes")]
    assert len(marked) == min(len(front), 10)
    out = tmp_path / "plots"
    assert main(["plot", str(run_dir), "--out", str(out)]) == 0
    assert (out / "pareto.png").stat().st_size > 0


@pytest.mark.slow
def test_the_pareto_example_runs_as_shipped(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", str(EXAMPLE), "--run-dir", str(run_dir), "--no-progress"]) == 0
    check_front(run_dir)
    assert (run_dir / "pareto.png").is_file() and (run_dir / "tradeoff.png").is_file()
