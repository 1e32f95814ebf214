"""Search spaces: parsing, encoding, variation operators, size and hashing."""
from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys

import pytest

from kubenas.space import CandidateError, SearchSpace, SpaceError
from kubenas.contract import ops
from kubenas.contract.genotype import canonical_genotype, live_edges, validate_genotype

SPACES = ["chain_space", "cell_space", "tiny_space"]

CHAIN_OPS, CELL_OPS = tuple(ops.CHAIN_OPS), tuple(ops.CELL_OPS)


def active_differences(space, a, b) -> list[str]:
    """Decisions that both candidates make, and make differently."""
    ea, eb = space.encode(a), space.encode(b)
    ma, mb = space.active_mask(ea), space.active_mask(eb)
    names = [name for name, _ in space.decisions()]
    return [names[p] for p in range(len(ea)) if ma[p] and mb[p] and ea[p] != eb[p]]


# -- parsing ---------------------------------------------------------------------------------


def test_defaults_fill_in_every_optional_field():
    chain = SearchSpace.from_spec({"type": "chain"})
    names = dict(chain.decisions())
    assert names["layers[0].op"] == ops.DEFAULT_CHAIN_OPS  # the 2-D ops; temporal ones are opted into
    assert names["layers[0].filters"] == (16, 32, 64)
    assert names["layers[0].kernel"] == (3, 5)
    assert names["layers[0].stride"] == (1, 2)
    cell = SearchSpace.from_spec({"type": "cell"})
    assert dict(cell.decisions())["edges[0][0]"] == ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")
    genotype = cell.sample(random.Random(0))["architecture"]
    assert (genotype["channels"], genotype["cellsPerStage"], genotype["stages"]) == (16, 1, 3)
    assert cell.hyperparameters == [] and chain.hyperparameters == []


@pytest.mark.parametrize("spec, path", [
    ({"type": "graph"}, "searchSpace.type"),
    ({"type": "chain", "chain": {"operations": ["conv", "identity", "lstm"]}}, "searchSpace.chain.operations[2]"),
    ({"type": "chain", "chain": {"operations": []}}, "searchSpace.chain.operations"),
    ({"type": "chain", "chain": {"operations": ["conv", "conv"]}}, "searchSpace.chain.operations[1]"),
    ({"type": "chain", "chain": {"filters": [16, -4]}}, "searchSpace.chain.filters[1]"),
    ({"type": "chain", "chain": {"kernelSizes": [3, 4]}}, "searchSpace.chain.kernelSizes[1]"),
    ({"type": "chain", "chain": {"strides": [3]}}, "searchSpace.chain.strides[0]"),
    ({"type": "chain", "chain": {"layers": 0}}, "searchSpace.chain.layers"),
    ({"type": "chain", "chain": {"layer": 3}}, "searchSpace.chain.layer"),
    ({"type": "cell", "cell": {"operations": ["none", "conv_5x5"]}}, "searchSpace.cell.operations[1]"),
    ({"type": "cell", "cell": {"nodes": 1}}, "searchSpace.cell.nodes"),
    ({"type": "cell", "cell": {"stages": 9}}, "searchSpace.cell.stages"),
    ({"type": "chain", "hyperparameters": [{"name": "dropout", "type": "uniform", "min": 0, "max": 1}]},
     "searchSpace.hyperparameters[0].name"),
    ({"type": "chain", "hyperparameters": [{"name": "learningRate", "type": "logUniform", "min": 0.1, "max": 0.01}]},
     "searchSpace.hyperparameters[0].min"),
    ({"type": "chain", "hyperparameters": [{"name": "learningRate", "type": "logUniform", "min": 0, "max": 0.1}]},
     "searchSpace.hyperparameters[0].min"),
    ({"type": "chain", "hyperparameters": [{"name": "batchSize", "type": "int", "min": 128, "max": 32}]},
     "searchSpace.hyperparameters[0].min"),
    ({"type": "chain", "hyperparameters": [{"name": "batchSize", "type": "uniform", "min": 32, "max": 128}]},
     "searchSpace.hyperparameters[0].type"),
    ({"type": "chain", "hyperparameters": [{"name": "optimizer", "type": "categorical", "values": []}]},
     "searchSpace.hyperparameters[0].values"),
    ({"type": "chain", "hyperparameters": [{"name": "optimizer", "type": "categorical", "values": ["sgd", "lamb"]}]},
     "searchSpace.hyperparameters[0].values[1]"),
    ({"type": "chain", "hyperparameters": [{"name": "momentum", "type": "uniform", "min": 0.5, "max": 1.5}]},
     "searchSpace.hyperparameters[0].max"),
    ({"type": "chain", "hyperparameters": [{"name": "momentum", "type": "uniform", "min": 0.5, "max": 0.9},
                                           {"name": "momentum", "type": "uniform", "min": 0.1, "max": 0.9}]},
     "searchSpace.hyperparameters[1].name"),
    ({"type": "chain", "hyperparameters": [{"name": "learningRate", "type": "uniform", "min": 0.1, "max": 0.2,
                                            "grid": 1}]},
     "searchSpace.hyperparameters[0].grid"),
])
def test_senseless_specs_are_refused_with_the_path_at_fault(spec, path):
    with pytest.raises(SpaceError) as raised:
        SearchSpace.from_spec(spec)
    assert raised.value.path == path
    assert isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(path + ": ")


