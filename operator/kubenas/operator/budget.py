"""Budget decisions (pure): when an experiment ends, and how many trials to start.

The end of an experiment is decided exactly as in local mode
(``kubenas.local.budget.decide``): every finished trial, whatever its outcome, uses one
unit of ``budget.maxTrials``; more than ``maxFailedTrials`` failures fail the experiment;
reaching ``objective.target`` or ``deadlineSeconds`` ends it early.
"""
from __future__ import annotations

from datetime import datetime, timezone

from kubenas.local.budget import Outcome, decide

from .status import best_reward, finished_counts
from .trial_state import ACTIVE

__all__ = ["Outcome", "experiment_outcome", "trials_to_start", "elapsed_seconds", "parse_time", "now_iso"]


def now_iso(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def elapsed_seconds(start: str | None, now: datetime) -> float:
    started = parse_time(start)
    return max(0.0, (now - started).total_seconds()) if started else 0.0


def experiment_outcome(spec: dict, summaries: list[dict], elapsed: float) -> Outcome | None:
    """None while the experiment goes on; else its final phase, reason and message."""
    return decide(spec, finished_counts(summaries), best_reward(summaries, spec["objective"]["goal"]), elapsed)


def trials_to_start(spec: dict, summaries: list[dict], elapsed: float = 0.0) -> list[int]:
    """The indices of the trials to create now, given summaries (``index``, ``phase``,
    ``reward``) of the existing trials.

    Keeps ``parallelTrials`` in flight without ever exceeding ``maxTrials`` finished plus
    in flight; stops once the experiment's outcome is decided. New indices follow the
    highest existing one, so a retried create hits the same deterministic name.
    """
    budget = spec["budget"]
    in_flight = sum(1 for s in summaries if (s.get("phase") or "Pending") in ACTIVE)
    finished = len(summaries) - in_flight
    room = min(int(budget["parallelTrials"]) - in_flight, int(budget["maxTrials"]) - finished - in_flight)
    if room <= 0 or experiment_outcome(spec, summaries, elapsed) is not None:
        return []
    indices = [int(s["index"]) for s in summaries if s.get("index") is not None]
    start = max(indices) + 1 if indices else 0
    return list(range(start, start + room))
