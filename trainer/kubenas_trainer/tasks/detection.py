"""Object detection on the task interface (``interface.TrialTask``): torchvision's FCOS
around the searched backbone.

FCOS (one-stage, anchor-free) because a searched backbone's strides are whatever the
genotype makes them: FCOS puts one point per feature-map location and assigns objects
to levels by size ranges tied to each level's stride, so it needs no anchor shapes
tuned to the backbone (RetinaNet's and SSDlite's anchors would be). Its loss (focal
classification, GIoU regression, centreness) and its post-processing (per-level top-k,
batched NMS) are torchvision's.

Backbone: the searched body (``models.build_model`` with no head) is cut into its
blocks (chain layers; cell space: stem, cells and reductions, final BN-ReLU); the
output of the last block at each resolution is a feature level, and the deepest
``MAX_LEVELS`` of them feed a feature pyramid (``torchvision.ops.FeaturePyramidNetwork``)
of ``FPN_CHANNELS`` channels. A backbone that never downsamples gives one level (a
single-level head). A user's ``model.builder`` network is the backbone as is: one level
from a ``N x C x h x w`` output.

A batch is ``(images, targets, ids)``: float images in [0, 1] ``N x 3 x H x W``, per
image ``{"boxes": K x 4 (x1, y1, x2, y2), "labels": K}``. The model normalises itself
(FCOS's transform holds the training split's channel mean and std; images are kept at
their size, ``fixed_size``). Metrics: COCO mAP@[.5:.95] (``mAP``, the default
objective) and mAP@.5 (``mAP50``) from pycocotools; ``mAP`` is also measured on the test
split. The exported model (``ExportedDetector``) takes images and returns ``boxes``
``N x D x 4``, ``scores`` ``N x D``, ``labels`` ``N x D`` (padded with 0 / 0 / -1) and
``counts`` ``N`` (the detections kept per image, best first).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from kubenas.contract.settings import ONNX_REFUSED
from kubenas.contract.tasks import TASK_METRIC_GOALS

from kubenas_trainer.tasks.coco import CocoData, evaluate_coco, ground_truth
from kubenas_trainer.tasks.interface import ExportSpec, Loaders, Step, TensorSpec, TrialTask, evaluation_pass
from kubenas_trainer.models import CellNet, ChainNet, build_model

DETECTION_METRICS = TASK_METRIC_GOALS["object-detection"]
FPN_CHANNELS = 32  # small: a searched backbone trains in minutes on a CPU; the head is not searched
HEAD_CONVS = 2  # conv layers in each FCOS branch (torchvision's default, 4, is for 800-pixel COCO images)
MAX_LEVELS = 3
# FCOS's loss terms, as running training metrics
LOSS_NAMES = {"classification": "trainClassLoss", "bbox_regression": "trainBoxLoss",
              "bbox_ctrness": "trainCenternessLoss"}
DETECTIONS_PER_IMAGE = 100
ONNX_REFUSAL = ONNX_REFUSED["object-detection"]


class FeatureLevels(nn.Module):
    """The searched body's blocks in order; ``forward`` returns the outputs of the blocks
    in ``taps`` (one per feature level, finest first), keyed by their index."""

    def __init__(self, blocks: List[nn.Module], taps: List[int]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.taps: List[int] = list(taps)

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        out: Dict[str, Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out[str(i)] = x
        return out


class SingleLevel(nn.Module):
    """A network giving one ``N x C x h x w`` feature map, as one feature level."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return {"0": self.net(x)}


class PyramidBackbone(nn.Module):
    """Feature levels -> a feature pyramid of ``out_channels`` (what FCOS takes as its backbone)."""

    def __init__(self, levels: nn.Module, in_channels: List[int], out_channels: int):
        super().__init__()
        from torchvision.ops import FeaturePyramidNetwork

        self.levels = levels
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        return self.fpn(self.levels(x))


def _blocks(body: nn.Module) -> List[nn.Module]:
    if isinstance(body, ChainNet):
        return list(body.features)
    if isinstance(body, CellNet):
        return [body.stem, *body.cells, body.last_act]
    raise TypeError(f"no feature levels in a {type(body).__name__}")


