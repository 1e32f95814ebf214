"""Evolution with several objectives: NSGA-II crowded comparison in the tournament, aging unchanged."""
from __future__ import annotations

import json

import pytest

from kubenas.contract.pareto import dominates
from kubenas.space import SpaceError
from kubenas.strategies import make_strategy, rebuild


def cost(candidate) -> float:
    """A toy latency: wider filters are slower."""
    return float(sum(layer.get("filters", 0) for layer in candidate["architecture"]["layers"]))


def pareto_evolution(space, **settings):
    return make_strategy({"type": "evolution", "seed": 2,
                          "evolution": {"populationSize": 6, "sampleSize": 6, **settings}},
                         space, "maximize", pareto=["latencyMs"])


def test_population_holds_objective_vectors_and_the_oldest_still_dies(chain_space):
    strategy = pareto_evolution(chain_space)
    candidates = [strategy.propose(i) for i in range(8)]
    for i in range(7):
        strategy.observe(i, candidates[i], 0.1 * i, {"latencyMs": 10.0 - i})
    assert [index for index, _, _ in strategy.population] == [1, 2, 3, 4, 5, 6]
    assert strategy.population[0][2] == (0.1, -9.0)
    strategy.observe(7, candidates[7], 0.5, {})  # no latency measured: not learned from
    assert [index for index, _, _ in strategy.population] == [1, 2, 3, 4, 5, 6]


def test_tournament_over_the_whole_population_picks_a_front_member_at_an_extreme(cell_space):
    # Whole population in the tournament: the winner has rank 0 and the largest crowding
    # distance, i.e. an extreme of the front (the first such contender drawn).
    strategy = pareto_evolution(cell_space, crossoverProbability=0.0)
    points = {0: (0.9, 8.0), 1: (0.5, 1.0), 2: (0.7, 4.0), 3: (0.6, 6.0), 4: (0.4, 5.0), 5: (0.3, 9.0)}
    candidates = {i: strategy.propose(i) for i in points}
    for i, (reward, latency) in points.items():
        strategy.observe(i, candidates[i], reward, {"latencyMs": latency})
    extremes = [cell_space.encode(candidates[0]), cell_space.encode(candidates[1])]
    parents = set()
    for index in range(6, 26):
        child = cell_space.encode(strategy.propose(index))
        distances = [sum(a != b for a, b in zip(child, parent)) for parent in extremes]
        assert min(distances) == 1
        parents.add(distances.index(1))
    assert parents == {0, 1}  # the fastest member breeds too, not only the most accurate


def test_pareto_evolution_finds_a_better_front_than_random(chain_space, reward):
    def front_quality(strategy):
        points = []
        for index in range(120):
            candidate = strategy.propose(index)
            r, c = reward(candidate), cost(candidate)
            strategy.observe(index, candidate, r, {"latencyMs": c})
            points.append((r, -c))
        # hypervolume-free check: the share of the late trials no early trial dominates
        late = points[60:]
        return sum(not any(dominates(p, q) for p in points[:60]) for q in late) / len(late)

    evolution = make_strategy({"type": "evolution", "seed": 0, "evolution": {"populationSize": 20}},
                              chain_space, pareto=["latencyMs"])
    random_search = make_strategy({"type": "random", "seed": 0}, chain_space, pareto=["latencyMs"])
    assert front_quality(evolution) > front_quality(random_search)


def test_state_dict_and_rebuild_keep_the_vectors(chain_space):
    strategy = pareto_evolution(chain_space)
    finished = []
    for i in range(8):
        candidate = strategy.propose(i)
        finished.append((i, candidate, 0.1 * i, {"latencyMs": 1.0 + i}))
        strategy.observe(*finished[-1])
    restored = pareto_evolution(chain_space)
    restored.load_state_dict(json.loads(json.dumps(strategy.state_dict())))
    replayed = rebuild(pareto_evolution(chain_space), [(i, c) for i, c, _, _ in finished], finished)
    assert restored.population == strategy.population == replayed.population
    assert restored.propose(8) == strategy.propose(8) == replayed.propose(8)
    with pytest.raises(ValueError, match="pareto"):
        make_strategy({"type": "evolution", "seed": 2, "evolution": {"populationSize": 6, "sampleSize": 6}},
                      chain_space).load_state_dict(strategy.state_dict())


def test_a_strategy_that_learns_one_scalar_refuses_several_objectives(chain_space):
    with pytest.raises(SpaceError, match="strategy tpe learns from one scalar reward"):
        make_strategy({"type": "tpe"}, chain_space, pareto=["latencyMs"])
