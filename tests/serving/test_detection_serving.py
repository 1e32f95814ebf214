"""An exported object detector over HTTP: the model folder of a trained detection trial
served by `kubenas serve` (TorchScript: torchvision's detection ops are registered before
loading), its V2 metadata the export's signature, and a standard client's detections
equal to the model run in-process."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from kubenas_trainer.tasks.coco import read_coco, write_shapes
from kubenas_trainer.training.loop import run_trial

tritonclient = pytest.importorskip("tritonclient.http")
pytest.importorskip("torchvision")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 16, "kernel": 3, "stride": 2},
                                     {"op": "conv", "filters": 16, "kernel": 3, "stride": 2},
                                     {"op": "conv", "filters": 24, "kernel": 3, "stride": 2}]}


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    shapes = write_shapes(tmp_path_factory.mktemp("shapes"), train=16, test=4, size=48, seed=5)
    folder = tmp_path_factory.mktemp("detector")
    result = run_trial({"architecture": CHAIN, "task": "object-detection", "name": "det-1",
                        "dataset": {"name": "coco", "path": str(shapes)},
                        "training": {"epochs": 1, "batchSize": 8, "numThreads": 1, "measureLatency": False,
                                     "maxTrainBatches": 2}}, model_path=folder / "model.pt")
    assert result["status"] == "Succeeded", result
    images = read_coco(str(shapes), None).test.images[:2]
    return folder, (torch.from_numpy(images).float() / 255).numpy()


def test_a_detector_is_served_with_its_signature_and_its_detections(detector, serve):
    folder, images = detector
    server = serve("--model-dir", folder, "--model-name", "shapes")
    client = tritonclient.InferenceServerClient(server.url)
    meta = client.get_model_metadata("shapes")
    assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    assert [o["name"] for o in meta["outputs"]] == ["boxes", "scores", "labels", "counts"]
    tensor = tritonclient.InferInput("images", list(images.shape), "FP32")
    tensor.set_data_from_numpy(np.ascontiguousarray(images))
    answer = client.infer("shapes", [tensor])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        boxes, scores, labels, counts = torch.jit.load(str(folder / "model.pt"))(torch.from_numpy(images))
    np.testing.assert_array_equal(answer.as_numpy("counts"), counts.numpy())
    np.testing.assert_array_equal(answer.as_numpy("labels"), labels.numpy())
    np.testing.assert_allclose(answer.as_numpy("boxes"), boxes.numpy(), atol=1e-3)
    np.testing.assert_allclose(answer.as_numpy("scores"), scores.numpy(), atol=1e-5)
