"""When an experiment ends: pure decisions over trial records (what to start is the plan's, kubenas.experiment.plan).

The same rule in both modes: every finished trial, whatever its outcome, uses one unit
of ``budget.maxTrials``; more than ``maxFailedTrials`` failures fail the experiment, and
so does one failure that every trial would repeat (``Unsatisfiable``: the spec asks for
what the node lacks); reaching ``objective.target`` or ``deadlineSeconds`` ends it early.
A spent budget without a single succeeded trial is no result: Failed (NoTrialSucceeded).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from kubenas.contract import (
    FAILED,
    MAX_TRIALS_REACHED,
    NO_TRIAL_SUCCEEDED,
    STOPPED,
    SUCCEEDED,
    TARGET_REACHED,
    TOO_MANY_FAILED_TRIALS,
    DEADLINE_EXCEEDED,
    UNSATISFIABLE,
)

from . import fidelity
from .ranking import best, best_reward, failures, finished_counts
from .record import TrialRecord


@dataclass(frozen=True)
class Outcome:
    phase: str    # Succeeded | Failed | Stopped
    # MaxTrialsReached | TargetReached | TooManyFailedTrials | Unsatisfiable | NoTrialSucceeded | DeadlineExceeded
    reason: str
    message: str


def is_better(a: float, b: float | None, goal: str) -> bool:
    return b is None or (a > b if goal == "maximize" else a < b)


def target_reached(reward: float | None, target: float | None, goal: str) -> bool:
    if reward is None or target is None:
        return False
    return reward >= target if goal == "maximize" else reward <= target


def experiment_outcome(spec: dict, records: Sequence[TrialRecord], elapsed_seconds: float) -> Outcome | None:
    """None while the experiment should go on; else how and why it ends.

    ``spec`` has defaults filled (kubenas.api.defaults.with_defaults).
    """
    budget, objective = spec["budget"], spec["objective"]
    failed = failed_outcome(spec, records)
    if failed is not None:
        return failed
    finished = sum(finished_counts(records).values())
    top = best_reward(records, objective["goal"])
    if target_reached(top, objective.get("target"), objective["goal"]):
        return Outcome(SUCCEEDED, TARGET_REACHED, f"best reward {top:.4g} reached objective.target {objective['target']}")
    if fidelity.plan(spec) is not None:  # maxTrials counts candidates; promotions come on top
        if fidelity.budget_spent(spec, records):
            return budget_spent(records, objective["goal"], fidelity.spent_message(spec, records))
    elif finished >= budget["maxTrials"]:
        return budget_spent(records, objective["goal"], f"{finished} trials finished (budget.maxTrials)")
    deadline = budget.get("deadlineSeconds")
    if deadline is not None and elapsed_seconds >= deadline:
        return Outcome(STOPPED, DEADLINE_EXCEEDED, f"ran {elapsed_seconds:.0f}s, budget.deadlineSeconds is {deadline}")
    return None


def failed_outcome(spec: dict, records: Sequence[TrialRecord]) -> Outcome | None:
    """The failures that end an experiment Failed whatever else happened: one that every
    trial would repeat (``Unsatisfiable``, the first such trial's), or more than
    ``budget.maxFailedTrials``; None otherwise."""
    repeated = next((r for r in records if r.phase == FAILED and r.reason == UNSATISFIABLE), None)
    if repeated is not None:
        return Outcome(FAILED, UNSATISFIABLE, f"trial {repeated.name} failed {UNSATISFIABLE}: {repeated.failure} "
                                              "(every trial would fail the same way)")
    failed = failures(records)
    if failed > spec["budget"]["maxFailedTrials"]:
        return Outcome(FAILED, TOO_MANY_FAILED_TRIALS,
                       f"{failed} trials failed, more than budget.maxFailedTrials ({spec['budget']['maxFailedTrials']})")
    return None


def budget_spent(records: Sequence[TrialRecord], goal: str, message: str) -> Outcome:
    """How an experiment whose budget is spent ends: Succeeded with a best trial, else
    Failed (NoTrialSucceeded) naming the last failure."""
    if best(records, goal) is not None:
        return Outcome(SUCCEEDED, MAX_TRIALS_REACHED, message)
    failed = [r for r in records if r.phase == FAILED]
    last = max(failed, key=lambda r: r.index or 0) if failed else None
    why = f"; the last failure: trial {last.name} {last.reason}: {last.failure}" if last is not None else ""
    return Outcome(FAILED, NO_TRIAL_SUCCEEDED, f"{message}, none succeeded{why}")