def _levels(levels: nn.Module, input_shape: tuple[int, ...]) -> tuple[List[str], List[int], List[int]]:
    """(names, channels, strides) of the levels ``levels`` gives on an input of ``input_shape``."""
    was = levels.training
    levels.eval()
    with torch.no_grad():
        feats = levels(torch.zeros(1, *input_shape))
    levels.train(was)
    names, channels, strides = [], [], []
    for name, f in feats.items():
        if f.dim() != 4 or min(f.shape[-2:]) < 1:
            raise ValueError(f"the backbone's feature level {name} has shape {list(f.shape)}, not N x C x h x w")
        names.append(name)
        channels.append(int(f.shape[1]))
        strides.append(max(1, int(round(input_shape[1] / f.shape[-2]))))
    return names, channels, strides


def searched_levels(body: nn.Module, input_shape: tuple[int, ...]) -> FeatureLevels:
    """The body's last block at each resolution, the deepest ``MAX_LEVELS`` of them."""
    blocks = _blocks(body)
    sizes = []
    x = torch.zeros(1, *input_shape)
    was = body.training
    body.eval()
    with torch.no_grad():
        for block in blocks:
            x = block(x)
            sizes.append(tuple(x.shape[-2:]) if x.dim() == 4 else None)
    body.train(was)
    taps = [i for i in range(len(blocks)) if sizes[i] is not None and (i + 1 == len(blocks) or sizes[i + 1] != sizes[i])]
    if not taps:
        raise ValueError("the searched network gives no N x C x h x w feature map to detect on")
    return FeatureLevels(blocks, taps[-MAX_LEVELS:])


class Detector(nn.Module):
    """FCOS over images ``N x 3 x H x W`` in [0, 1]: with ``targets`` (training) the loss
    dict, else torchvision's detections (a list of ``{"boxes", "scores", "labels"}``)."""

    def __init__(self, levels: nn.Module, input_shape: tuple[int, ...], num_classes: int,
                 mean: List[float], std: List[float]):
        super().__init__()
        from torchvision.models.detection import FCOS
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.fcos import FCOSHead

        _, channels, strides = _levels(levels, input_shape)
        backbone = PyramidBackbone(levels, channels, FPN_CHANNELS)
        # FCOS: one point per location, its size the level's stride (torchvision's docs)
        anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
        h, w = int(input_shape[1]), int(input_shape[2])
        self.fcos = FCOS(backbone, num_classes, min_size=min(h, w), max_size=max(h, w), image_mean=list(mean),
                         image_std=list(std), anchor_generator=anchors, fixed_size=(h, w),
                         head=FCOSHead(FPN_CHANNELS, 1, num_classes, num_convs=HEAD_CONVS),
                         detections_per_img=DETECTIONS_PER_IMAGE)
        self.strides = strides

    def forward(self, images: Tensor, targets: Optional[List[Dict[str, Tensor]]] = None):
        return self.fcos(list(images.unbind(0)), targets)


class ExportedDetector(nn.Module):
    """The exported detector: images ``N x 3 x H x W`` (float, [0, 1], any size: resized
    to the training size and boxes mapped back) -> ``(boxes N x D x 4, scores N x D,
    labels N x D, counts N)``, padded to the most detections of the batch."""

    def __init__(self, fcos: nn.Module):
        super().__init__()
        self.fcos = fcos

    @torch.jit.unused
    def _eager(self, images: List[Tensor]) -> List[Dict[str, Tensor]]:
        return self.fcos(images)

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        batch = list(images.unbind(0))
        if torch.jit.is_scripting():
            detections = self.fcos(batch)[1]  # scripted detection models return (losses, detections)
        else:
            detections = self._eager(batch)
        n = len(detections)
        most = 0
        for d in detections:
            most = max(most, int(d["boxes"].shape[0]))
        boxes = torch.zeros(n, most, 4, dtype=images.dtype, device=images.device)
        scores = torch.zeros(n, most, dtype=images.dtype, device=images.device)
        labels = torch.full((n, most), -1, dtype=torch.int64, device=images.device)
        counts = torch.zeros(n, dtype=torch.int64, device=images.device)
        for i, d in enumerate(detections):
            k = int(d["boxes"].shape[0])
            boxes[i, :k] = d["boxes"]
            scores[i, :k] = d["scores"]
            labels[i, :k] = d["labels"]
            counts[i] = k
        return boxes, scores, labels, counts


