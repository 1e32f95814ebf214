"""trial.export: the CRDs, validation, the trial spec and the trainer agree with
kubenas.contract.settings (EXPORT_FORMATS, ONNX_OPSET, export_problem)."""
from __future__ import annotations

import pytest

from kubenas.api.trials import build_trial_spec
from kubenas.api.validation import validate_experiment
from kubenas.contract.settings import EXPORT_FORMATS, ONNX_OPSET
from kubenas_trainer.errors import InvalidTrial
from kubenas_trainer.settings import resolve_trial
from tests.contract.test_contract import EXPERIMENT, TRIAL, at, experiment


def with_export(export: dict) -> dict:
    body = experiment({"name": "batchSize", "type": "int", "min": 16, "max": 64})
    body["spec"]["trial"]["export"] = export
    return body


def test_crd_names_the_contracts_formats_and_opset_range():
    assert tuple(at(EXPERIMENT, "spec.trial.export.formats.[]")["enum"]) == EXPORT_FORMATS
    opset = at(EXPERIMENT, "spec.trial.export.opset")
    assert (opset["minimum"], opset["maximum"]) == (ONNX_OPSET.limit.low, ONNX_OPSET.limit.high)
    assert at(EXPERIMENT, "spec.trial.export.formats")["maxItems"] == len(EXPORT_FORMATS)
    assert set(at(TRIAL, "spec.export")["properties"]) == {"formats", "opset"}


@pytest.mark.parametrize("export, path, message", [
    ({"formats": ["torchscript"], "opset": 17}, "spec.trial.export.opset",
     "is read only when formats lists onnx: add onnx to formats, or remove opset"),
    ({"formats": ["onnx", "onnx"]}, "spec.trial.export.formats", "lists a format twice; name each once"),
])
def test_validation_and_trainer_refuse_the_same_export(export, path, message):
    issues = [(i.path, i.message) for i in validate_experiment(with_export(export))]
    assert (path, message) in issues, issues
    with pytest.raises(InvalidTrial, match=path.removeprefix("spec.trial.").replace(".", r"\.")):
        resolve_trial({"architecture": {}, "export": export})


@pytest.mark.parametrize("export, path", [
    ({"formats": ["tflite"]}, "spec.trial.export.formats[0]"),
    ({"formats": ["onnx"], "opset": ONNX_OPSET.limit.high + 1}, "spec.trial.export.opset"),
    ({"formats": []}, "spec.trial.export.formats"),
])
def test_the_schema_refuses_what_it_can_say(export, path):
    assert path in [i.path for i in validate_experiment(with_export(export))]


def test_a_valid_export_reaches_the_trial_spec_and_the_trainer():
    body = with_export({"formats": ["torchscript", "onnx"], "opset": 18})
    assert validate_experiment(body) == []
    spec = build_trial_spec("hp", body["spec"], 0, {"architecture": {"type": "chain", "layers": []}})
    assert spec["export"] == {"formats": ["torchscript", "onnx"], "opset": 18}
    assert resolve_trial({**spec, "architecture": {}}).export == {"formats": ["torchscript", "onnx"], "opset": 18}
    without = build_trial_spec("hp", experiment({"name": "batchSize", "type": "int", "min": 16, "max": 64})["spec"],
                               0, {"architecture": {}})
    assert "export" not in without  # the trainer's default: TorchScript only
    assert resolve_trial({**without, "architecture": {}}).export == {"formats": ["torchscript"],
                                                                       "opset": ONNX_OPSET.default}
