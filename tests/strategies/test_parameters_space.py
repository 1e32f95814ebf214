"""The general ``parameters`` space: its decisions in policy order, sampling, mutation,
crossover, encoding, hashing and JSON round trips, checked property-style over many
seeds, including conditional and repeated decisions and continuous ranges."""
from __future__ import annotations

import copy
import json
import math
import random
import statistics

import pytest

from kubenas.contract.genotype import validate_genotype
from kubenas.contract.parameters import flatten
from kubenas.space import CandidateError, SearchSpace, SpaceError
from kubenas.space.continuous import POLICY_BINS

SEEDS = range(60)
SPACES = ["parameters_space", "finite_parameters_space"]


def flat(candidate: dict) -> dict:
    """Every decision in force as ``path -> value`` (hyperparameters included)."""
    return {**flatten(candidate["architecture"]["parameters"]),
            **{f"hyperparameters.{k}": v for k, v in candidate["hyperparameters"].items()}}


def under(key: str, root: str) -> bool:
    return key == root or key.startswith((root + ".", root + "["))


def test_decisions_come_in_policy_order(parameters_space):
    names = [name for name, _ in parameters_space.decisions()]
    assert names == [
        "lr", "dropout", "activation",
        "norm", "norm.batch.momentum", "norm.group.groups",       # the option, then each option's decisions
        "layers",                                                 # the count, then block 0, block 1, ...
        *[f"layers[{k}].{d}" for k in range(4) for d in ("width", "kind", "kind.residual.scale")],
        "hyperparameters.batchSize",
    ]
    choices = dict(parameters_space.decisions())
    assert choices["layers"] == (1, 2, 3, 4)
    assert choices["norm"] == ("none", "batch", "group")
    assert len(choices["lr"]) == POLICY_BINS  # a continuous decision is binned for the policy


@pytest.mark.parametrize("space_name", SPACES)
def test_every_sample_is_a_member_and_survives_json_and_encoding(space_name, request):
    space = request.getfixturevalue(space_name)
    for seed in SEEDS:
        candidate = space.sample(random.Random(seed))
        validate_genotype(candidate["architecture"])
        assert space.contains(candidate)
        assert space.canonical(candidate) == candidate
        through_json = json.loads(json.dumps(candidate))
        assert space.canonical(through_json) == candidate
        assert space.candidate_hash(through_json) == space.candidate_hash(candidate)
        encoding = space.encode(candidate)
        assert len(encoding) == len(space)
        assert all(0 <= i < len(choices) for i, (_, choices) in zip(encoding, space.decisions()))
        # decoding a policy's tokens lands in the same tokens, with or without an rng
        assert space.encode(space.decode(encoding)) == encoding
        assert space.encode(space.decode(encoding, random.Random(seed))) == encoding


def test_a_finite_space_decodes_back_exactly(finite_parameters_space):
    space = finite_parameters_space
    for seed in SEEDS:
        candidate = space.sample(random.Random(seed))
        assert space.decode(space.encode(candidate)) == candidate


def test_the_assignment_has_the_published_shape(parameters_space):
    for seed in SEEDS:
        p = parameters_space.sample(random.Random(seed))["architecture"]["parameters"]
        assert list(p) == ["lr", "dropout", "activation", "norm", "layers"]
        assert isinstance(p["lr"], float) and 1e-4 <= p["lr"] <= 1.0
        assert p["activation"] in ("relu", "gelu", "tanh")
        expected_keys = {"none": {"option"}, "batch": {"option", "momentum"}, "group": {"option", "groups"}}
        assert set(p["norm"]) == expected_keys[p["norm"]["option"]]
        assert isinstance(p["layers"], list) and 1 <= len(p["layers"]) <= 4
        for layer in p["layers"]:
            assert isinstance(layer["width"], int) and layer["width"] % 16 == 0
            assert set(layer["kind"]) == ({"option", "scale"} if layer["kind"]["option"] == "residual" else {"option"})


