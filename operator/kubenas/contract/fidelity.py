"""Multi-fidelity: the rungs, Hyperband's brackets and the promotion rule, written once.

``spec.strategy.fidelity`` (docs/strategies.md, "Multi-fidelity") trains candidates for
few epochs first and promotes the best to longer training: rung ``k`` trains to
``minResource * reductionFactor**k`` epochs, capped at (and always ending with)
``maxResource``. ASHA (Li et al. 2020) promotes asynchronously: whenever a worker is
free, the first trial, from the highest rung down, that is in the top
``1 / reductionFactor`` of the results reported at its rung and not yet promoted, goes
on to the next rung; only when none is promotable does a new candidate start. Nothing
waits for a rung to fill, so no worker idles.

``type: asha`` starts every candidate at rung 0 (one bracket). ``type: hyperband``
(asynchronous Hyperband, Li et al. 2018; 2020 section 3.3) runs one bracket per rung: a
candidate of bracket ``b`` starts at rung ``b`` (the last bracket is full-fidelity
search, the hedge against low fidelities that rank candidates poorly), and promotions
compare results within a bracket. Candidates go to brackets in a fixed cycle by their
number (``bracket_cycle``), so the bracket is a function of the candidate alone.

The rule is a pure function of the results at each rung, of which candidates were
promoted and of each candidate's bracket, so the local runner, the controller, the
operator's ending rule and the bench (all through ``kubenas.experiment.fidelity``) decide
alike, and a restarted process decides again from the trials alone.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from . import finite_number

FIDELITY_TYPES = ("asha", "hyperband")
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


def bracket_cycle(n_rungs: int, eta: int) -> list[int]:
    """The first rung of the bracket of each new candidate, one Hyperband cycle long.

    Bracket ``b`` (``s = n_rungs - 1 - b`` halvings) gets ``ceil(n_rungs / (s + 1) * eta**s)``
    places (Li et al. 2018), which gives every bracket about the same compute, spread
    through the cycle by smooth weighted round robin.
    """
    counts = [math.ceil(n_rungs / (n_rungs - b) * eta ** (n_rungs - 1 - b)) for b in range(n_rungs)]
    total, credit, out = sum(counts), [0] * n_rungs, []
    for _ in range(total):
        credit = [c + k for c, k in zip(credit, counts)]
        b = max(range(n_rungs), key=lambda i: (credit[i], -i))
        credit[b] -= total
        out.append(b)
    return out


def brackets(kind: str, n_rungs: int, eta: int) -> list[int]:
    """The cycle of first rungs for ``type`` ``kind``: ``[0]`` (ASHA) or Hyperband's."""
    if kind not in FIDELITY_TYPES:
        raise ValueError(f"strategy.fidelity.type: {kind!r} is not one of {', '.join(FIDELITY_TYPES)}")
    return bracket_cycle(n_rungs, eta) if kind == "hyperband" else [0]


def full_runs(kind: str, max_candidates: int, n_rungs: int, eta: int) -> int:
    """How many of ``max_candidates`` candidates successive halving trains to the last
    rung when every trial succeeds: of the ``n`` candidates of a bracket starting at rung
    ``b``, the top ``n // eta**(n_rungs - 1 - b)``."""
    cycle = brackets(kind, n_rungs, eta)
    per_bracket: dict[int, int] = {}
    for candidate in range(max_candidates):
        first = cycle[candidate % len(cycle)]
        per_bracket[first] = per_bracket.get(first, 0) + 1
    return sum(n // eta ** (n_rungs - 1 - b) for b, n in per_bracket.items())


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
                   reduction_factor: int, goal: str = "maximize",
                   first_rung: Mapping[int, int] | None = None) -> tuple[int, int] | None:
    """``(candidate, rung it goes to)`` of the next promotion, looking from the highest
    rung that can promote down to rung 0; None when nothing is promotable now.

    ``first_rung``: candidate -> the first rung of its bracket (Hyperband); without it
    every candidate is of one bracket (ASHA). At each rung the brackets are looked at
    in order, the quota counted within each."""
    for rung in range(len(results) - 2, -1, -1):
        if first_rung is None:
            groups = [results[rung]]
        else:
            by_bracket: dict[int, dict] = {}
            for candidate, reward in results[rung].items():
                by_bracket.setdefault(first_rung[candidate], {})[candidate] = reward
            groups = [by_bracket[b] for b in sorted(by_bracket)]
        for group in groups:
            candidate = promotable(group, promoted[rung], reduction_factor, goal)
            if candidate is not None:
                return candidate, rung + 1
    return None


def best_unpromoted(results: Mapping[int, float | None], promoted: set, goal: str = "maximize") -> int | None:
    """The best successful result at one rung not yet promoted, whatever the quota (a spent
    space: ``kubenas.experiment.fidelity.next_rungs(..., exhausted=True)``); ties: the lower candidate."""
    scored = sorted((-f, c) for c, r in results.items() if (f := fitness(r, goal)) is not None and c not in promoted)
    return scored[0][1] if scored else None


__all__ = ["FIDELITY_DEFAULTS", "FIDELITY_TYPES", "best_unpromoted", "bracket_cycle", "brackets", "fitness",
           "full_runs", "next_promotion", "promotable", "rungs"]
