"""Equivalent architectures (same live edges) are one candidate to every strategy, and hard
constraints (spec.constraints) reject candidates before anything is trained."""
from __future__ import annotations

import logging

import pytest

from kubenas.api.validation import validate_experiment
from kubenas.contract.cost import architecture_cost
from kubenas.space import Constraints, SearchSpace, SpaceError, constraints_from_spec
from kubenas.strategies import NoFeasibleCandidate, make_strategy, rebuild

KINDS = ["random", "evolution", "reinforce"]
SPECS = {
    "random": {"type": "random", "seed": 5},
    "evolution": {"type": "evolution", "seed": 5, "evolution": {"populationSize": 4, "sampleSize": 2}},
    "reinforce": {"type": "reinforce", "seed": 5},
}
# 3 nodes, 3 edges, 3 ops: 27 genotypes, fewer networks (an edge into node 1 is dead unless
# node 1 feeds the output).
SMALL_CELL = {"type": "cell", "cell": {"nodes": 3, "operations": ["none", "skip_connect", "conv_3x3"],
                                       "channels": 4, "stages": 1}}


def cell(edges, **skeleton):
    return {"architecture": {"type": "cell", "nodes": len(edges) + 1, "edges": edges, "channels": 4,
                             "cellsPerStage": 1, "stages": 1, **skeleton}, "hyperparameters": {}}


def test_genotypes_with_the_same_live_edges_hash_alike():
    space = SearchSpace.from_spec(SMALL_CELL)
    # node 1 does not reach the output (edges[1][1] is none): edges[0][0] is dead
    a = cell([["conv_3x3"], ["skip_connect", "none"]])
    b = cell([["skip_connect"], ["skip_connect", "none"]])
    c = cell([["none"], ["skip_connect", "none"]])
    live = cell([["conv_3x3"], ["skip_connect", "skip_connect"]])
    assert space.candidate_hash(a) == space.candidate_hash(b) == space.candidate_hash(c)
    assert space.candidate_hash(live) != space.candidate_hash(a)
    assert space.size() == 27
    assert space.network_count() == 3 + 2 * 3 * 3  # node 1 dead: edges[1][0] alone; live: 2 x 3 x 3


@pytest.mark.parametrize("kind", KINDS)
def test_no_equivalent_architecture_is_proposed_twice_until_every_network_was(kind, async_run, caplog):
    space = SearchSpace.from_spec(SMALL_CELL)
    networks = space.network_count()
    strategy = make_strategy(SPECS[kind], space)
    strategy.MAX_RESAMPLES = 10  # near the end most draws are seen: reach the enumeration sooner
    run = async_run(strategy, parallel=2, fail={3}).run(networks - 2)
    assert len(run.proposed) == networks
    assert len({space.candidate_hash(c) for _, c in run.proposed}) == networks
    assert strategy.exhausted and strategy.repeats == []
    with caplog.at_level(logging.WARNING, logger="kubenas.strategies.base"):
        repeat = strategy.propose(run.next_index)
    assert space.candidate_hash(repeat) in {space.candidate_hash(c) for _, c in run.proposed}
    assert strategy.repeats == [(run.next_index, "every distinct network of the space has been proposed")]
    assert "repeats an architecture already proposed" in caplog.text


@pytest.mark.parametrize("kind", ["random", "evolution"])
def test_a_rebuilt_strategy_avoids_the_equivalents_of_what_was_proposed_before(kind, async_run):
    space = SearchSpace.from_spec(SMALL_CELL)
    run = async_run(make_strategy(SPECS[kind], space), parallel=2).run(10)
    successor = rebuild(make_strategy(SPECS[kind], space), run.proposed, run.finished)
    resumed = run.fork(successor).run(space.network_count() - 12)
    assert len({space.candidate_hash(c) for _, c in resumed.proposed}) == space.network_count()


# -- hard constraints ---------------------------------------------------------------------------

DIGITS_CELL = {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3"],
                                        "channels": 8, "stages": 2}}


def experiment_spec(constraints, dataset="digits"):
    return {"searchSpace": DIGITS_CELL, "trial": {"dataset": {"name": dataset}}, "constraints": constraints}


