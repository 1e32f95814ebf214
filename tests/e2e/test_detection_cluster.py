"""Object detection on the real-API-server tier (docs/tasks.md "Object detection"): the
shipped example, cut to 2 trials, runs as Jobs on the node stand-in; the NASTrials keep
mAP in their status (metrics and the per-epoch history the median rule reads), the
experiment's best is the highest mAP, and the best model detects with plain
``torch.jit.load`` (plus torchvision, whose ops it calls).

The data and the exported models live under the checkout's ``runs/`` folder, which the
node stand-in's pods see."""
from __future__ import annotations

import warnings

from tests.e2e.test_cluster import every_trial_succeeds, example


def test_detection_example_searches_on_the_cluster_and_ranks_map(local_only, namespace, run_folder):
    import torch
    import torchvision  # noqa: F401 - registers torchvision::nms for the exported detector

    from kubenas_trainer.tasks.coco import read_coco, write_shapes

    data = write_shapes(run_folder / "shapes", train=48, test=12, size=48, seed=4)
    body = example("detection-shapes", "e2e-detect", data, run_folder / "models")
    body["spec"]["budget"].update(maxTrials=2, parallelTrials=2)
    body["spec"]["trial"]["training"].update(epochs=2, batchSize=8, device="cpu")
    status, trials = every_trial_succeeds(local_only, namespace, body, 900, history=("mAP", "mAP50"))
    for st in trials.values():
        assert 0 <= st["metrics"]["mAP"] <= st["metrics"]["mAP50"] <= 1 and "testMAP" in st["metrics"]
    maps = {name: st["metrics"]["mAP"] for name, st in trials.items()}
    best = status["bestTrial"]
    assert best["reward"] == max(maps.values()) and maps[best["name"]] == best["reward"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = torch.jit.load(str(run_folder / "models" / best["name"] / "model.pt"))
        images = torch.from_numpy(read_coco(str(data), None).test.images[:2]).float() / 255
        boxes, scores, labels, counts = model(images)
    assert boxes.shape[0] == 2 and boxes.shape[-1] == 4 and counts.shape == (2,)
    assert labels.dtype == torch.int64 and scores.shape == labels.shape