def test_continuous_hyperparameters_become_grids_with_exact_ends():
    space = SearchSpace.from_spec({"type": "chain", "hyperparameters": [
        {"name": "learningRate", "type": "logUniform", "min": 0.001, "max": 0.1},
        {"name": "momentum", "type": "uniform", "min": 0.5, "max": 0.99, "grid": 3},
        {"name": "batchSize", "type": "int", "min": 32, "max": 128, "step": 32},
        {"name": "weightDecay", "type": "categorical", "values": [0, 0.0005]},
    ]})
    grids = {name: choices for name, choices in space.decisions() if name.startswith("hyperparameters.")}
    rates = grids["hyperparameters.learningRate"]
    assert len(rates) == 8 and rates[0] == 0.001 and rates[-1] == 0.1
    log_steps = [math.log(b / a) for a, b in zip(rates, rates[1:])]
    assert max(log_steps) - min(log_steps) < 1e-3  # evenly spaced in log space
    assert grids["hyperparameters.momentum"] == (0.5, 0.745, 0.99)
    assert grids["hyperparameters.batchSize"] == (32, 64, 96, 128)
    assert grids["hyperparameters.weightDecay"] == (0, 0.0005)


# -- encoding --------------------------------------------------------------------------------


@pytest.mark.parametrize("space_name", SPACES)
def test_candidate_decisions_candidate_and_json_round_trips(space_name, request):
    space = request.getfixturevalue(space_name)
    rng = random.Random(7)
    for _ in range(50):
        candidate = space.sample(rng)
        validate_genotype(candidate["architecture"])
        encoding = space.encode(candidate)
        assert len(encoding) == len(space.decisions())
        assert space.decode(encoding) == candidate
        through_json = json.loads(json.dumps(candidate))
        assert through_json == candidate
        assert space.encode(through_json) == encoding
        assert space.candidate_hash(through_json) == space.candidate_hash(candidate)


def test_decode_ignores_decisions_that_do_not_matter(chain_space):
    names = [name for name, _ in chain_space.decisions()]
    encoding = [0] * len(names)
    encoding[names.index("layers[0].op")] = list(CHAIN_OPS).index("identity")
    encoding[names.index("layers[0].filters")] = 2  # meaningless for identity
    candidate = chain_space.decode(encoding)
    assert candidate["architecture"]["layers"][0] == {"op": "identity"}
    assert chain_space.encode(candidate)[names.index("layers[0].filters")] == 0


def test_equivalent_candidates_hash_alike_and_different_ones_do_not(chain_space):
    candidate = chain_space.sample(random.Random(3))
    variant = copy.deepcopy(candidate)
    variant["architecture"]["layers"][0] = {"op": "identity", "filters": 64, "kernel": 5}  # extras ignored
    canonical = copy.deepcopy(candidate)
    canonical["architecture"]["layers"][0] = {"op": "identity"}
    as_floats = copy.deepcopy(canonical)
    as_floats["hyperparameters"]["batchSize"] = float(as_floats["hyperparameters"]["batchSize"])  # 64.0 via YAML
    assert chain_space.candidate_hash(variant) == chain_space.candidate_hash(canonical)
    assert chain_space.candidate_hash(as_floats) == chain_space.candidate_hash(canonical)
    other = copy.deepcopy(canonical)
    other["hyperparameters"]["optimizer"] = "adam" if other["hyperparameters"]["optimizer"] == "sgd" else "sgd"
    assert chain_space.candidate_hash(other) != chain_space.candidate_hash(canonical)


def test_contains_rejects_candidates_outside_the_space(chain_space, cell_space):
    candidate = chain_space.sample(random.Random(1))
    assert chain_space.contains(candidate)
    assert not cell_space.contains(candidate)
    for mutate in (
        lambda c: c["architecture"]["layers"].append({"op": "identity"}),  # 5 layers in a 4-layer space
        lambda c: c["architecture"]["layers"][1].update(op="conv", filters=48, kernel=3, stride=1),  # 48 not a choice
        lambda c: c["hyperparameters"].update(learningRate=0.05),  # off the grid
        lambda c: c["hyperparameters"].pop("optimizer"),
        lambda c: c["hyperparameters"].update(epochs=3),  # not searched
    ):
        foreign = copy.deepcopy(candidate)
        mutate(foreign)
        assert not chain_space.contains(foreign)
        with pytest.raises(CandidateError):
            chain_space.encode(foreign)
    other_skeleton = copy.deepcopy(cell_space.sample(random.Random(1)))
    other_skeleton["architecture"]["channels"] = 32
    assert not cell_space.contains(other_skeleton)


