"""The table-backed trainer of bench/tabular.py: lookup, rank/regret, and the controller
loop it drives (a tiny synthetic table; the benchmark itself is not run in tests)."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from kubenas.space import CandidateError, SearchSpace  # noqa: E402
from tabular import Table, TabularTrainer, encoding_string, run_search  # noqa: E402

SPACE = {"type": "cell", "cell": {"nodes": 3, "operations": ["none", "skip_connect", "conv_3x3"],
                                  "channels": 4, "stages": 1, "cellsPerStage": 1}}


def synthetic_rows(space: SearchSpace) -> dict[str, dict]:
    """27 architectures: reward grows with the number of conv_3x3 edges; 'all none' failed."""
    rows = {}
    for encoding in space.iter_encodings():
        key = encoding_string(encoding)
        convs = key.count("2")
        failed = key == "000"
        rows[key] = {"valAccuracy": None if failed else 0.5 + 0.1 * convs + 0.001 * int(key[0]),
                     "testAccuracy": None if failed else 0.45 + 0.1 * convs, "valLoss": 1.0, "parameters": 10,
                     "trainSeconds": 1.0 + int(key[-1]), "status": "Failed:Diverged" if failed else "Succeeded",
                     "hash": None}
    return rows


@pytest.fixture
def table() -> Table:
    space = SearchSpace.from_spec(SPACE)
    return Table(space, synthetic_rows(space))


def candidate(edges):
    return {"architecture": {"type": "cell", "nodes": 3, "edges": edges, "channels": 4, "stages": 1,
                             "cellsPerStage": 1}, "hyperparameters": {}}


def test_lookup_by_encoding(table):
    trainer = TabularTrainer(table)
    result = trainer.run_trial({"index": 0, **candidate([["conv_3x3"], ["skip_connect", "conv_3x3"]])})
    assert result["status"] == "Succeeded"
    assert result["reward"] == pytest.approx(0.7 + 0.002)  # "212": two convs, first edge conv
    assert result["metrics"]["testAccuracy"] == pytest.approx(0.65)
    assert result["metrics"]["wallSeconds"] == 3.0


def test_failed_row_and_missing_row_are_failed_trials(table):
    trainer = TabularTrainer(table)
    failed = trainer.run_trial(candidate([["none"], ["none", "none"]]))
    assert (failed["status"], failed["reward"], failed["reason"]) == ("Failed", None, "Diverged")
    del table.rows["111"]
    missing = trainer.run_trial(candidate([["skip_connect"], ["skip_connect", "skip_connect"]]))
    assert (missing["status"], missing["reward"]) == ("Failed", None)


def test_foreign_candidate_is_refused(table):
    foreign = candidate([["conv_3x3"], ["conv_3x3", "conv_3x3"]])
    foreign["architecture"]["channels"] = 8
    with pytest.raises(CandidateError):
        TabularTrainer(table).run_trial(foreign)


def test_rank_and_regret_with_ties(table):
    assert table.optimum == pytest.approx(0.802)  # "222"
    assert table.rank(table.optimum) == 1
    assert table.regret(table.optimum) == 0
    # Two convs give 0.700 + 0.001 * (first digit): "022" 0.700, "122" 0.701, and
    # "202", "212", "220", "221" 0.702; "222" (0.802) is the optimum.
    assert table.rank(0.702) == 2  # four architectures tie at rank 2
    assert table.rank(0.701) == 6
    assert table.rank(0.7) == 7
    assert table.regret(0.7) == pytest.approx(0.102)


def test_load_from_files(tmp_path, table):
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["encoding", "hash", "valAccuracy", "testAccuracy", "valLoss",
                                               "parameters", "trainSeconds", "status"])
        writer.writeheader()
        for key, row in table.rows.items():
            writer.writerow({"encoding": key, **{k: ("" if v is None else v) for k, v in row.items()}})
    path.with_suffix(".meta.json").write_text(json.dumps({"searchSpace": SPACE}))
    loaded = Table.load(path)
    assert loaded.complete and loaded.optimum == pytest.approx(table.optimum)
    assert loaded.rows["000"]["valAccuracy"] is None


@pytest.mark.parametrize("kind", ["random", "evolution"])
@pytest.mark.parametrize("parallel", [1, 3])
def test_run_search_observes_every_trial_once(table, kind, parallel):
    spec = {"type": kind, "seed": 1}
    if kind == "evolution":
        spec["evolution"] = {"populationSize": 4, "sampleSize": 2}
    run = run_search(table, spec, budget=20, parallel=parallel)
    assert sorted(run.indices) == list(range(20))
    assert len(run.rewards) == len(run.propose_seconds) == len(run.observe_seconds) == 20
    best, _ = run.best_after(20)
    assert best == max(r for r in run.rewards if r is not None)
    if parallel == 1:
        assert run.indices == list(range(20))  # sequential: completion order = index order


def test_parallel_completion_follows_the_simulated_clock(table):
    run = run_search(table, {"type": "random", "seed": 3}, budget=12, parallel=4)
    assert run.indices != sorted(run.indices)  # short trials overtake long ones
