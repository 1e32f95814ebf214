"""The Pareto module on fronts known by hand (kubenas.contract.pareto)."""
from __future__ import annotations

import math
import random

import pytest

from kubenas.contract.pareto import (check_pareto, crowding_distance, dominates, non_dominated_sort,
                                     objective_vector, pareto_front, rank_and_crowding)

# (accuracy, -latency): larger is better on both.
POINTS = [(0.90, -5.0), (0.95, -9.0), (0.80, -2.0), (0.85, -6.0), (0.70, -3.0), (0.95, -9.0), (0.60, -8.0)]


def test_dominance_is_strict_somewhere_and_never_worse():
    assert dominates((0.9, -5.0), (0.85, -6.0))
    assert not dominates((0.9, -5.0), (0.9, -5.0))  # equal: neither dominates
    assert not dominates((0.95, -9.0), (0.9, -5.0)) and not dominates((0.9, -5.0), (0.95, -9.0))


def test_non_dominated_sort_gives_the_fronts_known_by_hand():
    fronts = non_dominated_sort(POINTS)
    assert fronts[0] == [0, 1, 2, 5]          # 1 and 5 are equal: both on the front
    assert fronts[1] == [3, 4]                 # dominated by 0, by 2
    assert fronts[2] == [6]                    # dominated by 3 and 4 (and more)
    assert pareto_front(POINTS) == [0, 1, 2, 5]


def test_every_front_member_is_dominated_by_nobody_in_its_front_or_later():
    rng = random.Random(3)
    points = [(rng.random(), -rng.random(), -rng.random()) for _ in range(60)]
    fronts = non_dominated_sort(points)
    assert sorted(i for f in fronts for i in f) == list(range(60))
    for k, front in enumerate(fronts):
        later = [j for f in fronts[k:] for j in f]
        assert not any(dominates(points[j], points[i]) for i in front for j in later)
        if k:  # each member of a later front is dominated by some member of the one before
            assert all(any(dominates(points[j], points[i]) for j in fronts[k - 1]) for i in front)


def test_crowding_distance_gives_extremes_infinity_and_prefers_sparse_members():
    # A front on a line: accuracy up, latency up; member 2 sits in a wider gap than member 1.
    front = [(0.1, -1.0), (0.2, -2.0), (0.5, -5.0), (1.0, -10.0)]
    distance = crowding_distance(front, [0, 1, 2, 3])
    assert distance[0] == distance[3] == math.inf
    assert distance[1] == pytest.approx(2 * (0.5 - 0.1) / 0.9)
    assert distance[2] == pytest.approx(2 * (1.0 - 0.2) / 0.9)
    assert distance[2] > distance[1]
    assert rank_and_crowding(front + [(0.05, -11.0)])[4] == (1, math.inf)


def test_objective_vector_negates_costs_and_needs_every_cost():
    assert objective_vector(0.9, {"latencyMs": 2.5, "parameters": 100}, ["latencyMs", "parameters"]) \
        == (0.9, -2.5, -100.0)
    assert objective_vector(0.9, {"parameters": 100}, ["latencyMs"]) is None
    assert objective_vector(None, {"latencyMs": 1.0}, ["latencyMs"]) is None


@pytest.mark.parametrize("bad, message", [
    ("latencyMs", "must be a list"),
    (["accuracy"], "objective.pareto[0]: 'accuracy' is not one of"),
    (["macs", "macs"], "objective.pareto[1]: macs is listed twice"),
])
def test_check_pareto_names_the_field_and_the_fix(bad, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_pareto(bad)
