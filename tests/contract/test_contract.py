"""The CRDs (crds/*.yaml), the search space and the trainer agree with the trial contract
(kubenas.contract) on every name and limit they share."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml
from jsonschema import Draft4Validator

from kubenas import contract
from kubenas.api.validation import validate_experiment
from kubenas.contract import ops
from kubenas.contract.settings import INT64_MAX, SEARCHABLE, SETTINGS
from kubenas.contract.spaces import space_names
from kubenas.space import SearchSpace, SpaceError
from kubenas_trainer.errors import InvalidTrial
from kubenas_trainer.settings import resolve_trial

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "choice": "string"}


def crd_schema(kind_file: str) -> dict:
    crd = yaml.safe_load((ROOT / "crds" / kind_file).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


EXPERIMENT = crd_schema("kubenas.io_nasexperiments.yaml")
TRIAL = crd_schema("kubenas.io_nastrials.yaml")


def at(schema: dict, path: str) -> dict:
    """The sub-schema at a dotted path; ``[]`` steps into array items."""
    for part in path.split("."):
        if part == "[]":
            schema = schema["items"]
        else:
            schema = schema["properties"][part]
    return schema


# ----------------------------------------------------------------------- settings


@pytest.mark.parametrize("schema", [EXPERIMENT, TRIAL], ids=["NASExperiment", "NASTrial"])
def test_both_crds_name_every_training_setting_with_its_type(schema):
    training = at(schema, "spec.trial.training" if schema is EXPERIMENT else "spec.training")["properties"]
    assert list(training) == list(SETTINGS)
    assert {n: p["type"] for n, p in training.items()} == {n: SCHEMA_TYPES[s.kind] for n, s in SETTINGS.items()}


@pytest.mark.parametrize("name", list(SETTINGS))
def test_experiment_crd_limits_and_enums_are_the_contracts(name):
    setting, prop = SETTINGS[name], at(EXPERIMENT, f"spec.trial.training.{name}")
    assert tuple(prop.get("enum", ())) == setting.choices
    limit = setting.limit
    if limit is None:
        assert not {"minimum", "maximum"} & set(prop)
        return
    assert prop.get("minimum") == limit.low
    assert prop.get("exclusiveMinimum", False) == limit.low_open
    assert prop.get("maximum") == (None if limit.high == INT64_MAX else limit.high)  # int64: the schema's own bound
    assert prop.get("exclusiveMaximum", False) == limit.high_open


def _probes(limit) -> list:
    values = []
    for bound in (limit.low, limit.high):
        if bound is not None:
            values += [bound, bound - 1, bound + 1] if isinstance(bound, int) else [bound, bound - 1e-9, bound + 1e-9]
    return values


def _space_accepts(name: str, value) -> bool:
    try:
        SearchSpace.from_spec({"type": "chain", "hyperparameters": [
            {"name": name, "type": "categorical", "values": [value]}]})
    except SpaceError:
        return False
    return True


def _trainer_accepts(name: str, value) -> bool:
    try:
        # scheduleEpochs must also cover epochs (default 8): probe its own limits with epochs 1.
        resolve_trial({"architecture": {}, "training": {name: value, **({"epochs": 1} if name == "scheduleEpochs"
                                                                        else {})}})
    except InvalidTrial:
        return False
    return True


@pytest.mark.parametrize("name", [n for n, s in SETTINGS.items() if s.limit is not None])
def test_crd_space_and_trainer_accept_the_same_values(name):
    """Each bound and its neighbours: accepted by all three, or refused by all three."""
    limit = SETTINGS[name].limit
    crd = Draft4Validator(at(EXPERIMENT, f"spec.trial.training.{name}"))
    for value in _probes(limit):
        expected = limit.contains(value)
        assert crd.is_valid(value) == expected or value > INT64_MAX - 2, (name, value)
        assert _trainer_accepts(name, value) == expected, (name, value)
        if name in SEARCHABLE:
            assert _space_accepts(name, value) == expected, (name, value)


def test_the_space_takes_the_crds_grid_sizes():
    from kubenas.space.hyperparameters import MAX_GRID_POINTS

    grid = at(EXPERIMENT, "spec.searchSpace.hyperparameters.[].grid")
    assert (grid["minimum"], grid["maximum"]) == (2, MAX_GRID_POINTS)


def test_searchable_settings_are_the_crds_hyperparameter_names():
    assert tuple(at(EXPERIMENT, "spec.searchSpace.hyperparameters.[].name")["enum"]) == SEARCHABLE
    assert set(SEARCHABLE) <= set(SETTINGS)


def test_the_trainer_resolves_with_the_contracts_table():
    import kubenas_trainer.settings

    assert kubenas_trainer.settings.SETTINGS is SETTINGS


# ------------------------------------------------------------------ ops and spaces


def test_op_registries_are_the_crd_enums_and_the_trainers_builders():
    from kubenas_trainer.models import ops as trainer_ops

    assert tuple(at(EXPERIMENT, "spec.searchSpace.chain.operations.[]")["enum"]) == tuple(ops.CHAIN_OPS)
    assert tuple(at(EXPERIMENT, "spec.searchSpace.cell.operations.[]")["enum"]) == tuple(ops.CELL_OPS)
    assert tuple(at(EXPERIMENT, "spec.searchSpace.chain.kernelSizes.[]")["enum"]) == ops.KERNEL_SIZES
    assert tuple(at(EXPERIMENT, "spec.searchSpace.chain.strides.[]")["enum"]) == ops.STRIDES
    assert set(trainer_ops.CHAIN_OP_BUILDERS) == set(ops.CHAIN_OPS)
    assert set(trainer_ops.CELL_OP_BUILDERS) == set(ops.CELL_OPS)
    assert set(ops.CHAIN_LAYER_FIELDS) == {f for op in ops.CHAIN_OPS.values() for f in op.fields}


@pytest.mark.parametrize("path, low, high", [
    ("spec.searchSpace.chain.layers", 1, ops.MAX_CHAIN_LAYERS),
    ("spec.searchSpace.chain.filters.[]", 1, ops.MAX_FILTERS),
    ("spec.searchSpace.cell.nodes", ops.MIN_CELL_NODES, ops.MAX_CELL_NODES),
    ("spec.searchSpace.cell.channels", 1, ops.MAX_CELL_CHANNELS),
    ("spec.searchSpace.cell.cellsPerStage", 1, ops.MAX_CELLS_PER_STAGE),
    ("spec.searchSpace.cell.stages", 1, ops.MAX_STAGES),
])
def test_space_limits_in_the_crd(path, low, high):
    prop = at(EXPERIMENT, path)
    assert (prop["minimum"], prop["maximum"]) == (low, high)


def test_names_the_crds_enumerate():
    assert tuple(at(EXPERIMENT, "spec.searchSpace.type")["enum"]) == space_names()
    assert tuple(at(TRIAL, "spec.architecture.type")["enum"]) == space_names()
    assert tuple(at(EXPERIMENT, "spec.objective.metric")["enum"]) == contract.METRICS
    assert tuple(at(EXPERIMENT, "spec.objective.goal")["enum"]) == contract.GOALS
    assert tuple(at(TRIAL, "spec.objective.goal")["enum"]) == contract.GOALS
    assert tuple(at(EXPERIMENT, "spec.objective.penalties.[].metric")["enum"]) == contract.PENALTY_METRICS
    assert at(EXPERIMENT, "spec.objective.penalties")["maxItems"] == contract.MAX_PENALTIES
    assert tuple(at(EXPERIMENT, "spec.trial.task")["enum"]) == contract.TASKS
    assert tuple(at(EXPERIMENT, "status.phase")["enum"]) == contract.EXPERIMENT_PHASES
    assert tuple(at(TRIAL, "status.phase")["enum"]) == contract.TRIAL_PHASES
    assert at(TRIAL, "status.history")["maxItems"] == contract.HISTORY_LIMIT
    # Every objective metric survives in a trial's per-epoch history (the API server prunes
    # unknown fields, and the median rule reads the objective there).
    assert set(contract.METRICS) <= set(at(TRIAL, "status.history")["items"]["properties"])


def test_exit_codes():
    """The documented codes (docs/trainer.md); tests/contract/test_exit_codes.py checks the table's rules."""
    assert contract.EXIT_REASONS == {1: "InternalError", 2: "InvalidArchitecture", 3: "Diverged",
                                     4: "OutOfMemory", 5: "Timeout", 6: "DataError", 7: "ConstraintViolated",
                                     8: "NoReward", 9: "Unsatisfiable", 75: "ApiUnavailable"}
    assert contract.FINAL_EXIT_CODES == (1, 2, 3, 4, 5, 6, 7, 8, 9)
    assert contract.PROGRAM_EXIT_REASONS == {2: "InvalidArchitecture", 3: "Diverged", 4: "OutOfMemory",
                                             5: "Timeout", 6: "DataError"}


