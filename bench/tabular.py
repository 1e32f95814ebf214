"""A table-backed trainer and the controller loop around it, for search-efficiency benchmarks.

``Table`` loads an exhaustive table (``bench/generate_table.py``): the space it was made
for, and per architecture the validation accuracy (the reward), test accuracy,
parameters and training seconds. ``TabularTrainer.run_trial(trial)`` has the real
trainer's contract (a trial spec in, a result dict of docs/formats.md out) but looks the
architecture up instead of training it. ``run_search`` drives a real strategy object the
way the controller and the local runner do: ``parallel`` trials in flight, results
observed in completion order, failed trials observed as ``None``. Completion order comes
from a simulated clock on which each trial takes its recorded training seconds, so
``parallel > 1`` reproduces the asynchrony of a real search (short trials overtake long
ones).

Lookup is by the space's own encoding of the candidate (``space.encode``, one choice
index per edge), which is what the table's ``encoding`` column holds; a candidate that
is not a member of the table's space (another skeleton, another op list) is a
``CandidateError``, never a silent miss.
"""
from __future__ import annotations

import csv
import heapq
import json
import math
import time
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubenas.contract.result import failed_result, trial_result
from kubenas.space import SearchSpace
from kubenas.strategies import make_strategy

HERE = Path(__file__).resolve().parent
DEFAULT_TABLE = HERE / "data" / "cell4x4_digits.csv"


def encoding_string(encoding) -> str:
    return "".join(str(i) for i in encoding)


class Table:
    """An exhaustive benchmark table: every architecture of one space and its results."""

    def __init__(self, space: SearchSpace, rows: dict[str, dict], meta: dict | None = None):
        self.space = space
        self.meta = meta or {}
        self.rows = rows  # encoding string -> {"valAccuracy": float|None, "testAccuracy": ..., ...}
        rewards = sorted(r["valAccuracy"] for r in rows.values() if r["valAccuracy"] is not None)
        if not rewards:
            raise ValueError("the table has no successful architecture")
        self._sorted_rewards = rewards
        self.optimum = rewards[-1]
        self.test_optimum = max(r["testAccuracy"] for r in rows.values() if r["testAccuracy"] is not None)
        best = [r for r in rows.values() if r["valAccuracy"] == self.optimum]
        # What a perfect search would report on test: the best test accuracy among the
        # architectures that tie for the best validation accuracy.
        self.test_of_optimum = max(r["testAccuracy"] for r in best)

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path = DEFAULT_TABLE) -> "Table":
        path = Path(path)
        meta = json.loads(path.with_suffix(".meta.json").read_text())
        space = SearchSpace.from_spec(meta["searchSpace"])
        with path.open(newline="") as f:
            rows = {row["encoding"]: _parse_row(row) for row in csv.DictReader(f)}
        return cls(space, rows, meta)

    @property
    def complete(self) -> bool:
        return len(self.rows) == self.space.size()

    # -- lookup ---------------------------------------------------------------------------

    def row(self, candidate: dict) -> dict | None:
        """The table row of a candidate (None if the table lacks it: a partial table)."""
        return self.rows.get(encoding_string(self.space.encode(candidate)))

    def rank(self, reward: float) -> int:
        """1 + the number of architectures with a strictly better reward (ties share a rank)."""
        return len(self._sorted_rewards) - bisect_right(self._sorted_rewards, reward) + 1

    def regret(self, reward: float) -> float:
        return self.optimum - reward


def _parse_row(row: dict) -> dict:
    def number(key, kind=float):
        value = row.get(key, "")
        return kind(value) if value not in ("", None) else None

    def numbers(key):  # the per-epoch columns of a curves table (generate_curves.py), else None
        value = row.get(key) or ""
        return [float(v) for v in value.split(";")] if value else None

    return {"valAccuracy": number("valAccuracy"), "testAccuracy": number("testAccuracy"),
            "valLoss": number("valLoss"), "parameters": number("parameters", int),
            "trainSeconds": number("trainSeconds") or 1.0, "status": row.get("status", "Succeeded"),
            "hash": row.get("hash"), "curve": numbers("curve"), "epochSeconds": numbers("epochSeconds")}