def test_sampling_reaches_every_option_count_and_is_continuous(parameters_space):
    rng = random.Random(1)
    samples = [parameters_space.sample(rng)["architecture"]["parameters"] for _ in range(400)]
    assert {s["norm"]["option"] for s in samples} == {"none", "batch", "group"}
    assert {len(s["layers"]) for s in samples} == {1, 2, 3, 4}
    assert len({s["dropout"] for s in samples}) == 400  # not a grid
    # log-uniform: half of the draws lie below the geometric mean of the range
    below = sum(s["lr"] < math.sqrt(1e-4 * 1.0) for s in samples) / len(samples)
    assert 0.4 < below < 0.6


def test_equal_assignments_hash_alike_whatever_the_key_order_and_number_type(parameters_space):
    candidate = parameters_space.sample(random.Random(3))
    shuffled = copy.deepcopy(candidate)
    p = shuffled["architecture"]["parameters"]
    shuffled["architecture"]["parameters"] = dict(reversed(list(p.items())))
    assert parameters_space.candidate_hash(shuffled) == parameters_space.candidate_hash(candidate)
    as_yaml_writes_it = copy.deepcopy(candidate)
    as_yaml_writes_it["architecture"]["parameters"]["dropout"] = 0  # an int in a float range
    canonical = parameters_space.canonical(as_yaml_writes_it)
    assert canonical["architecture"]["parameters"]["dropout"] == 0.0
    assert isinstance(canonical["architecture"]["parameters"]["dropout"], float)
    other = copy.deepcopy(candidate)
    other["architecture"]["parameters"]["lr"] = candidate["architecture"]["parameters"]["lr"] * 0.5
    assert parameters_space.candidate_hash(other) != parameters_space.candidate_hash(candidate)


@pytest.mark.parametrize("space_name", SPACES)
def test_mutation_changes_one_decision_and_what_it_switches(space_name, request):
    space = request.getfixturevalue(space_name)
    changed_roots = set()
    for seed in range(300):
        rng = random.Random(seed)
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        assert space.contains(child) and space.canonical(child) == child
        before, after = flat(parent), flat(child)
        differing = sorted(k for k in set(before) | set(after) if before.get(k, object()) != after.get(k, object()))
        assert differing, "a mutation changes something"
        root = differing[0]
        assert all(under(k, root) for k in differing), (root, differing)
        assert root in before and root in after  # the mutated decision was in force before and after
        changed_roots.add(root.split("[")[0].split(".")[0])
    top_level = {name for name, _ in space.decisions() if "." not in name and "[" not in name}
    assert changed_roots == top_level | ({"hyperparameters"} if space.hyperparameters else set())


def test_a_new_option_or_block_draws_its_decisions_and_a_removed_one_drops_them(parameters_space):
    grown = shrunk = switched = 0
    for seed in range(400):
        rng = random.Random(seed)
        parent = parameters_space.sample(rng)
        child = parameters_space.mutate(parent, rng)
        a, b = parent["architecture"]["parameters"], child["architecture"]["parameters"]
        if len(b["layers"]) > len(a["layers"]):
            grown += 1
            assert b["layers"][: len(a["layers"])] == a["layers"]  # blocks are appended
        elif len(b["layers"]) < len(a["layers"]):
            shrunk += 1
            assert b["layers"] == a["layers"][: len(b["layers"])]  # removed from the end
        if a["norm"]["option"] != b["norm"]["option"]:
            switched += 1
            assert set(b["norm"]) - {"option"} == {"none": set(), "batch": {"momentum"},
                                                  "group": {"groups"}}[b["norm"]["option"]]
    assert grown and shrunk and switched


def test_continuous_mutation_is_a_local_step_inside_the_range(parameters_space):
    steps = []
    for seed in range(400):
        rng = random.Random(seed)
        parent = parameters_space.sample(rng)
        child = parameters_space.mutate(parent, rng)
        a, b = parent["architecture"]["parameters"], child["architecture"]["parameters"]
        if a["dropout"] != b["dropout"]:
            assert 0.0 <= b["dropout"] <= 0.5
            steps.append(abs(a["dropout"] - b["dropout"]))
    assert steps and statistics.median(steps) < 0.1  # sigma is a tenth of the range (0.05)