# --------------------------------------------------- the bug this contract fixes


def experiment(hyperparameter: dict) -> dict:
    return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "hp"},
            "spec": {"objective": {"metric": "accuracy"}, "strategy": {"type": "random"},
                     "budget": {"maxTrials": 4}, "trial": {"dataset": {"name": "digits"}},
                     "searchSpace": {"type": "chain", "hyperparameters": [hyperparameter]}}}


@pytest.mark.parametrize("hyperparameter, path, message", [
    ({"name": "batchSize", "type": "int", "min": 1, "max": 64},
     "spec.searchSpace.hyperparameters[0].min", "must be at least 2, got 1"),
    ({"name": "momentum", "type": "uniform", "min": 0.5, "max": 1.0},
     "spec.searchSpace.hyperparameters[0].max", "must be less than 1.0, got 1.0"),
    ({"name": "momentum", "type": "categorical", "values": [0.9, 1]},
     "spec.searchSpace.hyperparameters[0].values[1]", "must be less than 1.0, got 1"),
])
def test_values_the_trainer_refuses_are_refused_by_validation(hyperparameter, path, message):
    assert [(i.path, i.message) for i in validate_experiment(experiment(hyperparameter))] == [(path, message)]


def test_kubenas_validate_names_the_batch_size_error(tmp_path):
    file = tmp_path / "hp.yaml"
    file.write_text(yaml.safe_dump(experiment({"name": "batchSize", "type": "int", "min": 1, "max": 64})))
    done = subprocess.run([sys.executable, "-m", "kubenas.cli", "validate", str(file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "spec.searchSpace.hyperparameters[0].min: must be at least 2, got 1" in done.stderr
