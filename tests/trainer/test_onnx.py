"""ONNX export: onnxruntime gives the PyTorch model's logits, for every op of both
built-in spaces, at the default opset and the range's ends; a trial asked for
``export.formats: [torchscript, onnx]`` writes both files."""
import numpy as np
import pytest
import torch

from kubenas.contract import ops
from kubenas.contract.settings import EXPORT_DEFAULTS, ONNX_OPSET
from kubenas_trainer.training.export import NormalizedClassifier, export_onnx, load_metadata, load_onnx_metadata
from kubenas_trainer.models import build_model
from kubenas_trainer.training.loop import run_trial

onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

MEAN, STD = [0.3], [0.25]
RTOL, ATOL = 1e-4, 1e-5


def chain(*ops_, filters=8):
    return {"type": "chain", "layers": [{"op": op, "filters": filters, "kernel": 3, "stride": 1 + (i % 2)}
                                        for i, op in enumerate(ops_)]}


def cell(row_ops, stages=2):
    # every op of the space appears on some edge: 4 nodes have 6 edges
    flat = (list(row_ops) * 6)[:6]
    return {"type": "cell", "nodes": 4, "edges": [flat[0:1], flat[1:3], flat[3:6]],
            "channels": 8, "cellsPerStage": 1, "stages": stages}


CHAIN_OPS, CELL_OPS = tuple(ops.CHAIN_OPS), tuple(op for op in ops.CELL_OPS if op != "none")
GENOTYPES = {
    "chain-every-op": chain(*CHAIN_OPS),
    "chain-conv": chain("conv", "conv", "dw_conv" if "dw_conv" in CHAIN_OPS else "conv"),
    "cell-every-op": cell(CELL_OPS),
    "cell-with-none": cell(("none", "skip_connect", "conv_3x3"), stages=3),
}


def onnx_logits(path, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": x})[0]


@pytest.mark.parametrize("name", sorted(GENOTYPES))
@pytest.mark.parametrize("opset", sorted({ONNX_OPSET.default, ONNX_OPSET.limit.low, ONNX_OPSET.limit.high}))
def test_onnxruntime_equals_pytorch(tmp_path, name, opset):
    torch.manual_seed(0)
    shape = (1, 8, 8)
    model = build_model(GENOTYPES[name], shape, 10)
    # trained-looking statistics: batch norm's running stats away from 0 and 1
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, *shape) * 2)
    model.eval()
    path = export_onnx(model, tmp_path / "model.onnx", shape, MEAN, STD, opset=opset, metadata={"trial": name})
    x = torch.rand(5, *shape)  # another batch size than the export traced
    with torch.no_grad():
        expected = NormalizedClassifier(model, MEAN, STD).eval()(x).numpy()
    got = onnx_logits(path, x.numpy())
    assert got.shape == (5, 10)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)
    assert np.abs(expected).max() > 1e-3  # the logits are not all zero (the comparison means something)
    meta = load_onnx_metadata(path)
    assert meta["opset"] == opset and meta["trial"] == name and meta["inputShape"] == [1, 8, 8]


def test_opset_default_is_tested_and_in_range():
    assert EXPORT_DEFAULTS["opset"] == ONNX_OPSET.default and ONNX_OPSET.limit.contains(ONNX_OPSET.default)


def test_trial_with_both_formats_writes_model_pt_and_model_onnx(tmp_path):
    trial = {"architecture": chain("conv", "max_pool" if "max_pool" in CHAIN_OPS else "conv"),
             "dataset": {"name": "digits", "limit": 200},
             "training": {"epochs": 1, "batchSize": 32, "measureLatency": False},
             "export": {"formats": ["torchscript", "onnx"], "opset": 18}}
    result = run_trial(trial, model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result["message"]
    x = torch.rand(4, 1, 8, 8)
    scripted = torch.jit.load(str(tmp_path / "model.pt"), map_location="cpu")
    with torch.no_grad():
        expected = scripted(x).numpy()
    np.testing.assert_allclose(onnx_logits(tmp_path / "model.onnx", x.numpy()), expected, rtol=RTOL, atol=ATOL)
    assert load_onnx_metadata(tmp_path / "model.onnx")["reward"] == result["reward"]
    assert load_metadata(tmp_path / "model.pt")["reward"] == result["reward"]


def test_onnx_only_writes_no_torchscript(tmp_path):
    trial = {"architecture": chain("conv"), "dataset": {"name": "digits", "limit": 100},
             "training": {"epochs": 1, "batchSize": 32, "measureLatency": False},
             "export": {"formats": ["onnx"]}}
    result = run_trial(trial, model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result["message"]
    assert (tmp_path / "model.onnx").exists() and not (tmp_path / "model.pt").exists()
    assert load_onnx_metadata(tmp_path / "model.onnx")["opset"] == ONNX_OPSET.default


@pytest.mark.parametrize("export, fragment", [
    ({"formats": ["tflite"]}, "export.formats[0]: 'tflite' is not one of torchscript, onnx"),
    ({"formats": ["onnx", "onnx"]}, "export.formats: lists a format twice"),
    ({"formats": ["onnx"], "opset": 9}, "export.opset: must be at least 13, got 9"),
    ({"formats": ["torchscript"], "opset": 17}, "export.opset: is read only when formats lists onnx"),
    ({"format": ["onnx"]}, "export.format: unknown field"),
])
def test_bad_export_fails_the_trial_naming_the_field(export, fragment):
    trial = {"architecture": chain("conv"), "dataset": {"name": "digits", "limit": 100},
             "training": {"epochs": 1}, "export": export}
    result = run_trial(trial)
    assert result["status"] == "Failed" and result["reason"] == "InvalidTrial"
    assert fragment in result["message"], result["message"]


def test_onnx_without_the_package_fails_before_training(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    epochs = []
    trial = {"architecture": chain("conv"), "dataset": {"name": "digits", "limit": 100},
             "training": {"epochs": 1}, "export": {"formats": ["torchscript", "onnx"]}}
    result = run_trial(trial, on_epoch=epochs.append, model_path=tmp_path / "model.pt")
    # Every trial would fail the same way (the node lacks the package): Unsatisfiable, which
    # ends the experiment at once (kubenas.experiment.outcome).
    assert (result["status"], result["reason"]) == ("Failed", "Unsatisfiable")
    assert "pip install 'kubenas[train]'" in result["message"] and epochs == []
