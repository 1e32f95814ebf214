"""Multi-fidelity: the rungs of successive halving and ASHA's promotion rule, written once.

``spec.strategy.fidelity`` (docs/strategies.md, "Multi-fidelity") trains every new
candidate for ``minResource`` epochs (rung 0) and promotes the best to longer training:
rung ``k`` trains to ``minResource * reductionFactor**k`` epochs, capped at (and always
ending with) ``maxResource``. ASHA (Li et al. 2020) promotes asynchronously: whenever a
worker is free, the first trial, from the highest rung down, that is in the top
``1 / reductionFactor`` of the results reported at its rung and not yet promoted, goes
on to the next rung; only when none is promotable does a new candidate start. Nothing
waits for a rung to fill, so no worker idles.

The rule is a pure function of the results at each rung and of which candidates were
promoted, so the in-memory scheduler (``kubenas.strategies.fidelity``), the local runner,
the controller and the operator's ending rule (``kubenas.experiment.fidelity``) decide
alike, and a restarted process decides again from the trials alone.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from . import finite_number

FIDELITY_TYPES = ("asha",)
# The resource is training epochs; the last rung (maxResource) is the experiment's
# trial.training.epochs, so there is no second setting for it.
FIDELITY_DEFAULTS = {"type": "asha", "minResource": 1, "reductionFactor": 3}


def rungs(min_resource: int, max_resource: int, reduction_factor: int) -> list[int]:
    """Epochs at each rung: ``min * eta^k`` below ``max``, then ``max``.

    ValueError naming the field (``strategy.fidelity.<key>``) on nonsense."""
    if isinstance(max_resource, bool) or not isinstance(max_resource, int) or max_resource < 1:
        raise ValueError(f"strategy.fidelity.maxResource: must be a positive integer, got {max_resource!r}")
    if (isinstance(min_resource, bool) or not isinstance(min_resource, int)
            or not 1 <= min_resource <= max_resource):
        raise ValueError(f"strategy.fidelity.minResource: must be an integer from 1 to maxResource "
                         f"({max_resource}), got {min_resource!r}")
    if isinstance(reduction_factor, bool) or not isinstance(reduction_factor, int) or reduction_factor < 2:
        raise ValueError(f"strategy.fidelity.reductionFactor: must be an integer >= 2, got {reduction_factor!r}")
    out, r = [], min_resource
    while r < max_resource:
        out.append(r)
        r *= reduction_factor
    return out + [max_resource]


def fitness(reward: float | None, goal: str) -> float | None:
    """Larger is better whatever the goal; None (a failed trial, or a reward that is not a
    finite number) is never promoted."""
    reward = finite_number(reward)
    if reward is None:
        return None
    return reward if goal == "maximize" else -reward


def promotable(results: Mapping[int, float | None], promoted: set, reduction_factor: int,
               goal: str = "maximize") -> int | None:
    """The candidate to promote from one rung, or None.

    ``results``: candidate -> reward at this rung (None: failed), every result reported so
    far; ``promoted``: candidates already promoted from it. The top ``len(results) //
    reduction_factor`` results are eligible (ties: the lower candidate first); the best
    of them not yet promoted is chosen."""
    top = len(results) // reduction_factor
    if top == 0:
        return None
    scored = [(f, c) for c, r in results.items() if (f := fitness(r, goal)) is not None]
    scored.sort(key=lambda item: (-item[0], item[1]))
    for _, candidate in scored[:top]:
        if candidate not in promoted:
            return candidate
    return None


def next_promotion(results: Sequence[Mapping[int, float | None]], promoted: Sequence[set],
                   reduction_factor: int, goal: str = "maximize") -> tuple[int, int] | None:
    """``(candidate, rung it goes to)`` of the next promotion, looking from the highest
    rung that can promote down to rung 0; None when nothing is promotable now."""
    for rung in range(len(results) - 2, -1, -1):
        candidate = promotable(results[rung], promoted[rung], reduction_factor, goal)
        if candidate is not None:
            return candidate, rung + 1
    return None


__all__ = ["FIDELITY_DEFAULTS", "FIDELITY_TYPES", "fitness", "next_promotion", "promotable", "rungs"]
