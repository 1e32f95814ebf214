"""Ranking and counting trial records (pure)."""
from __future__ import annotations

import heapq
from typing import Iterable

from kubenas.contract import CONSTRAINT_VIOLATED, FAILED, RANKED_PHASES, TRIAL_TERMINAL
from kubenas.contract.pareto import objective_vector
from kubenas.contract.pareto import pareto_front as front_indices

from .record import TrialRecord


def ranked(records: Iterable[TrialRecord], goal: str, limit: int | None = None) -> list[TrialRecord]:
    """Ranked trials (Succeeded, with a reward), best first, ties: lower index first; only
    the first ``limit`` when given (without sorting them all)."""
    done = (r for r in records if r.phase in RANKED_PHASES and r.reward is not None)
    sign = -1.0 if goal == "maximize" else 1.0
    key = lambda r: (sign * r.reward, r.index or 0)  # noqa: E731
    return sorted(done, key=key) if limit is None else heapq.nsmallest(limit, done, key=key)


def pareto_front(records: Iterable[TrialRecord], goal: str, pareto) -> list[TrialRecord]:
    """With ``objective.pareto``, the ranked trials no other beats on the reward and every
    listed cost (kubenas.contract.pareto), best reward first; a trial that did not measure
    a cost is left out. Records need their costs (``details=True``)."""
    sign = 1.0 if goal == "maximize" else -1.0
    placed = []
    for r in ranked(records, goal):
        vector = objective_vector(sign * r.reward, {m: r.cost(m) for m in pareto}, pareto)
        if vector is not None:
            placed.append((r, vector))
    return [placed[i][0] for i in front_indices([v for _, v in placed])]


def best(records: Iterable[TrialRecord], goal: str) -> TrialRecord | None:
    top = ranked(records, goal, limit=1)
    return top[0] if top else None


def best_reward(records: Iterable[TrialRecord], goal: str) -> float | None:
    top = best(records, goal)
    return top.reward if top else None


def finished_counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    """Finished trials by phase."""
    out: dict[str, int] = {}
    for r in records:
        if r.phase in TRIAL_TERMINAL:
            out[r.phase] = out.get(r.phase, 0) + 1
    return out


def failures(records: Iterable[TrialRecord]) -> int:
    """Failed trials that count against ``budget.maxFailedTrials``: every failure except a
    candidate refused for a hard limit before training (``ConstraintViolated``), which
    says nothing about the system and trained nothing."""
    return sum(1 for r in records if r.phase == FAILED and r.reason != CONSTRAINT_VIOLATED)


def counts_by_phase(records: Iterable[TrialRecord]) -> dict[str, int]:
    """Every trial by phase."""
    out: dict[str, int] = {}
    for r in records:
        out[r.phase] = out.get(r.phase, 0) + 1
    return out
