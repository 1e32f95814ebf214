"""The strategy registry is the one source: the CRD enum, validation, make_strategy, the
Pareto capability and the docs table all follow it."""
from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from kubenas.api.validation import validate_experiment
from kubenas.space import SearchSpace, SpaceError
from kubenas.strategies import (StrategyEntry, check_pareto_strategy, make_strategy, pareto_strategies,
                                register, strategy_entry, strategy_names)
from kubenas.strategies import registry as registry_module
from kubenas.strategies.random_search import RandomSearch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _crd_strategy_enum() -> list[str]:
    crd = yaml.safe_load((ROOT / "crds" / "kubenas.io_nasexperiments.yaml").read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = version["schema"]["openAPIV3Schema"]
    return schema["properties"]["spec"]["properties"]["strategy"]["properties"]["type"]["enum"]


def test_the_crd_enum_is_the_registry():
    assert tuple(_crd_strategy_enum()) == strategy_names(), (
        "crds/kubenas.io_nasexperiments.yaml spec.strategy.type enum must list the registered strategies "
        "(kubenas.strategies.registry), in registration order")


def test_the_docs_table_has_a_row_per_strategy():
    text = (ROOT / "docs" / "strategies.md").read_text()
    rows = set(re.findall(r"^\| `([a-z]+)` \|", text[text.index("## Strategies"):], flags=re.M))
    assert set(strategy_names()) <= rows


def test_every_entry_loads_its_class_and_its_defaults_validate():
    for name in strategy_names():
        entry = strategy_entry(name)
        cls = entry.load()
        assert cls.type == name
        assert entry.settings({}, f"strategy.{name}") == dict(entry.defaults)


def test_pareto_capability_comes_from_the_registry():
    assert set(pareto_strategies()) == {"random", "evolution"}
    check_pareto_strategy("evolution", ["parameters"])
    with pytest.raises(SpaceError) as err:
        check_pareto_strategy("tpe", ["parameters"])
    assert err.value.path == "objective.pareto" and "evolution or random" in err.value.message


def test_a_registered_strategy_is_made_and_validated_without_other_edits(monkeypatch):
    class Uniform(RandomSearch):
        type = "uniform"

    import sys
    import types
    module = types.ModuleType("kubenas_test_uniform_strategy")
    module.Uniform = Uniform
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with registry_module.STRATEGIES.isolated():
        register(StrategyEntry("uniform", f"{module.__name__}:Uniform", "a test strategy"))
        space = SearchSpace.from_spec({"type": "cell"})
        strategy = make_strategy({"type": "uniform", "seed": 3}, space)
        assert isinstance(strategy, Uniform)
        with pytest.raises(ValueError, match="registered twice"):
            register(StrategyEntry("uniform", f"{module.__name__}:Uniform", "again"))
    assert "uniform" not in strategy_names()


def test_an_unknown_strategy_is_named_with_the_registered_ones():
    spec = yaml.safe_load((ROOT / "deploy" / "examples" / "digits-random.yaml").read_text())
    spec["spec"]["strategy"] = {"type": "bayesian"}
    issues = validate_experiment(spec)
    messages = " ".join(f"{issue.path}: {issue.message}" for issue in issues)
    assert "spec.strategy.type" in messages and all(name in messages for name in strategy_names())
