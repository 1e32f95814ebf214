"""The exported TorchScript model loads without kubenas and classifies digits."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from kubenas_trainer.data import load_dataset
from kubenas_trainer.export import load_metadata
from kubenas_trainer.train import run_trial

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