class DetectionLoader:
    """Batches ``(images, targets, ids)`` of a split on ``device``; shuffled with ``generator``."""

    def __init__(self, images: torch.Tensor, boxes: list, labels: list, batch_size: int, device: torch.device,
                 shuffle: bool = False, generator: torch.Generator | None = None, max_batches: int | None = None):
        self.images, self.boxes, self.labels = images, boxes, labels
        self.batch_size, self.device, self.shuffle, self.generator = batch_size, device, shuffle, generator
        self.n = int(images.shape[0])
        self.max_batches = max_batches

    def __len__(self) -> int:
        batches = -(-self.n // self.batch_size)
        return min(batches, self.max_batches) if self.max_batches else batches

    def __iter__(self):
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else torch.arange(self.n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.images[idx].to(self.device, non_blocking=True).float().div_(255)
            targets = [{"boxes": self.boxes[i].to(self.device), "labels": self.labels[i].to(self.device)}
                       for i in idx.tolist()]
            yield images, targets, idx.tolist()


class DetectionTask(TrialTask):
    """Object detection of a ``coco`` dataset (``coco.py``), split into train / validation
    by the dataset's ``validation`` rule (by image)."""

    metrics = DETECTION_METRICS
    test_metrics = ("mAP",)

    def __init__(self, data: CocoData, train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
                 info: dict, name: str = "coco"):
        self.data, self.data_name, self.split = data, name, info
        self.classes = list(data.classes)
        tr, te = data.train, data.test

        def part(split, idx):
            idx = np.asarray(idx, dtype=np.int64)
            return (torch.from_numpy(np.ascontiguousarray(split.images[idx])),
                    [torch.from_numpy(split.boxes[i]) for i in idx], [torch.from_numpy(split.labels[i]) for i in idx],
                    [split.crowd[i] for i in idx])

        self.train, self.val, self.test = part(tr, train_idx), part(tr, val_idx), part(te, test_idx)
        # crowd boxes are not trained on (torchvision's convention); evaluation ignores them
        self.train = (self.train[0], [b[~torch.from_numpy(c)] for b, c in zip(self.train[1], self.train[3])],
                      [l[~torch.from_numpy(c)] for l, c in zip(self.train[2], self.train[3])], self.train[3])
        x = self.train[0].double() / 255
        self.mean = [float(v) for v in x.mean(dim=(0, 2, 3))]
        self.std = [max(float(v), 1e-3) for v in x.std(dim=(0, 2, 3))]
        size = tuple(int(v) for v in tr.images.shape[-2:])
        self._gt = {}
        for key, split in (("val", self.val), ("test", self.test)):
            self._gt[key] = ground_truth(split[1], split[2], split[3], size, len(self.classes))

    # ------------------------------------------------------------------ data
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(v) for v in self.train[0].shape[1:])

    def example(self, n: int = 1, device=None) -> torch.Tensor:
        return torch.rand(n, *self.input_shape, device=device)

    def loaders(self, training: dict, device: torch.device, generator: torch.Generator,
                memory_format: torch.memory_format) -> Loaders:
        images, boxes, labels, _ = self.train
        train = DetectionLoader(images, boxes, labels, training["batchSize"], device, shuffle=True,
                                generator=generator, max_batches=training["maxTrainBatches"])
        val = DetectionLoader(*self.val[:3], training["evalBatchSize"], device)
        val.gt = self._gt["val"]
        test = DetectionLoader(*self.test[:3], training["evalBatchSize"], device)
        test.gt = self._gt["test"]
        return Loaders(train, val, test)

    # ------------------------------------------------------------------ model
    def build_model(self, architecture, builder: str | None = None) -> nn.Module:
        shape = self.input_shape
        if builder:  # the user's network is the backbone, one level
            from kubenas_trainer.models.user_code import build_user_model

            levels: nn.Module = SingleLevel(build_user_model(builder, architecture, shape, len(self.classes)))
        else:
            body = build_model(architecture, shape, head=lambda channels: nn.Identity())
            levels = searched_levels(body, shape)
        return Detector(levels, shape, len(self.classes), self.mean, self.std)

    # ------------------------------------------------------------------ loss and metrics
    def train_step(self, model: nn.Module, batch, training: dict) -> Step:
        images, targets, _ = batch
        losses = model(images, targets)
        loss = sum(losses.values())
        n = int(images.shape[0])
        return Step(loss, n, {LOSS_NAMES.get(k, k): v.detach() * n for k, v in losses.items()})

    def evaluate(self, model: nn.Module, loader: DetectionLoader, autocast=contextlib.nullcontext,
                 check: Callable[[], None] | None = None) -> dict[str, float]:
        """COCO mAP@[.5:.95] and mAP@.5 of ``model`` (in eval mode) over ``loader``."""
        results = []

        def take(batch, detections) -> None:
            for image_id, d in zip(batch[2], detections):
                boxes = d["boxes"].float().cpu()
                boxes[:, 2:] -= boxes[:, :2]
                for box, score, label in zip(boxes.tolist(), d["scores"].float().cpu().tolist(),
                                             d["labels"].cpu().tolist()):
                    results.append({"image_id": image_id, "category_id": int(label), "bbox": box,
                                    "score": float(score)})

        evaluation_pass(model, loader, lambda batch: batch[0], take, autocast, check)
        return evaluate_coco(loader.gt, results)

    # ------------------------------------------------------------------ saving
    def saved_fields(self) -> dict:
        return {"inputShape": list(self.input_shape), "numClasses": len(self.classes), "classes": self.classes,
                "categoryIds": list(self.data.category_ids), "mean": self.mean, "std": self.std}

    def metadata_fields(self) -> dict:
        return {"classes": self.classes, "numClasses": len(self.classes), "categoryIds": list(self.data.category_ids),
                "dataset": self.data_name, "split": self.split, "detector": "fcos",
                "labels": "labels index classes and categoryIds (COCO category id); -1 pads"}

    def export_spec(self) -> ExportSpec:
        return ExportSpec(
            inputs=(TensorSpec("images", "FP32", (-1, 3, -1, -1)),),
            outputs=(TensorSpec("boxes", "FP32", (-1, -1, 4)), TensorSpec("scores", "FP32", (-1, -1)),
                     TensorSpec("labels", "INT64", (-1, -1)), TensorSpec("counts", "INT64", (-1,))),
            input_shape=self.input_shape, mean=self.mean, std=self.std,
            input_doc=("float32 N x 3 x H x W RGB images, pixel values scaled to [0, 1], any H x W (resized to "
                       f"{self.input_shape[1]} x {self.input_shape[2]} inside, boxes mapped back); returns boxes "
                       "N x D x 4 (x1, y1, x2, y2 pixels), scores N x D, labels N x D (-1 pads) and counts N"),
            example=self.example(2), normalise=False,  # the detector normalises (and resizes) inside
            wrap=lambda model: ExportedDetector(model.fcos), onnx_refusal=ONNX_REFUSAL)


def load_detection(spec: dict, seed: int, device: torch.device) -> DetectionTask:
    """The ``coco`` dataset of a checked spec, split (validation from ``train.json``)."""
    from kubenas_trainer.tasks.coco import read_coco
    from kubenas_trainer.data import DIGITS_TEST_SEED
    from kubenas_trainer.errors import DataError
    from kubenas_trainer.data.splits import split_train_validation, validation_rule

    data = read_coco(spec["path"], spec.get("imageSize"))
    tr = data.train
    first = np.array([int(l[0]) if len(l) else -1 for l in tr.labels])  # stratify by each image's first object
    root = Path(os.path.expanduser(str(spec["path"])))
    train_idx, val_idx = split_train_validation(first, None, tr.names, spec, seed, root)
    test_idx = np.arange(len(data.test.names))
    limit = spec.get("limit")
    if limit:
        train_idx, val_idx = train_idx[:limit], val_idx[:limit]
        test_idx = np.sort(np.random.RandomState(DIGITS_TEST_SEED).permutation(len(test_idx))[:limit])
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError("dataset coco: too few images for a train/validation split")
    if not any(len(tr.labels[i]) for i in val_idx):
        raise DataError("dataset coco: the validation images hold no object (raise dataset.validationFraction)")
    info = {"seed": seed, "validationFraction": spec["validationFraction"], "limit": limit,
            "validation": validation_rule(spec, None), "trainImages": int(len(train_idx)),
            "validationImages": int(len(val_idx)), "testImages": int(len(test_idx))}
    return DetectionTask(data, train_idx, val_idx, test_idx, info, spec["name"])