@pytest.mark.parametrize("space_name", SPACES)
def test_crossover_inherits_each_top_level_decision_whole(space_name, request):
    space = request.getfixturevalue(space_name)
    from_a = from_b = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        assert space.contains(child) and space.canonical(child) == child
        for name, value in child["architecture"]["parameters"].items():
            value_a, value_b = (c["architecture"]["parameters"][name] for c in (a, b))
            assert value in (value_a, value_b)  # a conditional or a repeat is never spliced
            from_a += value == value_a
            from_b += value == value_b
        for name, value in child["hyperparameters"].items():
            assert value in (a["hyperparameters"][name], b["hyperparameters"][name])
    assert from_a > 50 and from_b > 50


def test_size_counts_the_tree_and_enumeration_agrees(finite_parameters_space, parameters_space):
    space = finite_parameters_space
    assert space.size() == 2 * (1 + 3) * (2 + 2 ** 2)
    hashes = {space.candidate_hash(space.decode(e)) for e in space.iter_encodings()}
    assert len(hashes) == space.size()
    assert parameters_space.size() == math.inf


@pytest.mark.parametrize("edit, path", [
    (lambda p: p.pop("lr"), "architecture.parameters.lr"),
    (lambda p: p.update(extra=1), "architecture.parameters.extra"),
    (lambda p: p.update(lr=2.0), "architecture.parameters.lr"),
    (lambda p: p.update(lr="0.01"), "architecture.parameters.lr"),
    (lambda p: p.update(activation="swish"), "architecture.parameters.activation"),
    (lambda p: p.update(norm={"option": "layer"}), "architecture.parameters.norm.option"),
    (lambda p: p.update(norm="batch"), "architecture.parameters.norm"),
    (lambda p: p.update(norm={"option": "none", "momentum": 0.9}), "architecture.parameters.norm.momentum"),
    (lambda p: p.update(norm={"option": "batch"}), "architecture.parameters.norm.momentum"),
    (lambda p: p.update(layers=[]), "architecture.parameters.layers"),
    (lambda p: p.update(layers=[{"width": 16, "kind": {"option": "dense"}}] * 5), "architecture.parameters.layers"),
    (lambda p: p["layers"][0].update(width=20), "architecture.parameters.layers[0].width"),
    (lambda p: p["layers"][0].update(kind={"option": "residual"}), "architecture.parameters.layers[0].kind.scale"),
])
def test_a_foreign_assignment_names_the_decision_at_fault(edit, path, parameters_space):
    candidate = parameters_space.sample(random.Random(0))
    candidate["architecture"]["parameters"]["layers"] = [{"width": 32, "kind": {"option": "dense"}}]
    edit(candidate["architecture"]["parameters"])
    with pytest.raises(CandidateError) as error:
        parameters_space.encode(candidate)
    assert error.value.path == path
    assert not parameters_space.contains(candidate)


def test_fingerprints_tell_spaces_apart(specs):
    space = SearchSpace.from_spec(specs["parameters"])
    assert SearchSpace.from_spec(copy.deepcopy(specs["parameters"])).fingerprint() == space.fingerprint()
    wider = copy.deepcopy(specs["parameters"])
    wider["parameters"][0]["max"] = 2.0
    assert SearchSpace.from_spec(wider).fingerprint() != space.fingerprint()


BASE = [{"name": "x", "type": "uniform", "min": 0, "max": 1}]


def nest(levels: int) -> list:
    """A conditional nested ``levels`` lists deep."""
    inner = [{"name": "leaf", "type": "categorical", "values": [1, 2]}]
    for _ in range(levels - 1):
        inner = [{"name": "c", "type": "conditional", "options": [{"name": "o", "parameters": inner}]}]
    return inner


