"""Classification on the task interface (``tasks.TrialTask``): image, audio and sequence
classification are this one task with different data, stems and front ends.

A batch is ``(x, y)``: model inputs (normalised on the device by ``BatchLoader``) and
int64 class indices. The head is global average pooling -> linear over the searched
body (``models.ClassifierHead``); the loss is cross-entropy (with the trial's
``labelSmoothing``); the validation metrics are accuracy (maximised) and mean
cross-entropy (minimised), and accuracy is also measured on the test split. The
exported model returns ``logits`` ``N x K``.
"""
from __future__ import annotations

import contextlib
from dataclasses import KW_ONLY, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from kubenas.contract.tasks import TASK_METRIC_GOALS

from kubenas_trainer.data import Dataset
from kubenas_trainer.data.loader import BatchLoader
from kubenas_trainer.models import ClassifierHead, StemmedNet, build_model
from kubenas_trainer.tasks.interface import ExportSpec, Loaders, Step, TensorSpec, TrialTask, evaluation_pass

IMAGE_INPUT_DOC = "float32 N x C x H x W, pixel values scaled to [0, 1]; normalisation is built in"
CLASSIFICATION_METRICS = TASK_METRIC_GOALS["image-classification"]  # the same for audio and sequences


def _no_stem() -> None:
    return None


def _no_transform(generator: torch.Generator) -> None:
    return None


@dataclass(eq=False)
class ClassificationTask(TrialTask):
    """One label per example, from in-memory splits (``data.Dataset``).

    ``stem()``: a trainable module before the searched body (the token embedding), or
    None; ``train_transform(generator)``: the per-batch training transform (audio
    augmentation), or None; ``front``: the fixed module the exported model starts with
    (what turns a waveform or ``N x T x F`` floats into the network's input);
    ``input_doc`` / ``export_example`` / ``export_input``: what the exported model takes
    (its words, a batch of it, its signature: images of the dataset's shape by default);
    ``variable_length``: its dimension 1 is free; ``metadata``: what the exported model's
    metadata adds for this kind of data.
    """

    metrics = CLASSIFICATION_METRICS
    test_metrics = ("accuracy",)

    dataset: Dataset
    _: KW_ONLY
    stem: Callable[[], nn.Module | None] = _no_stem
    train_transform: Callable[[torch.Generator], Callable | None] = _no_transform
    front: nn.Module | None = None
    input_doc: str | None = None
    export_example: Callable[[int], torch.Tensor] | None = None
    export_input: TensorSpec | None = None
    variable_length: bool = False
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.export_input is None:
            self.export_input = TensorSpec("images", "FP32", (-1, *self.dataset.input_shape))
        self.metadata = dict(self.metadata or {})

    # ------------------------------------------------------------------ data
    @property
    def data_name(self) -> str:
        return self.dataset.name

    @property
    def split(self) -> dict:
        return self.dataset.info

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.dataset.input_shape

    def example(self, n: int = 1, device=None) -> torch.Tensor:
        return self.dataset.example(n, device)

    def loaders(self, training: dict, device: torch.device, generator: torch.Generator,
                memory_format: torch.memory_format) -> Loaders:
        data = self.dataset
        train = BatchLoader(data.train, data, training["batchSize"], device, shuffle=True, generator=generator,
                            memory_format=memory_format, max_batches=training["maxTrainBatches"],
                            transform=self.train_transform(generator))
        val = BatchLoader(data.val, data, training["evalBatchSize"], device, shuffle=False,
                          memory_format=memory_format)
        test = BatchLoader(data.test, data, training["evalBatchSize"], device, shuffle=False,
                           memory_format=memory_format)
        return Loaders(train, val, test)

    # ------------------------------------------------------------------ model
    def build_model(self, architecture, builder: str | None = None) -> nn.Module:
        data = self.dataset
        stem = self.stem()
        if stem is None:
            body_shape = data.input_shape
        else:
            with torch.no_grad():
                body_shape = tuple(stem(data.example(1)).shape[1:])
        if builder:  # the user's model (user_code.py) brings its own head
            from kubenas_trainer.models.user_code import build_user_model

            body = build_user_model(builder, architecture, body_shape, data.num_classes)
        else:
            body = build_model(architecture, body_shape, data.num_classes,
                               head=lambda channels: ClassifierHead(channels, data.num_classes))
        return body if stem is None else StemmedNet(stem, body)

    def build_supernet(self, space: dict, user_supernet: str | None = None) -> nn.Module:
        """The supernet of the space (cell or chain) as the body, with this task's head
        (``supernet.build_supernet``), or the user's ``model.supernet`` (which brings its
        own head, as ``model.builder`` does); ``select`` is called on the returned module."""
        if self.stem() is not None:
            raise NotImplementedError("a one-shot supernet under a trainable stem (sequence data) is not built yet")
        data = self.dataset
        if user_supernet:
            from kubenas_trainer.models.user_code import build_user_supernet

            return build_user_supernet(user_supernet, space, data.input_shape, data.num_classes)
        from kubenas_trainer.models.supernet import build_supernet

        return build_supernet(space, data.input_shape[0], lambda channels: ClassifierHead(channels, data.num_classes))

    # ------------------------------------------------------------------ loss and metrics
    def train_step(self, model: nn.Module, batch, training: dict) -> Step:
        xb, yb = batch
        out = model(xb)
        loss = F.cross_entropy(out, yb, label_smoothing=training["labelSmoothing"])
        return Step(loss, int(yb.shape[0]), {"trainAccuracy": (out.detach().argmax(1) == yb).sum()})

    def evaluate(self, model: nn.Module, loader: BatchLoader, autocast=contextlib.nullcontext,
                 check: Callable[[], None] | None = None) -> dict[str, float]:
        """Accuracy and mean cross-entropy of ``model`` (in eval mode) over ``loader``."""
        loss_sum = torch.zeros((), dtype=torch.float64, device=loader.device)
        correct = torch.zeros((), dtype=torch.int64, device=loader.device)

        def take(batch, out) -> None:
            nonlocal loss_sum, correct
            yb = batch[1]
            loss_sum += F.cross_entropy(out.float(), yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()

        evaluation_pass(model, loader, lambda batch: batch[0], take, autocast, check)
        n = loader.n
        return {"accuracy": correct.item() / n, "loss": loss_sum.item() / n}

    # ------------------------------------------------------------------ saving
    def saved_fields(self) -> dict:
        data = self.dataset
        return {"inputShape": list(data.input_shape), "numClasses": data.num_classes, "classes": data.classes,
                "scale": data.scale, "mean": data.mean, "std": data.std}

    def metadata_fields(self) -> dict:
        data = self.dataset
        return {"classes": data.classes, "numClasses": data.num_classes, "dataset": data.name, "split": data.info,
                **self.metadata}

    def export_spec(self) -> ExportSpec:
        data = self.dataset
        return ExportSpec(
            inputs=(self.export_input,),
            outputs=(TensorSpec("logits", "FP32", (-1, data.num_classes)),),
            input_shape=data.input_shape, mean=data.mean, std=data.std, front=self.front,
            input_doc=self.input_doc, example=self.export_example(2) if self.export_example else None,
            normalise=data.input_kind != "tokens", variable_length=self.variable_length)
