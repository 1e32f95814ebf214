"""searchSpace.type parameters: validation names the field and the fix (schema and
semantics), the CRD repeats the space's limits, the built-in trainer is refused, and the
assignment flows into the trial spec, NASTrial, trials.jsonl records and the leaderboard."""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import yaml

from kubenas.api.schema import openapi_schema, validator
from kubenas.api.trials import build_trial_spec
from kubenas.api.checks.trial import user_code_issues
from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment
from kubenas.experiment import from_row, from_trial_object
from kubenas.experiment.record import candidate as trial_candidate
from kubenas.local.summary import leaderboard_rows
from kubenas.space import SearchSpace
from kubenas.space import parameters as limits

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = [
    {"name": "lr", "type": "logUniform", "min": 1.0e-4, "max": 0.1},
    {"name": "activation", "type": "categorical", "values": ["relu", "gelu"]},
    {"name": "norm", "type": "conditional", "options": [
        {"name": "none", "parameters": []},
        {"name": "batch", "parameters": [{"name": "momentum", "type": "uniform", "min": 0.8, "max": 0.99}]}]},
    {"name": "layers", "type": "repeat", "min": 1, "max": 3, "parameters": [
        {"name": "width", "type": "int", "min": 16, "max": 128, "step": 16}]},
]
NEEDS_CODE = "spec.trial.command"


@pytest.fixture
def experiment():
    obj = yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())
    obj["spec"]["searchSpace"] = {"type": "parameters", "parameters": copy.deepcopy(PARAMETERS)}
    return obj


def issues_besides_user_code(obj):
    return [(i.path, i.message) for i in validate_experiment(obj) if i.path != NEEDS_CODE]


def test_a_parameters_space_is_refused_for_the_built_in_trainer_naming_the_fix(experiment):
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == [NEEDS_CODE]
    assert "trial.command" in issues[0].message and "trial.model.builder" in issues[0].message
    assert "chain and cell" in issues[0].message


@pytest.mark.parametrize("trial", [{"command": ["python", "train.py"]}, {"model": {"builder": "mypkg.models:build"}}])
def test_user_code_makes_a_parameters_space_runnable(trial, experiment):
    spec = with_defaults(experiment["spec"])
    spec["trial"].update(trial)
    assert user_code_issues(spec) == []


def test_chain_and_cell_need_no_user_code(experiment):
    for kind in ("chain", "cell"):
        spec = with_defaults({**experiment["spec"], "searchSpace": {"type": kind}})
        assert user_code_issues(spec) == []


def set_parameter(experiment, index, **fields):
    experiment["spec"]["searchSpace"]["parameters"][index] = fields
    return experiment


@pytest.mark.parametrize("fields, path, words", [
    # the CRD schema
    ({"name": "x", "type": "float", "min": 0, "max": 1}, "spec.searchSpace.parameters[0].type", "not one of"),
    ({"name": "x", "type": "categorical", "values": []}, "spec.searchSpace.parameters[0].values", "non-empty"),
    ({"name": "my-lr", "type": "uniform", "min": 0, "max": 1}, "spec.searchSpace.parameters[0].name", "pattern"),
    ({"name": "x", "type": "uniform", "min": 0, "max": 1, "bins": 4}, "spec.searchSpace.parameters[0].bins",
     "unknown field"),
    # the space's semantics
    ({"name": "x", "type": "uniform", "min": 1, "max": 0}, "spec.searchSpace.parameters[0].min", "must not exceed"),
    ({"name": "x", "type": "logUniform", "min": 0, "max": 1}, "spec.searchSpace.parameters[0].min", "positive"),
    ({"name": "activation", "type": "uniform", "min": 0, "max": 1}, "spec.searchSpace.parameters[1].name", "twice"),
    ({"name": "r", "type": "repeat", "min": 0, "max": 64, "parameters": []}, "spec.searchSpace.parameters[0].max",
     "0 to 32"),
    ({"name": "c", "type": "conditional", "options": [{"name": "a", "parameters": [
        {"name": "r", "type": "repeat", "min": 1, "max": 2, "parameters": [
            {"name": "d", "type": "conditional", "options": [{"name": "b"}]}]}]}]},
     "spec.searchSpace.parameters[0].options[0].parameters[0].parameters[0].type", "3 levels"),
])
def test_bad_parameters_are_named(fields, path, words, experiment):
    issues = issues_besides_user_code(set_parameter(experiment, 0, **fields))
    assert [p for p, _ in issues] == [path], issues
    assert words in issues[0][1]


