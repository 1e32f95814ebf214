"""Object detection (kubenas_trainer.tasks.detection, coco.py): COCO data in, FCOS around the
searched backbone, COCO mAP out, and an exported TorchScript detector that runs without kubenas."""
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from kubenas_trainer.tasks.coco import read_coco, write_shapes
from kubenas_trainer.errors import DataError
from kubenas_trainer.training.export import load_metadata
from kubenas_trainer.tasks import load_task
from kubenas_trainer.training.loop import run_trial

# Three stride-2 convs: feature levels at strides 2, 4 and 8 (a three-level pyramid).
CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 16, "kernel": 3, "stride": 2},
                                     {"op": "conv", "filters": 16, "kernel": 3, "stride": 2},
                                     {"op": "conv", "filters": 24, "kernel": 3, "stride": 2}]}
CELL = {"type": "cell", "nodes": 3, "channels": 8, "stages": 2, "cellsPerStage": 1,
        "edges": [["conv_3x3"], ["skip_connect", "conv_1x1"]]}


def fast(**training):
    return {"epochs": 1, "batchSize": 8, "numThreads": 1, "measureLatency": False, **training}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_shapes(tmp_path_factory.mktemp("shapes"), train=24, test=8, size=48, seed=3)


def test_the_synthetic_data_reads_back_as_written(shapes):
    data = read_coco(str(shapes), None)
    doc = json.loads((shapes / "train.json").read_text())
    assert data.classes == ["square", "circle", "triangle"] and data.category_ids == [1, 2, 3]
    assert data.train.images.shape == (24, 3, 48, 48) and data.test.images.shape[0] == 8
    assert sum(len(b) for b in data.train.boxes) == len(doc["annotations"])
    first = [a for a in doc["annotations"] if a["image_id"] == 0]
    x, y, w, h = first[0]["bbox"]
    assert np.allclose(data.train.boxes[0][0], [x, y, x + w, y + h])
    assert int(data.train.labels[0][0]) == first[0]["category_id"] - 1


def test_the_loaded_images_are_resized_with_their_boxes(shapes):
    data = read_coco(str(shapes), (24, 36))
    raw = read_coco(str(shapes), None)
    assert data.train.images.shape[-2:] == (24, 36)
    assert np.allclose(data.train.boxes[0], raw.train.boxes[0] * np.array([36 / 48, 24 / 48] * 2), atol=1e-4)


@pytest.mark.parametrize("arch, levels", [(CHAIN, 3), (CELL, 2)])
def test_a_tiny_detector_trains_and_scores_a_coco_map(shapes, arch, levels):
    task = load_task("object-detection", {"name": "coco", "path": str(shapes)}, 0, torch.device("cpu"))
    assert len(task.build_model(arch).strides) == levels  # a pyramid level per resolution of the body
    result = run_trial({"architecture": arch, "task": "object-detection",
                        "dataset": {"name": "coco", "path": str(shapes)},
                        "training": fast(epochs=2, maxTrainBatches=2)})
    assert result["status"] == "Succeeded", result
    m = result["metrics"]
    assert 0 <= m["mAP"] <= m["mAP50"] <= 1 and 0 <= m["testMAP"] <= 1
    assert result["reward"] == m["mAP"]  # the default objective
    assert m["parameters"] > 0 and m["macs"] > 0
    assert {"trainClassLoss", "trainBoxLoss", "trainCenternessLoss"} <= set(result["history"][-1])


def test_a_detector_finds_easy_objects(tmp_path):
    """Trivially easy data: one large shape per image (two classes, square and circle,
    16-22 px on 40 px images). mAP@.5 over 0.5 is far above what a detector that has not
    learned gives (an untrained one scores under 0.05 here) and needs both the boxes and
    the classes: a detector that finds every box but guesses the class scores about 0.5.
    (Measured: 0.8-0.95 after this training.)"""
    from kubenas_trainer.tasks import coco

    for split, n, seed in (("train", 96, 0), ("test", 16, 1)):
        images, anns = coco.shapes_split(n, 40, seed, max_objects=1, min_side=16, max_side=22)
        anns = [a for a in anns if a["category_id"] != 3]  # squares and circles only
        (tmp_path / split).mkdir()
        from PIL import Image

        keep = {a["image_id"] for a in anns}
        entries = []
        for i, img in enumerate(images):
            if i in keep:
                Image.fromarray(img).save(tmp_path / split / f"{i}.png")
                entries.append({"id": i, "file_name": f"{i}.png", "width": 40, "height": 40})
        for k, a in enumerate(anns):
            a["id"] = k + 1
        (tmp_path / f"{split}.json").write_text(json.dumps(
            {"images": entries, "annotations": anns, "categories": [{"id": 1, "name": "square"},
                                                                    {"id": 2, "name": "circle"}]}))
    result = run_trial({"architecture": CHAIN, "task": "object-detection",
                        "objective": {"metric": "mAP50", "goal": "maximize"},
                        "dataset": {"name": "coco", "path": str(tmp_path), "validationFraction": 0.25},
                        "training": fast(epochs=12, batchSize=8, optimizer="adam", learningRate=0.003)})
    assert result["status"] == "Succeeded", result
    assert result["metrics"]["mAP50"] > 0.5, result["history"]