class TabularTrainer:
    """``run_trial(trial) -> result``, the trainer's contract, answered from the table.

    A succeeded row gives reward = validation accuracy; a failed row, or an architecture
    the (partial) table lacks, gives a Failed result (reward None), which the strategy
    observes as a failed trial.
    """

    def __init__(self, table: Table):
        self.table = table

    def run_trial(self, trial: dict) -> dict:
        candidate = {"architecture": trial["architecture"], "hyperparameters": trial.get("hyperparameters") or {}}
        row = self.table.row(candidate)
        if row is None:
            return failed_result("InternalError", "architecture missing from the (partial) table", device="table")
        if row["valAccuracy"] is None:
            return failed_result(row["status"].partition(":")[2] or "InternalError",
                                 "failed when the table was generated", metrics={"wallSeconds": row["trainSeconds"]},
                                 device="table")
        return trial_result("Succeeded", reward=row["valAccuracy"],
                            metrics={"accuracy": row["valAccuracy"], "loss": row["valLoss"],
                                     "testAccuracy": row["testAccuracy"], "parameters": row["parameters"],
                                     "wallSeconds": row["trainSeconds"]}, device="table")


@dataclass
class SearchRun:
    """One search: results in completion order, and the strategy's own time."""

    strategy: str
    seed: int
    parallel: int
    rewards: list = field(default_factory=list)        # per finished trial, completion order (None = failed)
    test: list = field(default_factory=list)           # test accuracy of each finished trial
    indices: list = field(default_factory=list)        # trial index of each finished trial
    propose_seconds: list = field(default_factory=list)
    observe_seconds: list = field(default_factory=list)

    def best_after(self, n: int) -> tuple[float | None, float | None]:
        """(best reward, test accuracy of that architecture) among the first ``n`` finished trials.

        Among equal best rewards the first found is kept, as a leaderboard sorted by
        reward then index would report it.
        """
        best, best_test = None, None
        for reward, test in zip(self.rewards[:n], self.test[:n]):
            if reward is not None and (best is None or reward > best):
                best, best_test = reward, test
        return best, best_test


def run_search(table: Table, strategy_spec: dict, budget: int, parallel: int = 1,
               trainer: TabularTrainer | None = None) -> SearchRun:
    """Run one search against the table the way the controller does.

    ``parallel`` trials are kept in flight; each takes its table ``trainSeconds`` on a
    simulated clock; the earliest to finish (ties: lower index) is observed next and its
    slot refilled with a new proposal, until ``budget`` trials have finished.
    """
    trainer = trainer or TabularTrainer(table)
    strategy = make_strategy(strategy_spec, table.space, "maximize")
    run = SearchRun(strategy=strategy_spec["type"], seed=strategy_spec.get("seed", 0), parallel=parallel)
    in_flight: list[tuple[float, int, dict, dict]] = []  # (finish time, index, candidate, result)
    clock, next_index = 0.0, 0

    def launch() -> None:
        nonlocal next_index
        t0 = time.perf_counter()
        candidate = strategy.propose(next_index)
        run.propose_seconds.append(time.perf_counter() - t0)
        trial = {"index": next_index, "architecture": candidate["architecture"],
                 "hyperparameters": candidate["hyperparameters"]}
        result = trainer.run_trial(trial)
        seconds = result["metrics"].get("wallSeconds") or 1.0
        heapq.heappush(in_flight, (clock + seconds, next_index, candidate, result))
        next_index += 1

    while next_index < min(parallel, budget):
        launch()
    while in_flight:
        clock, index, candidate, result = heapq.heappop(in_flight)
        reward = result["reward"]
        t0 = time.perf_counter()
        strategy.observe(index, candidate, reward)
        run.observe_seconds.append(time.perf_counter() - t0)
        run.rewards.append(reward)
        run.test.append(result["metrics"].get("testAccuracy"))
        run.indices.append(index)
        if next_index < budget:
            launch()
    return run


def summarize(values: list[float]) -> dict[str, Any]:
    """mean, std, median, quartiles, n of a list of numbers."""
    values = sorted(values)
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0

    def quantile(q: float) -> float:
        position = q * (n - 1)
        low = math.floor(position)
        high = min(low + 1, n - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    return {"mean": mean, "std": std, "sem": std / math.sqrt(n) if n else 0.0, "median": quantile(0.5),
            "q25": quantile(0.25), "q75": quantile(0.75), "n": n}