@pytest.mark.parametrize("kind", KINDS)
def test_a_constrained_search_never_proposes_a_candidate_over_max_parameters(kind, async_run):
    space = SearchSpace.from_spec(DIGITS_CELL)
    costs = sorted(architecture_cost(space.decode(e)["architecture"], (1, 8, 8), 10)["parameters"]
                   for e in space.iter_encodings())
    limit = costs[len(costs) // 4]  # a quarter of the space fits
    constraints = constraints_from_spec(experiment_spec({"maxParameters": limit}))
    strategy = make_strategy(SPECS[kind], space, constraints=constraints)
    run = async_run(strategy, parallel=3).run(40)
    proposed = [architecture_cost(c["architecture"], (1, 8, 8), 10)["parameters"] for _, c in run.proposed]
    assert max(proposed) <= limit
    assert len(set(proposed)) > 5  # it still searches among the feasible ones


def test_constraints_that_nothing_satisfies_are_a_named_error():
    space = SearchSpace.from_spec(DIGITS_CELL)
    strategy = make_strategy({"type": "random"}, space,
                             constraints=constraints_from_spec(experiment_spec({"maxParameters": 10})))
    strategy.MAX_WALK_STEPS = 10  # the walk cannot succeed; the enumeration proves nothing fits
    with pytest.raises(NoFeasibleCandidate, match="raise the limits") as caught:
        strategy.propose(0)
    assert caught.value.path == "constraints"


def test_max_macs_uses_the_dataset_shape():
    space = SearchSpace.from_spec(DIGITS_CELL)
    constraints = constraints_from_spec(experiment_spec({"maxMacs": 100_000}))
    assert constraints.input_shape == (1, 8, 8) and constraints.num_classes == 10
    heavy = space.decode([3] * 6)
    assert constraints.violation(heavy).startswith("macs ") and "> maxMacs 100000" in constraints.violation(heavy)
    assert constraints.violation(space.decode([0] * 6)) is None
    assert Constraints().violation(heavy) is None


@pytest.mark.parametrize("block, dataset, path", [
    ({"maxParameters": 0}, "digits", "constraints.maxParameters"),
    ({"maxParameters": 1000, "colour": 1}, "digits", "constraints.colour"),
    ({"maxParameters": 1000}, "npz", "constraints.inputShape"),
    ({"maxParameters": 1000, "inputShape": [3, 32, 32]}, "npz", "constraints.numClasses"),
    ({"maxParameters": 1000, "inputShape": [3, 32], "numClasses": 4}, "npz", "constraints.inputShape"),
])
def test_bad_constraints_name_the_field(block, dataset, path):
    with pytest.raises(SpaceError) as caught:
        constraints_from_spec(experiment_spec(block, dataset))
    assert caught.value.path == path


def test_a_dataset_read_from_files_takes_its_shape_from_the_spec():
    constraints = constraints_from_spec(experiment_spec(
        {"maxParameters": 1000, "inputShape": [3, 32, 32], "numClasses": 4}, "npz"))
    assert constraints.input_shape == (3, 32, 32) and constraints.num_classes == 4


def test_validation_reports_constraints_that_need_a_shape():
    experiment = {
        "apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "c"},
        "spec": {"objective": {"metric": "accuracy"}, "searchSpace": DIGITS_CELL, "strategy": {"type": "random"},
                 "budget": {"maxTrials": 4},
                 "trial": {"dataset": {"name": "npz", "path": "/data/x.npz"}},
                 "constraints": {"maxParameters": 5000}},
    }
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.constraints.inputShape"]
    experiment["spec"]["constraints"].update(inputShape=[1, 8, 8], numClasses=10)
    assert validate_experiment(experiment) == []


def test_validation_refuses_a_limit_below_the_cheapest_cell():
    experiment = {
        "apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "c"},
        "spec": {"objective": {"metric": "accuracy"}, "searchSpace": DIGITS_CELL, "strategy": {"type": "random"},
                 "budget": {"maxTrials": 4}, "trial": {"dataset": {"name": "digits"}},
                 "constraints": {"maxParameters": 10}},
    }
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec.constraints.maxParameters"]
    assert "even the cheapest network" in issues[0].message
    space = SearchSpace.from_spec(DIGITS_CELL)
    cheapest = architecture_cost(space.decode([0] * 6)["architecture"], (1, 8, 8), 10)["parameters"]
    experiment["spec"]["constraints"]["maxParameters"] = cheapest
    assert validate_experiment(experiment) == []
