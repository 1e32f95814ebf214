"""When a local experiment ends: a pure decision over what has finished so far."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    phase: str    # Succeeded | Failed | Stopped
    reason: str   # MaxTrialsReached | TargetReached | TooManyFailedTrials | DeadlineExceeded
    message: str


def is_better(a: float, b: float | None, goal: str) -> bool:
    return b is None or (a > b if goal == "maximize" else a < b)


def target_reached(reward: float | None, target: float | None, goal: str) -> bool:
    if reward is None or target is None:
        return False
    return reward >= target if goal == "maximize" else reward <= target


def decide(spec: dict, counts: dict, best_reward: float | None, elapsed_seconds: float) -> Outcome | None:
    """None while the experiment should go on; else how and why it ends.

    `spec` has defaults filled; `counts` maps trial phase to number of finished
    trials. Every finished trial (any outcome) uses one unit of budget.maxTrials.
    """
    budget, objective = spec["budget"], spec["objective"]
    failed = counts.get("Failed", 0)
    finished = sum(counts.values())
    if failed > budget["maxFailedTrials"]:
        return Outcome("Failed", "TooManyFailedTrials",
                       f"{failed} trials failed, more than budget.maxFailedTrials ({budget['maxFailedTrials']})")
    if target_reached(best_reward, objective.get("target"), objective["goal"]):
        return Outcome("Succeeded", "TargetReached",
                       f"best reward {best_reward:.4g} reached objective.target {objective['target']}")
    if finished >= budget["maxTrials"]:
        return Outcome("Succeeded", "MaxTrialsReached", f"{finished} trials finished (budget.maxTrials)")
    deadline = budget.get("deadlineSeconds")
    if deadline is not None and elapsed_seconds >= deadline:
        return Outcome("Stopped", "DeadlineExceeded", f"ran {elapsed_seconds:.0f}s, budget.deadlineSeconds is {deadline}")
    return None
