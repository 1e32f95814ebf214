"""The reward of a trial: the objective metric on validation, with optional penalties.

Penalties fold secondary objectives into one scalar the MnasNet way (Tan et al. 2019):
for ``goal: maximize``

    reward = metric * prod((value / target) ** weight)

with a negative ``weight`` to penalize models larger (``parameters``, ``macs``) or
slower (``latencyMs``) than ``target``: a model at its target keeps its metric, one
twice as large with weight -0.07 loses 5 %. For ``goal: minimize`` (loss) the factor
is inverted, ``metric * prod((value / target) ** -weight)``, so that a negative weight
penalizes large models whatever the goal. torch-free: the trainer applies it, and the
control plane can recompute a reward from a trial's metrics.
"""
from __future__ import annotations

import math
from typing import Any

from . import MAX_PENALTIES, PENALTY_METRICS
from .tasks import goal_of

_TINY = 1e-12  # a measured 0 (latency rounded down) must not zero or explode the factor


def check_penalties(penalties: Any, path: str = "objective.penalties") -> list[dict]:
    """The penalties as given if well formed; else ValueError naming the field at fault."""
    if penalties is None:
        return []
    if not isinstance(penalties, list) or len(penalties) > MAX_PENALTIES:
        raise ValueError(f"{path}: must be a list of at most {MAX_PENALTIES} penalties")
    for i, penalty in enumerate(penalties):
        where = f"{path}[{i}]"
        if not isinstance(penalty, dict):
            raise ValueError(f"{where}: must be an object with metric, target and weight")
        if penalty.get("metric") not in PENALTY_METRICS:
            raise ValueError(f"{where}.metric: {penalty.get('metric')!r} is not one of {', '.join(PENALTY_METRICS)}")
        for key, positive in (("target", True), ("weight", False)):
            value = penalty.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (positive and value <= 0):
                raise ValueError(f"{where}.{key}: must be a {'positive' if positive else 'finite'} number, "
                                 f"got {value!r}")
    return penalties


def penalty_factor(penalties: list[dict], metrics: dict, goal: str = "maximize") -> float:
    """The product of the penalty factors (1.0 without penalties)."""
    factor = 1.0
    for penalty in penalties or []:
        value = metrics.get(penalty["metric"])
        if value is None:
            raise ValueError(f"penalty metric {penalty['metric']!r} was not measured")
        weight = float(penalty["weight"]) if goal == "maximize" else -float(penalty["weight"])
        factor *= (max(float(value), _TINY) / float(penalty["target"])) ** weight
    return factor


def compute_reward(objective: dict, metrics: dict) -> float:
    """The reward for ``metrics`` (the objective metric's value and the penalty metrics).

    Raises ValueError if a needed metric is missing or the result is not finite.
    """
    metric = objective.get("metric", "accuracy")
    if metrics.get(metric) is None:
        raise ValueError(f"objective metric {metric!r} was not measured")
    goal = objective.get("goal") or goal_of(metric)
    reward = float(metrics[metric]) * penalty_factor(objective.get("penalties") or [], metrics, goal)
    if not math.isfinite(reward):
        raise ValueError(f"reward is not finite ({reward})")
    return reward
