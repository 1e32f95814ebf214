"""The search-space registry (kubenas.contract.spaces) is the one source: the CRD enums,
SearchSpace.from_spec, genotype checks, hashing, validation's rules and the docs table
follow it, and a new space is one registration (docs/architecture.md, "Adding a search space")."""
from __future__ import annotations

import pathlib
import re
import sys
import types

import pytest
import yaml

from kubenas.api.checks.search import search_space_issues
from kubenas.api.checks.trial import user_code_issues
from kubenas.api.defaults import with_defaults
from kubenas.contract import spaces as registry_module
from kubenas.contract.genotype import (GenotypeError, canonical_genotype, describe_genotype, genotype_hash,
                                       genotype_ops, validate_genotype)
from kubenas.contract.spaces import (SpaceEntry, register, space_entry, space_names, supernet_spaces,
                                     trainer_built_spaces)
from kubenas.space import SearchSpace, SpaceError
from kubenas.space.base import Decision
from kubenas.space.errors import CandidateError
from kubenas.space.spec import check_int, expect_mapping, reject_unknown_keys
from kubenas.strategies import make_strategy

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _crd_schema(name: str) -> dict:
    crd = yaml.safe_load((ROOT / "crds" / f"kubenas.io_{name}.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]


def test_the_crd_enums_are_the_registry():
    search_space = _crd_schema("nasexperiments")["searchSpace"]["properties"]
    assert tuple(search_space["type"]["enum"]) == space_names(), (
        "crds/kubenas.io_nasexperiments.yaml spec.searchSpace.type enum must list the registered spaces "
        "(kubenas.contract.spaces), in registration order; then make sync-crds chart")
    architecture = _crd_schema("nastrials")["architecture"]["properties"]
    assert tuple(architecture["type"]["enum"]) == space_names(), (
        "crds/kubenas.io_nastrials.yaml spec.architecture.type enum must list the registered spaces")
    assert set(space_names()) <= set(search_space), "each space's block (spec.searchSpace.<name>) is in the CRD"


def test_the_docs_table_has_a_row_per_space():
    text = (ROOT / "docs" / "strategies.md").read_text()
    section = text[text.index("## Search spaces"):text.index("**Hyperparameters**")]
    assert set(re.findall(r"^\| `([a-z]+)` \|", section, flags=re.M)) == set(space_names())


def test_every_entry_loads_its_space_class():
    for name in space_names():
        cls = space_entry(name).load()
        assert issubclass(cls, SearchSpace) and cls.type == name


def test_capabilities_come_from_the_registry():
    assert trainer_built_spaces() == ("chain", "cell")
    assert supernet_spaces() == ("chain", "cell")
    spec = with_defaults({"searchSpace": {"type": "parameters", "parameters": [
        {"name": "width", "type": "int", "min": 8, "max": 64}]}, "budget": {"maxTrials": 4}})
    (issue,) = user_code_issues(spec)
    assert issue.path == "spec.trial.command" and "builds only chain and cell architectures" in issue.message


def test_the_registry_refuses_a_name_twice_and_the_fields_of_search_space():
    with registry_module.SPACES.isolated():
        with pytest.raises(ValueError, match="registered twice"):
            register(SpaceEntry("cell", "kubenas.space.cell:CellSpace", "again", check=lambda g: g))
        with pytest.raises(ValueError, match="a field of spec.searchSpace"):
            register(SpaceEntry("hyperparameters", "x:Y", "no", check=lambda g: g))
    assert space_names() == ("chain", "cell", "parameters")


# ---- a new kind of space: a module with its SearchSpace and format, and one register call


class WidthsSpace(SearchSpace):
    """A toy space: a width per layer, built by the user's code."""

    type = "widths"
    CHOICES = (8, 16, 32, 64)

    def __init__(self, layers: int, hyperparameters):
        self.layers = layers
        super().__init__([Decision(f"widths[{i}]", self.CHOICES, gene=i) for i in range(layers)], hyperparameters)

    @classmethod
    def from_block(cls, block, hyperparameters, path="searchSpace.widths"):
        block = expect_mapping({} if block is None else block, path)
        reject_unknown_keys(block, ("layers",), path)
        return cls(check_int(block.get("layers", 3), f"{path}.layers", 1, 8), hyperparameters)

    def _genotype(self, values: list) -> dict:
        return {"type": "widths", "widths": list(values)}

    def _architecture_values(self, genotype: dict) -> list:
        if len(genotype["widths"]) != self.layers:
            raise CandidateError("architecture.widths", f"the space has {self.layers} layers")
        return list(genotype["widths"])


def check_widths(genotype: dict) -> dict:
    widths = genotype.get("widths")
    if not isinstance(widths, list) or not widths:
        raise GenotypeError("widths", "must be a non-empty list of widths")
    for i, width in enumerate(widths):
        if width not in WidthsSpace.CHOICES:
            raise GenotypeError(f"widths[{i}]", f"must be one of {WidthsSpace.CHOICES}, got {width!r}")
    return genotype


@pytest.fixture()
def widths(monkeypatch):
    module = types.ModuleType("kubenas_test_widths_space")
    module.WidthsSpace = WidthsSpace
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with registry_module.SPACES.isolated():
        yield register(SpaceEntry("widths", f"{module.__name__}:WidthsSpace", "a width per layer",
                                  check=check_widths, describe=lambda g: "-".join(map(str, g["widths"]))))
    assert "widths" not in space_names()


def test_a_registered_space_is_built_searched_checked_and_hashed_without_other_edits(widths):
    assert space_names()[-1] == "widths" and "widths" not in trainer_built_spaces()
    space = SearchSpace.from_spec({"type": "widths", "widths": {"layers": 4}})
    assert isinstance(space, WidthsSpace) and space.size() == 4 ** 4
    with pytest.raises(SpaceError) as err:
        SearchSpace.from_spec({"type": "widths", "widths": {"layers": 4, "depth": 2}})
    assert err.value.path == "searchSpace.widths.depth"

    strategy = make_strategy({"type": "evolution", "seed": 1, "evolution": {"populationSize": 4,
                                                                            "sampleSize": 2}}, space)
    seen = set()
    for index in range(12):
        candidate = strategy.propose(index)
        architecture = validate_genotype(candidate["architecture"])
        assert architecture["type"] == "widths" and canonical_genotype(architecture) == architecture
        assert describe_genotype(architecture) == "-".join(map(str, architecture["widths"]))
        assert genotype_ops(architecture) == []
        seen.add(genotype_hash(architecture))
        strategy.observe(index, candidate, sum(architecture["widths"]) / 256)
    assert len(seen) > 1
    with pytest.raises(GenotypeError, match=r"widths\[1\]"):
        validate_genotype({"type": "widths", "widths": [8, 12]})


def test_validation_reads_a_registered_space(widths):
    spec = with_defaults({"searchSpace": {"type": "widths", "widths": {"layers": 2}}, "budget": {"maxTrials": 4}})
    assert search_space_issues(spec) == []
    (issue,) = user_code_issues(spec)  # not built by the built-in trainer: the user's code builds it
    assert "searchSpace.type widths needs your training code" in issue.message
    spec["trial"]["command"] = ["python", "train.py", "${widths}"]
    assert user_code_issues(spec) == []
    chain_with_widths = with_defaults({"searchSpace": {"type": "chain", "widths": {"layers": 2}},
                                       "budget": {"maxTrials": 4}})
    (issue,) = search_space_issues(chain_with_widths)
    assert issue.path == "spec.searchSpace.widths" and "set type: widths" in issue.message
