"""The median stopping rule (Golovin et al. 2017, Google Vizier), as a pure function.
Owns when a running trial stops early; imports nothing from kubenas.

Stop a trial at epoch s if its best objective value so far is worse than the median,
over completed trials, of their running averages up to epoch s. Used alike by the
local runner and the operator.
"""
from __future__ import annotations

import statistics


def _values(history: list[dict], metric: str, upto: int) -> list[float]:
    return [float(h[metric]) for h in history[:upto] if h.get(metric) is not None]


def median_stop(history: list[dict], completed: list[list[dict]], metric: str, goal: str,
                min_trials: int = 5, start_epoch: int = 2) -> bool:
    """True if the trial with per-epoch `history` should stop now.

    `completed` holds the per-epoch histories of finished (Succeeded) trials.
    """
    step = len(history)
    if step < start_epoch:
        return False
    own = _values(history, metric, step)
    if not own:
        return False
    averages = []
    for other in completed:
        values = _values(other, metric, step)
        if len(values) >= step:
            averages.append(sum(values) / len(values))
    if len(averages) < min_trials:
        return False
    median = statistics.median(averages)
    best = max(own) if goal == "maximize" else min(own)
    return best < median if goal == "maximize" else best > median
