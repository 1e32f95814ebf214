"""spec.trial.training.scheduleEpochs: refused with the field named when it cannot cover the epochs trained."""
from __future__ import annotations

import copy
import pathlib

import pytest
import yaml

from kubenas.api.validation import validate_experiment

ROOT = pathlib.Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "deploy/examples/digits-random.yaml").read_text())


def issues(training, hyperparameters=None):
    doc = copy.deepcopy(BASE)
    doc["spec"]["trial"]["training"] = {**(doc["spec"]["trial"].get("training") or {}), **training}
    if hyperparameters is not None:
        doc["spec"]["searchSpace"]["hyperparameters"] = hyperparameters
    return [(i.path, i.message) for i in validate_experiment(doc)]


def test_a_longer_schedule_is_accepted():
    assert issues({"epochs": 2, "scheduleEpochs": 9, "warmupEpochs": 3}) == []


@pytest.mark.parametrize("training, hyperparameters, path", [
    ({"epochs": 4, "scheduleEpochs": 3}, None, "spec.trial.training.scheduleEpochs"),
    ({"epochs": 2, "scheduleEpochs": 4}, [{"name": "epochs", "type": "categorical", "values": [2, 6]}],
     "spec.trial.training.scheduleEpochs"),
    ({"epochs": 2, "warmupEpochs": 3}, None, "spec.trial.training.warmupEpochs"),
    ({"scheduleEpochs": 0}, None, "spec.trial.training.scheduleEpochs"),
])
def test_refusals_name_the_field(training, hyperparameters, path):
    found = issues(training, hyperparameters)
    assert [p for p, _ in found] == [path], found