FRESH_PROCESS = r"""
import json, sys
# kubenas must not be importable: block its packages before anything else runs
for name in ("kubenas", "kubenas_trainer", "kubenas_operator"):
    sys.modules[name] = None
import torch, torchvision  # torchvision registers the NMS operator the detector calls
extra = {"kubenas.json": ""}
model = torch.jit.load(sys.argv[1], _extra_files=extra)
images = torch.load(sys.argv[2])
with torch.no_grad():
    boxes, scores, labels, counts = model(images)
torch.save({"boxes": boxes, "scores": scores, "labels": labels, "counts": counts}, sys.argv[3])
print(json.loads(extra["kubenas.json"])["task"])
"""


def test_the_exported_detector_runs_in_a_fresh_process_without_kubenas(shapes, tmp_path):
    model_path = tmp_path / "model.pt"
    result = run_trial({"architecture": CHAIN, "task": "object-detection",
                        "dataset": {"name": "coco", "path": str(shapes)},
                        "training": fast(epochs=1, maxTrainBatches=2)}, model_path=model_path)
    assert result["status"] == "Succeeded", result
    meta = load_metadata(model_path)
    assert meta["task"] == "object-detection" and meta["classes"] == ["square", "circle", "triangle"]
    assert [t["name"] for t in meta["signature"]["outputs"]] == ["boxes", "scores", "labels", "counts"]
    assert meta["signature"]["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 3, -1, -1]}]
    images = torch.from_numpy(read_coco(str(shapes), None).test.images[:3]).float() / 255
    torch.save(images, tmp_path / "images.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            expected = torch.jit.load(str(model_path))(images)
    proc = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(model_path), str(tmp_path / "images.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "object-detection"
    got = torch.load(tmp_path / "out.pt")
    assert torch.equal(got["counts"], expected[3]) and torch.equal(got["labels"], expected[2])
    # the same detections (float sums may run in another order with another thread count)
    assert torch.allclose(got["boxes"], expected[0], atol=1e-3) and torch.allclose(got["scores"], expected[1], atol=1e-5)
    assert got["boxes"].shape[0] == 3 and got["boxes"].shape[-1] == 4


def test_an_onnx_export_is_refused_by_name(shapes):
    result = run_trial({"architecture": CHAIN, "task": "object-detection",
                        "dataset": {"name": "coco", "path": str(shapes)},
                        "export": {"formats": ["onnx"]}, "training": fast()})
    assert result["status"] == "Failed" and "onnx is not available for object-detection" in result["message"]


def _coco(tmp_path, annotations, categories=({"id": 1, "name": "square"},)):
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / split).mkdir(exist_ok=True)
        Image.fromarray(np.zeros((20, 30, 3), dtype=np.uint8)).save(tmp_path / split / "a.png")
        doc = {"images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20}],
               "annotations": annotations if split == "train" else [],
               "categories": list(categories)}
        (tmp_path / f"{split}.json").write_text(json.dumps(doc))
    return str(tmp_path)


@pytest.mark.parametrize("annotation, field, words", [
    ({"bbox": [25, 2, 10, 5], "category_id": 1}, "train.json annotations[0].bbox", "outside its image a.png"),
    ({"bbox": [2, 2, 5, 5], "category_id": 9}, "train.json annotations[0].category_id", "not a category"),
    ({"bbox": [2, 2, 0, 5], "category_id": 1}, "train.json annotations[0].bbox", "width and height must be > 0"),
])
def test_bad_annotations_get_a_data_error_naming_the_field(tmp_path, annotation, field, words):
    path = _coco(tmp_path, [{"id": 1, "image_id": 7, "iscrowd": 0, **annotation}])
    with pytest.raises(DataError) as err:
        read_coco(path, None)
    assert field in str(err.value) and words in str(err.value)


def _example_issues(**trial):
    import pathlib

    import yaml

    from kubenas.api.validation import validate_experiment

    obj = yaml.safe_load(pathlib.Path("deploy/examples/detection-shapes.yaml").read_text())
    obj["spec"]["trial"].update(trial)
    return {issue.path: issue.message for issue in validate_experiment(obj)}


def test_validate_passes_the_example_and_names_what_detection_refuses():
    assert _example_issues() == {}
    refused = _example_issues(export={"formats": ["torchscript", "onnx"]})
    assert "onnx is not available for object-detection" in refused["spec.trial.export.formats[1]"]
    assert "spec.trial.dataset.name" in _example_issues(dataset={"name": "npz", "path": "x.npz"})


def test_the_leaderboard_shows_the_detectors_test_map():
    from kubenas.local.summary import leaderboard_columns, leaderboard_rows

    row = {"name": "t-0", "status": "Succeeded", "reward": 0.31, "architecture": CHAIN,
           "metrics": {"mAP": 0.31, "mAP50": 0.6, "testMAP": 0.27, "parameters": 72547}}
    (board,) = leaderboard_rows([row], "maximize")
    shown = dict(zip(leaderboard_columns(), board))
    assert shown["reward"] == "0.3100" and shown["test"] == "0.2700"