# -- variation -------------------------------------------------------------------------------


@pytest.mark.parametrize("space_name", SPACES)
def test_mutation_stays_in_the_space_and_changes_exactly_one_decision(space_name, request):
    space = request.getfixturevalue(space_name)
    rng = random.Random(11)
    changed = set()
    for _ in range(300):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        assert space.contains(child)
        differences = active_differences(space, parent, child)
        assert len(differences) == 1, differences
        same_network = (child["hyperparameters"] == parent["hyperparameters"]
                        and canonical_genotype(child["architecture"]) == canonical_genotype(parent["architecture"]))
        # a changed edge that cannot reach the output (dead in both) builds the same network
        assert (space.candidate_hash(child) == space.candidate_hash(parent)) == same_network
        assert same_network == (space.type == "cell" and dead_edge_changed(parent, child))
        changed.add(differences[0].split(".")[0].split("[")[0])
    # every kind of decision gets mutated, not only architecture or only hyperparameters
    assert "hyperparameters" in changed and len(changed) == 2


def dead_edge_changed(parent, child) -> bool:
    """Whether the one edge that differs is an edge live_edges drops in both genotypes."""
    genotypes = parent["architecture"], child["architecture"]
    live = [{(i, j) for i, node in enumerate(live_edges(g["nodes"], g["edges"])) for j, _ in node} for g in genotypes]
    changed = {(i, j) for i, (row_a, row_b) in enumerate(zip(*(g["edges"] for g in genotypes)))
               for j, (a, b) in enumerate(zip(row_a, row_b)) if a != b}
    return bool(changed) and not changed & (live[0] | live[1])


def test_mutation_to_a_convolution_draws_its_new_decisions(chain_space):
    rng = random.Random(5)
    seen_filters = set()
    for _ in range(400):
        parent = chain_space.sample(rng)
        child = chain_space.mutate(parent, rng)
        for before, after in zip(parent["architecture"]["layers"], child["architecture"]["layers"]):
            if before["op"] == "identity" and after["op"] == "conv":
                seen_filters.add(after["filters"])
    assert seen_filters == {16, 32, 64}


def test_crossover_inherits_whole_genes_from_either_parent(chain_space):
    rng = random.Random(2)
    from_a = from_b = 0
    for _ in range(100):
        a, b = chain_space.sample(rng), chain_space.sample(rng)
        child = chain_space.crossover(a, b, rng)
        assert chain_space.contains(child)
        for layer, layer_a, layer_b in zip(*(c["architecture"]["layers"] for c in (child, a, b))):
            assert layer in (layer_a, layer_b)  # a layer is never spliced
            from_a += layer == layer_a
            from_b += layer == layer_b
        for name, value in child["hyperparameters"].items():
            assert value in (a["hyperparameters"][name], b["hyperparameters"][name])
    assert from_a > 100 and from_b > 100


# -- size -----------------------------------------------------------------------------------


def test_size_counts_distinct_candidates(tiny_space, cell_space):
    assert tiny_space.size() == (2 * 2 + 1) * 3
    encodings = list(tiny_space.iter_encodings())
    hashes = {tiny_space.candidate_hash(tiny_space.decode(e)) for e in encodings}
    assert len(encodings) == len(hashes) == tiny_space.size()
    assert cell_space.size() == 5 ** 6 * 4
    per_layer = 2 * 3 * 2 * 2 + 2 * 2 * 2 + 1  # conv+dw_conv, two pools, identity
    assert SearchSpace.from_spec({"type": "chain", "chain": {"layers": 20}}).size() == per_layer ** 20


def test_sampling_covers_a_small_space(tiny_space):
    rng = random.Random(0)
    hashes = {tiny_space.candidate_hash(tiny_space.sample(rng)) for _ in range(500)}
    assert len(hashes) == tiny_space.size()


# -- packaging -------------------------------------------------------------------------------


def test_space_and_strategies_import_without_torch():
    # The operator image has no torch: block it and use everything torch-free.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from kubenas.space import SearchSpace\n"
        "from kubenas.strategies import make_strategy, check_strategy_spec\n"
        "space = SearchSpace.from_spec({'type': 'cell'})\n"
        "for kind in ('random', 'evolution'):\n"
        "    make_strategy({'type': kind}, space).propose(0)\n"
        "check_strategy_spec({'type': 'reinforce'})\n"
        "try:\n"
        "    make_strategy({'type': 'reinforce'}, space)\n"
        "except ImportError as error:\n"
        "    print('needs torch:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "needs torch" in result.stdout


def test_cell_ops_known_to_the_trainer_are_all_accepted():
    space = SearchSpace.from_spec({"type": "cell", "cell": {"operations": list(CELL_OPS)}})
    assert dict(space.decisions())["edges[0][0]"] == CELL_OPS
