"""`kubenas serve EXPERIMENT`: the best model named by a cluster experiment's status, read
from its spec.artifacts object store (moto's S3 server on loopback, s3fs) as `kubenas
model` reads it: ONNX when the trials exported it, TorchScript otherwise. The
experiment's status is given as the API server would return it (the read itself is
`kubenas model`'s, tested on the real tier in tests/e2e/test_artifacts.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from kubenas.artifacts import model as artifacts_model
from kubenas.contract import artifacts as art
from kubenas.serving.model import load, locate
from kubenas_trainer.reporting.artifacts import Policy, publish
from kubenas_trainer.training.export import export_onnx, export_torchscript
from tests.trainer.test_artifacts_store import BUCKET, s3, s3_server  # noqa: F401 - fixtures

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.mark.parametrize("formats, platform", [(["torchscript", "onnx"], "onnxruntime_onnx"),
                                               (["torchscript"], "pytorch_libtorch")])
def test_the_best_model_of_an_experiment_is_served_from_its_artifacts(s3, tmp_path, monkeypatch,  # noqa: F811
                                                                      formats, platform):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10)).eval()
    meta = {"task": "image-classification", "trial": "exp-1", "numClasses": 10, "classes": list("0123456789")}
    exported = export_torchscript(net, tmp_path / "trial" / "model.pt", (1, 8, 8), [0.5], [0.25], meta)
    if "onnx" in formats:
        export_onnx(net, exported.with_suffix(".onnx"), (1, 8, 8), [0.5], [0.25], opset=17, metadata=meta)
    url = f"s3://{BUCKET}/serve-{len(formats)}"
    location = art.experiment_location({"url": url}, "exp")
    where = publish(Policy(root=location, location=location, models="all"), "exp-1", "maximize",
                    {"status": "Succeeded", "reward": 0.5, "metrics": {}, "history": []}, exported)
    experiment = {"metadata": {"name": "exp", "namespace": "research"},
                  "spec": {"artifacts": {"url": url}, "trial": {"export": {"formats": formats}}},
                  "status": {"phase": "Succeeded", "bestTrial": {"name": "exp-1", "model": where}}}
    asked = []
    monkeypatch.setattr(artifacts_model, "read_experiment",
                        lambda name, namespace, kubeconfig, context: asked.append((name, namespace)) or experiment)

    path, name = locate("exp", namespace="research")
    served = load(path, name)
    assert asked and asked[0] == ("exp", "research")
    assert (served.name, served.version, served.platform) == ("exp", "exp-1", platform)
    assert served.signature.input.as_v2() == {"name": "images", "datatype": "FP32", "shape": [-1, 1, 8, 8]}
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = torch.jit.load(str(exported))(x).numpy()
    np.testing.assert_allclose(served.run(x.numpy())[0], expected, rtol=1e-4, atol=1e-5)

    # --model-url: what a spec.deploy Deployment serves from an object store (no API server)
    at_url = art.model_location(where, "onnx" if "onnx" in formats else "torchscript")
    path, name = locate(None, model_url=at_url, download_dir=tmp_path / "pod-tmp")
    assert path.parent == tmp_path / "pod-tmp" and name == "model"
    np.testing.assert_allclose(load(path, name).run(x.numpy())[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("args, words", [
    (["nowhere/run"], "nowhere/run is not a run directory (nor a NASExperiment name)"),
    (["{run}", "--trial", "tiny-9"], "has no model.onnx or model.pt: trial tiny-9 kept no model"),
    (["--model-dir", "{run}"], "holds no model.onnx or model.pt"),
    (["{run}", "--model-dir", "{run}"], "--model-dir names the model itself"),
    (["{run}", "--model-url", "s3://b/exp_1/t/model.pt"], "--model-url names the model itself"),
    (["--model-url", "https://example.com/model.pt"], "expected the URL of an exported model file in an object store"),
    (["{run}", "--max-batch-size", "0"], "--max-batch-size 0: must be at least 1"),
    ([], "name a run directory or a NASExperiment, or pass --model-dir"),
])
def test_what_cannot_be_served_is_named(tmp_path, capsys, args, words):
    from kubenas.cli import main

    run = tmp_path / "run"
    (run / "trials").mkdir(parents=True)
    assert main(["serve", *(a.format(run=run) for a in args)]) == 1
    assert words in capsys.readouterr().err