@pytest.mark.parametrize("parameters, path, words", [
    (None, "searchSpace.parameters", "required"),
    ([], "searchSpace.parameters", "at least one"),
    ([{"name": "x", "type": "float", "min": 0, "max": 1}], "searchSpace.parameters[0].type", "not one of"),
    ([{"name": "x", "type": "uniform", "min": 2, "max": 1}], "searchSpace.parameters[0].min", "must not exceed"),
    ([{"name": "x", "type": "int", "min": 0, "max": 1.5}], "searchSpace.parameters[0].max", "integer"),
    ([{"name": "x", "type": "int", "min": 0, "max": 10 ** 6}], "searchSpace.parameters[0].step", "raise step"),
    ([{"name": "x", "type": "logUniform", "min": 0, "max": 1}], "searchSpace.parameters[0].min", "positive"),
    ([{"name": "x", "type": "categorical", "values": []}], "searchSpace.parameters[0].values", "non-empty"),
    ([{"name": "x", "type": "categorical", "values": [1, 1.0]}], "searchSpace.parameters[0].values[1]", "duplicate"),
    ([{"name": "x", "type": "categorical", "values": [{"a": 1}]}], "searchSpace.parameters[0].values[0]", "string"),
    (BASE + BASE, "searchSpace.parameters[1].name", "twice"),
    ([{"name": "2x", "type": "uniform", "min": 0, "max": 1}], "searchSpace.parameters[0].name", "not a name"),
    ([{"name": "x", "type": "uniform", "min": 0, "max": 1, "values": [1]}], "searchSpace.parameters[0].values",
     "unknown field"),
    ([{"name": "c", "type": "conditional", "options": []}], "searchSpace.parameters[0].options", "non-empty"),
    ([{"name": "c", "type": "conditional", "options": [{"name": "a"}, {"name": "a"}]}],
     "searchSpace.parameters[0].options[1].name", "twice"),
    ([{"name": "c", "type": "conditional", "options": [{"name": "a", "parameters": [
        {"name": "option", "type": "categorical", "values": [1]}]}]}],
     "searchSpace.parameters[0].options[0].parameters[0].name", "reserved"),
    ([{"name": "r", "type": "repeat", "min": 3, "max": 2, "parameters": []}], "searchSpace.parameters[0].min",
     "must not exceed"),
    ([{"name": "r", "type": "repeat", "min": -1, "max": 2, "parameters": []}], "searchSpace.parameters[0].min",
     "0 to 32"),
    ([{"name": "r", "type": "repeat", "min": 1, "max": 33, "parameters": []}], "searchSpace.parameters[0].max",
     "0 to 32"),
    ([{"name": "r", "type": "repeat", "min": 1, "max": 2}], "searchSpace.parameters[0].parameters", "required"),
    (nest(4), "searchSpace.parameters[0].options[0].parameters[0].options[0].parameters[0].type", "3 levels"),
    ([{"name": "r", "type": "repeat", "min": 1, "max": 32, "parameters": [
        {"name": "s", "type": "repeat", "min": 1, "max": 32, "parameters": [
            {"name": "x", "type": "categorical", "values": [1, 2]}]}]}],
     "searchSpace.parameters", "decisions (every repeat at its max)"),
    ([{"name": f"x{i}", "type": "int", "min": 0, "max": 4095} for i in range(9)], "searchSpace.parameters",
     "choices in all"),
])
def test_senseless_parameters_are_refused_by_name(parameters, path, words):
    spec = {"type": "parameters"} if parameters is None else {"type": "parameters", "parameters": parameters}
    with pytest.raises(SpaceError) as error:
        SearchSpace.from_spec(spec)
    assert error.value.path == path
    assert words in error.value.message


def test_three_levels_and_empty_options_are_fine():
    space = SearchSpace.from_spec({"type": "parameters", "parameters": nest(3) + [
        {"name": "r", "type": "repeat", "min": 0, "max": 2, "parameters": []}]})
    assert space.size() == 2 * 3
    assert space.sample(random.Random(0))["architecture"]["parameters"]["r"] in ([], [{}], [{}, {}])