def test_too_many_decisions_in_a_list_is_a_schema_bound(experiment):
    experiment["spec"]["searchSpace"]["parameters"] = [
        {"name": f"x{i}", "type": "uniform", "min": 0, "max": 1} for i in range(limits.MAX_PARAMETERS + 1)]
    issues = issues_besides_user_code(experiment)
    assert issues == [("spec.searchSpace.parameters", f"has {limits.MAX_PARAMETERS + 1} items; at most "
                       f"{limits.MAX_PARAMETERS} are allowed: remove some")]


def test_blocks_of_another_space_type_are_refused(experiment):
    experiment["spec"]["searchSpace"]["chain"] = {"layers": 3}
    assert issues_besides_user_code(experiment)[0][0] == "spec.searchSpace.chain"
    chain = yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())
    chain["spec"]["searchSpace"]["parameters"] = copy.deepcopy(PARAMETERS)
    assert [i.path for i in validate_experiment(chain)] == ["spec.searchSpace.parameters"]


def test_a_missing_parameters_list_is_named(experiment):
    del experiment["spec"]["searchSpace"]["parameters"]
    issues = issues_besides_user_code(experiment)
    assert [p for p, _ in issues] == ["spec.searchSpace.parameters"]
    assert "required" in issues[0][1]


def _level(schema: dict) -> dict:
    return schema["items"]["properties"]


def test_the_crd_repeats_the_spaces_limits():
    space = openapi_schema("NASExperiment")["properties"]["spec"]["properties"]["searchSpace"]["properties"]
    assert "parameters" in space["type"]["enum"]
    node, depth = space["parameters"], 0
    while "items" in node and "properties" in node["items"]:
        depth += 1
        fields = _level(node)
        assert node["maxItems"] == limits.MAX_PARAMETERS
        assert fields["type"]["enum"] == list(limits.PARAMETER_TYPES)
        assert fields["values"]["maxItems"] == limits.MAX_VALUES
        assert fields["options"]["maxItems"] in (limits.MAX_OPTIONS, limits.MAX_PARAMETERS)
        node = fields["parameters"]
    assert depth == limits.MAX_DEPTH  # unrolled as deep as the space allows; deeper is refused by name


def test_the_assignment_flows_into_the_trial_spec_and_records(experiment):
    space = SearchSpace.from_spec(experiment["spec"]["searchSpace"])
    proposal = space.sample(random.Random(4))
    spec = build_trial_spec("byo", experiment["spec"], 7, proposal)
    assignment = proposal["architecture"]["parameters"]
    assert spec["architecture"] == {"type": "parameters", "parameters": assignment}
    assert list(validator("NASTrial").iter_errors({"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial",
                                                   "metadata": {"name": "byo-7"}, "spec": spec})) == []
    # what the controller reads back from a NASTrial, and the local runner from trials.jsonl
    through_json = json.loads(json.dumps(spec))
    assert space.canonical(trial_candidate(through_json)) == proposal
    summary = f"lr={assignment['lr']:.4g}"
    record = from_trial_object({"metadata": {"name": "byo-7"}, "spec": through_json,
                                "status": {"phase": "Succeeded", "reward": 0.9}})
    assert record.architecture.startswith(summary) and "layers=[" in record.architecture
    row = {"name": "byo-7", "index": 7, "status": "Succeeded", "reward": 0.9,
           "architecture": through_json["architecture"], "hyperparameters": {}}
    assert from_row(row).architecture == record.architecture
    (board,) = leaderboard_rows([row], "maximize")
    assert board[-1] == record.architecture
