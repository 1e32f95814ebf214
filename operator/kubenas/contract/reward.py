"""The reward of a trial: the objective metric on validation, with optional penalties.

Penalties fold secondary objectives into one scalar the MnasNet way (Tan et al. 2019):
``reward = metric * prod((value / target) ** weight)``, with a negative weight to
penalize models larger or slower than `target`. torch-free, so the control plane can
recompute rewards too.
"""
from __future__ import annotations

import math


def compute_reward(objective: dict, metrics: dict) -> float:
    """Raise ValueError if a needed metric is missing or the result is not finite."""
    metric = objective.get("metric", "accuracy")
    if metric not in metrics:
        raise ValueError(f"objective metric {metric!r} was not measured")
    reward = float(metrics[metric])
    for penalty in objective.get("penalties") or []:
        value = metrics.get(penalty["metric"])
        if value is None:
            raise ValueError(f"penalty metric {penalty['metric']!r} was not measured")
        reward *= (max(float(value), 1e-12) / float(penalty["target"])) ** float(penalty["weight"])
    if not math.isfinite(reward):
        raise ValueError(f"reward is not finite ({reward})")
    return reward
