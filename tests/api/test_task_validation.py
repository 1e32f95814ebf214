"""`kubenas validate` knows the tasks: their datasets, their dataset fields and the
validation rules (docs/tasks.md), naming the field and the fix."""
from pathlib import Path

import pytest
import yaml

from kubenas.api.validation import validate_experiment
from kubenas.contract import TASKS
from kubenas.contract.settings import export_problem
from kubenas.contract.tasks import TASK_DATASETS, VALIDATION_RULES

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def kws():
    return yaml.safe_load((ROOT / "deploy/examples/words-kws-temporal.yaml").read_text())


def issues(obj):
    return {issue.path: issue.message for issue in validate_experiment(obj)}


def test_the_crd_enums_are_the_contract_tables():
    crd = yaml.safe_load((ROOT / "crds" / "kubenas.io_nasexperiments.yaml").read_text())
    trial = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["trial"]
    assert tuple(trial["properties"]["task"]["enum"]) == TASKS
    names = trial["properties"]["dataset"]["properties"]["name"]["enum"]
    assert set(names) == {n for datasets in TASK_DATASETS.values() for n in datasets}
    rules = trial["properties"]["dataset"]["properties"]["validation"]["properties"]["type"]["enum"]
    assert tuple(rules) == VALIDATION_RULES


def test_a_dataset_of_another_task_is_refused(kws):
    kws["spec"]["trial"]["dataset"] = {"name": "cifar10", "path": "/data"}
    assert "not a dataset of task audio-classification" in issues(kws)["spec.trial.dataset.name"]


def test_a_field_of_another_task_is_refused(kws):
    kws["spec"]["trial"]["dataset"]["sequence"] = {"embeddingDim": 8}
    assert "does not read it" in issues(kws)["spec.trial.dataset.sequence"]


def test_front_end_values_are_checked_by_the_schema(kws):
    kws["spec"]["trial"]["dataset"]["frontEnd"]["layout"] = "2d"
    assert "spec.trial.dataset.frontEnd.layout" in issues(kws)


@pytest.mark.parametrize("validation, field", [
    ({"type": "files"}, "spec.trial.dataset.validation.files"),
    ({"type": "kfold"}, "spec.trial.dataset.validation.folds"),
    ({"type": "kfold", "folds": 3, "fold": 3}, "spec.trial.dataset.validation.fold"),
    ({"type": "group", "folds": 3}, "spec.trial.dataset.validation.folds"),
    ({"type": "speakers"}, "spec.trial.dataset.validation.type"),
])
def test_validation_options_name_the_field(kws, validation, field):
    kws["spec"]["trial"]["dataset"]["validation"] = validation
    assert field in issues(kws)


def test_valid_task_specs_pass(kws):
    kws["spec"]["trial"]["dataset"]["validation"] = {"type": "kfold", "folds": 5, "fold": 4}
    kws["spec"]["trial"]["dataset"]["augment"] = {"freqMasks": 2, "timeShiftSeconds": 0.1}
    assert issues(kws) == {}


def test_onnx_of_an_audio_model_needs_the_stft_opset(kws):
    """The exported audio model carries its log-mel front end; ONNX has STFT from opset 17."""
    kws["spec"]["trial"]["export"] = {"formats": ["torchscript", "onnx"], "opset": 16}
    assert "set opset 17 or more" in issues(kws)["spec.trial.export.opset"]
    kws["spec"]["trial"]["export"]["opset"] = 17
    assert "spec.trial.export.opset" not in issues(kws)
    assert export_problem({"formats": ["onnx"], "opset": 13}, "image-classification") is None
    assert export_problem({"formats": ["onnx"], "opset": 13}, "audio-classification")[0] == "opset"


def test_the_objective_metric_is_one_the_task_measures(kws):
    speech = yaml.safe_load((ROOT / "deploy/examples/speech-vowels.yaml").read_text())
    assert issues(speech) == {}  # wer, minimised, on speech-recognition
    speech["spec"]["objective"] = {"metric": "accuracy", "goal": "maximize"}
    assert "not measured by speech-recognition; use one of wer, cer, loss" in issues(speech)["spec.objective.metric"]
    kws["spec"]["objective"] = {"metric": "wer", "goal": "minimize"}
    assert "not measured by audio-classification" in issues(kws)["spec.objective.metric"]
    speech["spec"]["objective"] = {"metric": "wer", "goal": "maximize"}
    assert "wer should be minimized" in issues(speech)["spec.objective.goal"]
