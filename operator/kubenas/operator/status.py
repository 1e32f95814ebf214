"""Fold trial summaries into the experiment's bounded status (pure).

The operator keeps one small summary per trial in memory (its Book) and folds
them into ``NASExperiment.status``: counts by phase, the best trial and the top 10.
The status size does not grow with the number of trials.
"""
from __future__ import annotations

import heapq
import math

from kubenas.contract.genotype import describe_genotype

from .trial_state import EARLY_STOPPED, FAILED, PENDING, RUNNING, SUCCEEDED, TERMINAL

TOP_TRIALS = 10
MAX_SUMMARY = 200
HISTORY_LIMIT = 1000  # per-epoch values kept per trial for the median stopping rule

COUNT_KEYS = {PENDING: "pending", RUNNING: "running", SUCCEEDED: "succeeded", FAILED: "failed",
              EARLY_STOPPED: "earlyStopped"}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def architecture_summary(architecture: dict | None) -> str:
    try:
        text = describe_genotype(architecture or {})
    except Exception:  # noqa: BLE001 - a summary must never break folding
        text = str((architecture or {}).get("type", "?"))
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 3] + "..."


def trial_summary(trial: dict) -> dict:
    """What the operator remembers about one trial, for every trial it has: only what
    folding, the budget and the median rule read, so memory per trial stays small
    (the best trial's hyperparameters and metrics are read from it when it becomes
    the best, see :func:`trial_details`)."""
    spec = trial.get("spec") or {}
    status = trial.get("status") or {}
    phase = status.get("phase") or PENDING
    summary = {
        "name": trial["metadata"]["name"],
        "index": spec.get("index"),
        "phase": phase,
        "reward": _number(status.get("reward")),
        "acknowledged": acknowledged(status),
        "architecture": architecture_summary(spec.get("architecture")),
    }
    if phase == SUCCEEDED:  # peers for the median rule: only completed trials count
        metric = (spec.get("objective") or {}).get("metric") or "accuracy"
        summary["values"] = tuple(_number(h.get(metric)) for h in (status.get("history") or [])[:HISTORY_LIMIT]
                                  if isinstance(h, dict))
    return summary


def acknowledged(status: dict) -> bool:
    """A terminal phase the operator has recorded (its ``Finished`` condition is set):
    nothing is left to do for the trial."""
    return status.get("phase") in TERMINAL and any(
        c.get("type") == "Finished" and c.get("status") == "True" for c in status.get("conditions") or [])


def trial_details(trial: dict | None) -> dict:
    """The best trial's hyperparameters and numeric metrics, for ``status.bestTrial``."""
    spec = (trial or {}).get("spec") or {}
    status = (trial or {}).get("status") or {}
    return {"hyperparameters": spec.get("hyperparameters") or {},
            "metrics": {k: v for k, v in (status.get("metrics") or {}).items() if _number(v) is not None}}


def better(a: float, b: float, goal: str) -> bool:
    return a > b if goal == "maximize" else a < b


def ranked(summaries, goal: str, limit: int | None = None) -> list[dict]:
    """Succeeded trials with a reward, best first (ties: lower index first); only the
    first ``limit`` when given (without sorting them all)."""
    done = (s for s in summaries if s["phase"] == SUCCEEDED and s.get("reward") is not None)
    sign = -1.0 if goal == "maximize" else 1.0
    key = lambda s: (sign * s["reward"], s.get("index") or 0)  # noqa: E731
    return sorted(done, key=key) if limit is None else heapq.nsmallest(limit, done, key=key)


def best_reward(summaries, goal: str) -> float | None:
    best = ranked(summaries, goal, limit=1)
    return best[0]["reward"] if best else None


def counts(summaries: list[dict]) -> dict:
    out = {"created": len(summaries)}
    out.update({key: 0 for key in COUNT_KEYS.values()})
    for s in summaries:
        out[COUNT_KEYS.get(s["phase"], "pending")] += 1
    return out


def finished_counts(summaries: list[dict]) -> dict:
    """Finished trials by phase, as kubenas.local.budget.decide expects them."""
    out: dict = {}
    for s in summaries:
        if s["phase"] in TERMINAL:
            out[s["phase"]] = out.get(s["phase"], 0) + 1
    return out


def fold(summaries: list[dict], goal: str, details=None) -> dict:
    """The trial part of the experiment status: ``trials``, ``bestTrial``, ``topTrials``.

    ``details(name)`` gives the best trial's hyperparameters and metrics
    (:func:`trial_details`); without it they are left empty.
    """
    best = ranked(summaries, goal, limit=TOP_TRIALS)
    status: dict = {"trials": counts(summaries)}
    if best:
        b = best[0]
        extra = details(b["name"]) if details else {}
        status["bestTrial"] = {
            "name": b["name"], "index": b.get("index"), "reward": b["reward"], "architecture": b["architecture"],
            "hyperparameters": extra.get("hyperparameters") or {}, "metrics": extra.get("metrics") or {},
        }
    else:
        status["bestTrial"] = None
    status["topTrials"] = [{"name": s["name"], "reward": s["reward"], "architecture": s["architecture"]}
                           for s in best[:TOP_TRIALS]]
    return status


def set_condition(conditions: list[dict] | None, type_: str, status: str, reason: str, message: str,
                  *, now: str, generation: int | None = None) -> list[dict]:
    """A new conditions list with one condition set; lastTransitionTime moves only when
    the status changes (Kubernetes conventions)."""
    out = [dict(c) for c in conditions or []]
    for c in out:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c.update({"status": status, "reason": reason, "message": message})
            if generation is not None:
                c["observedGeneration"] = generation
            return out
    new = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if generation is not None:
        new["observedGeneration"] = generation
    out.append(new)
    return out


def get_condition(conditions: list[dict] | None, type_: str) -> dict | None:
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def status_patch(current: dict, wanted: dict) -> dict:
    """Only the top-level status keys whose value changes (None deletes a key)."""
    patch = {}
    for key, value in wanted.items():
        if value is None:
            if current.get(key) is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch
