"""The exported TorchScript model loads without kubenas and classifies digits."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kubenas_trainer.data import load_dataset
from kubenas_trainer.training.export import load_metadata
from kubenas_trainer.training.loop import run_trial

CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 16, "kernel": 3, "stride": 1},
                                     {"op": "conv", "filters": 32, "kernel": 3, "stride": 2},
                                     {"op": "dw_conv", "filters": 32, "kernel": 3, "stride": 1}]}

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

FRESH_PROCESS = r"""
import json, sys
import numpy as np
# kubenas must not be importable: block both packages before anything else runs
for name in ("kubenas", "kubenas_trainer", "kubenas_operator"):
    sys.modules[name] = None
try:
    import kubenas_trainer
except ImportError:
    pass
else:
    raise SystemExit("kubenas_trainer is importable")
import torch
data = np.load(sys.argv[2])
model = torch.jit.load(sys.argv[1], map_location="cpu")
with torch.no_grad():
    logits = model(torch.from_numpy(data["x"]))
print(json.dumps(logits.argmax(1).tolist()))
"""


def test_torchscript_loads_in_a_fresh_process_without_kubenas(tmp_path):
    trial = {"architecture": CHAIN, "dataset": {"name": "digits"},
             "training": {"epochs": 8, "batchSize": 32, "measureLatency": False}}
    model_path = tmp_path / "model.pt"
    result = run_trial(trial, model_path=model_path)
    assert result["status"] == "Succeeded", result["message"]

    data = load_dataset({"name": "digits"}, seed=0)
    x = (data.test.x.float() * data.scale).numpy()  # pixels in [0, 1], as documented
    np.savez(tmp_path / "test.npz", x=x)
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(model_path), str(tmp_path / "test.npz")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    predictions = np.array(json.loads(proc.stdout))
    accuracy = float((predictions == data.test.y.numpy()).mean())
    assert accuracy == result["metrics"]["testAccuracy"]
    assert accuracy >= 0.9

    meta = load_metadata(model_path)
    assert meta["inputShape"] == [1, 8, 8] and meta["numClasses"] == 10
    assert meta["architecture"] == CHAIN and meta["classes"][7] == "7"
    loaded = torch.jit.load(str(model_path))
    assert loaded(torch.rand(3, 1, 8, 8)).shape == (3, 10)


# ----------------------------------------------------------------------------- no silent tracing


class _Net(torch.nn.Module):
    """A network over ``N x C x 1 x T``: scripts."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, (1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


class _LengthBoundFront(torch.nn.Module):
    """A front end that does not script (numpy) and whose trace freezes the length: it
    scales by sqrt(T) computed in Python."""

    def forward(self, x):
        return (x * float(np.sqrt(x.shape[1])))[:, None, None, :]


class _ForeignFront(torch.nn.Module):
    """Does not script (a numpy call) but traces for any length: the scale is a constant."""

    def forward(self, x):
        return (x * float(np.float32(3.0)))[:, None, None, :]


def _export(tmp_path, net, front, variable_length=True):
    from kubenas_trainer.training.export import export_torchscript

    return export_torchscript(net, tmp_path / "model.pt", (1, 1, 40), [0.0], [1.0], front=front,
                              input_doc="float32 N x T", example=torch.randn(2, 40),
                              normalise=False, variable_length=variable_length)


def test_a_length_free_model_that_does_not_script_is_refused_naming_the_module(tmp_path):
    from kubenas_trainer.training.export import ExportError

    with pytest.raises(ExportError) as err:
        _export(tmp_path, _Net(), _LengthBoundFront())
    message = str(err.value)
    assert "front (" in message and "_LengthBoundFront" in message and "does not script" in message
    assert "[2, 19]" in message  # the shorter input it was checked on
    assert not (tmp_path / "model.pt").exists() and not list(tmp_path.glob("*.tmp"))
    # An image model has one input shape: the same front is traced at it, and says so.
    path = _export(tmp_path, _Net(), _LengthBoundFront(), variable_length=False)
    assert load_metadata(path)["torchscript"] == "traced"


def test_a_trace_is_kept_only_when_it_agrees_at_other_lengths_and_says_so(tmp_path, caplog):
    net = _Net().eval()
    with caplog.at_level("WARNING", logger="kubenas.trainer.export"):
        path = _export(tmp_path, net, _ForeignFront())
    assert "front (" in caplog.text and "_ForeignFront) does not script" in caplog.text
    assert load_metadata(path)["torchscript"] == "traced"
    loaded = torch.jit.load(str(path))
    for length in (7, 40, 101):
        x = torch.randn(3, length)
        with torch.no_grad():
            assert torch.allclose(loaded(x), net(x[:, None, None, :] * 3.0), atol=1e-6)
