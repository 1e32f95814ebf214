"""Several objectives: a Pareto search (Deb et al. 2002, NSGA-II).

``objective.pareto`` lists cost metrics the trainer measures (``parameters``, ``macs``,
``latencyMs``), each minimized beside the reward (the objective metric, with any
MnasNet penalties). A trial's objective vector is larger-is-better throughout:
``(reward or -reward by goal, -cost, ...)``. One trial dominates another when it is no
worse on every objective and better on one; the Pareto front is the trials no other
dominates. Non-dominated sorting splits trials into fronts (rank 0 is the front), and
the crowding distance prefers, inside a front, the members in sparse regions, which
keeps the front spread out. torch-free and pure: the strategies, the status folding and
the local report share it.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from . import PENALTY_METRICS, finite_number

PARETO_METRICS = PENALTY_METRICS

Vector = Sequence[float]


def check_pareto(pareto: Any, path: str = "objective.pareto") -> list[str]:
    """The pareto metrics as given if well formed; else ValueError naming the field and the fix."""
    if pareto is None:
        return []
    if not isinstance(pareto, list):
        raise ValueError(f"{path}: must be a list of cost metrics ({', '.join(PARETO_METRICS)})")
    for i, metric in enumerate(pareto):
        if metric not in PARETO_METRICS:
            raise ValueError(f"{path}[{i}]: {metric!r} is not one of {', '.join(PARETO_METRICS)}")
        if metric in pareto[:i]:
            raise ValueError(f"{path}[{i}]: {metric} is listed twice; list each cost once")
    return list(pareto)


def objective_vector(fitness: float | None, metrics: dict | None, pareto: Sequence[str]) -> tuple | None:
    """``(fitness, -cost...)`` for a trial whose larger-is-better reward is ``fitness``;
    None when it failed or did not measure a cost (it cannot be placed on the front)."""
    fitness = finite_number(fitness)
    if fitness is None:
        return None
    costs = [finite_number((metrics or {}).get(metric)) for metric in pareto]
    if any(c is None for c in costs):
        return None
    return (fitness, *(-c for c in costs))


def dominates(a: Vector, b: Vector) -> bool:
    """``a`` is no worse than ``b`` everywhere and better somewhere (larger is better)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def non_dominated_sort(vectors: Sequence[Vector]) -> list[list[int]]:
    """The fronts as lists of indices into ``vectors``, the Pareto front first (O(M N^2))."""
    n = len(vectors)
    dominated_by = [[] for _ in range(n)]  # i -> those i dominates
    count = [0] * n                        # how many dominate i
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(vectors[i], vectors[j]):
                dominated_by[i].append(j)
                count[j] += 1
            elif dominates(vectors[j], vectors[i]):
                dominated_by[j].append(i)
                count[i] += 1
    fronts, current = [], [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(current)
        following = []
        for i in current:
            for j in dominated_by[i]:
                count[j] -= 1
                if count[j] == 0:
                    following.append(j)
        current = sorted(following)
    return fronts


def crowding_distance(vectors: Sequence[Vector], front: Sequence[int]) -> dict[int, float]:
    """Each member's crowding distance inside ``front``: the sum over objectives of the
    normalized gap between its two neighbours; the extremes of each objective get inf."""
    distance = {i: 0.0 for i in front}
    if len(front) <= 2:
        return {i: math.inf for i in front}
    for m in range(len(vectors[front[0]])):
        order = sorted(front, key=lambda i: (vectors[i][m], i))
        low, high = vectors[order[0]][m], vectors[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, len(order) - 1):
            distance[order[k]] += (vectors[order[k + 1]][m] - vectors[order[k - 1]][m]) / (high - low)
    return distance


def rank_and_crowding(vectors: Sequence[Vector]) -> list[tuple[int, float]]:
    """(front rank, crowding distance) of each vector: NSGA-II's crowded comparison
    prefers the lower rank, then the larger distance."""
    out: list[tuple[int, float]] = [(0, 0.0)] * len(vectors)
    for rank, front in enumerate(non_dominated_sort(vectors)):
        for i, d in crowding_distance(vectors, front).items():
            out[i] = (rank, d)
    return out


def pareto_front(vectors: Sequence[Vector]) -> list[int]:
    """Indices of the non-dominated vectors, in input order."""
    fronts = non_dominated_sort(vectors)
    return sorted(fronts[0]) if fronts else []
