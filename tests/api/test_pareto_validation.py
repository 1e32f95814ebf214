"""Validation of objective.pareto: schema and semantic errors name the field and the fix."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def experiment():
    return yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())


def issues(obj):
    return [(issue.path, issue.message) for issue in validate_experiment(obj)]


def test_a_pareto_evolution_is_valid_and_no_default_is_added(experiment):
    # No default: a spec accepted by an older operator must not read as a changed objective.
    assert "pareto" not in with_defaults(experiment["spec"])["objective"]
    experiment["spec"]["objective"]["pareto"] = ["latencyMs", "parameters"]
    assert issues(experiment) == []


def test_an_unknown_cost_is_refused_by_the_schema(experiment):
    experiment["spec"]["objective"]["pareto"] = ["accuracy"]
    assert [path for path, _ in issues(experiment)] == ["spec.objective.pareto[0]"]


def test_a_cost_listed_twice_is_named(experiment):
    experiment["spec"]["objective"]["pareto"] = ["macs", "macs"]
    assert issues(experiment) == [("spec.objective.pareto[1]", "macs is listed twice; list each cost once")]


def test_a_scalar_strategy_is_refused_with_the_fix(experiment):
    experiment["spec"]["objective"]["pareto"] = ["latencyMs"]
    experiment["spec"]["strategy"] = {"type": "tpe"}
    [(path, message)] = issues(experiment)
    assert path == "spec.objective.pareto"
    assert "use strategy.type evolution or random" in message and "objective.penalties" in message


def test_latency_needs_the_trainer_to_measure_it(experiment):
    experiment["spec"]["objective"]["pareto"] = ["latencyMs"]
    experiment["spec"]["trial"].setdefault("training", {})["measureLatency"] = False
    [(path, message)] = issues(experiment)
    assert path == "spec.objective.pareto" and "measureLatency" in message
