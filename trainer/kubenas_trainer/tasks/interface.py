"""The task interface: what the training loop (``training/loop.py``) knows of a task.

A ``TrialTask`` supplies the data (``loaders``: batches the loop never looks inside),
the network around the searched body (stem, body, head: ``build_model``), the loss and
the running training metrics of a batch (``train_step``), the validation metrics, each
with its goal (``metrics``, ``evaluate``), what the weights file and the exported
model's metadata record, and the exported model's signature, front end and example
inputs (``export_spec``). The loop owns epochs, the learning-rate schedule, AMP,
finiteness checks, early-stop reporting, checkpoint/resume, timeouts, cost measurement,
the reward and export, and calls only this interface. docs/architecture.md "Adding a
task" says how a new task plugs in (``tasks.TASK_REGISTRY``).
"""
from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, ClassVar, NamedTuple

import torch
from torch import nn


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the exported model's signature: its name, V2 datatype (``FP32``,
    ``INT64``, ...) and shape, -1 for a free dimension (the batch, a length)."""
    name: str
    datatype: str
    shape: tuple[int, ...]

    def as_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": [int(d) for d in self.shape]}


@dataclass
class ExportSpec:
    """What the exported model is: its signature (``inputs``/``outputs``, written to the
    metadata as ``signature``), the module around the trained network (``front``: the
    fixed front end the user's input passes first; ``normalise``: the per-channel
    normalisation of ``mean``/``std`` built in), ``example`` (a batch of the exported
    input, traced and checked on), ``input_doc`` (the input in words; None: images) and
    ``variable_length`` (dimension 1 of the input is free: checked at other lengths).
    ``wrap``: the task's module around the trained network (speech recognition: the
    network, then the greedy CTC decision per frame; object detection: the detector,
    images -> boxes, scores, labels, counts; None: the network as it is). The front end
    and the normalisation go before it, unless the task has neither (``front`` None,
    ``normalise`` False): then the wrapped network takes the user's input itself.
    ``onnx_refusal``: why the task cannot export ONNX (the ExportError when it is asked for)."""
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_shape: tuple[int, ...]
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    front: nn.Module | None = None
    input_doc: str | None = None
    example: torch.Tensor | None = None
    normalise: bool = True
    variable_length: bool = False
    wrap: Callable[[nn.Module], nn.Module] | None = None
    onnx_refusal: str | None = None

    @property
    def signature(self) -> dict:
        return {"inputs": [t.as_dict() for t in self.inputs], "outputs": [t.as_dict() for t in self.outputs]}


def evaluation_pass(model: nn.Module, loader, inputs: Callable, take: Callable, autocast=contextlib.nullcontext,
                    check: Callable[[], None] | None = None) -> None:
    """One pass of ``model`` over ``loader`` as every task's ``evaluate`` makes it: no
    autograd, ``check()`` before each batch (the trial's deadline), the forward pass of
    ``inputs(batch)`` under ``autocast()``, then ``take(batch, output)`` to accumulate the
    task's metrics (outside autocast)."""
    with torch.inference_mode():
        for batch in loader:
            if check is not None:
                check()
            with autocast():
                output = model(inputs(batch))
            take(batch, output)


class Step(NamedTuple):
    """One training batch: the loss to minimise, the number of examples it covers and
    the running training metrics (``sums``: tensors summed over the epoch and reported
    divided by the examples seen, e.g. ``trainAccuracy`` from correct predictions)."""
    loss: torch.Tensor
    count: int
    sums: dict


class Loaders(NamedTuple):
    """The batches of the three splits, on the training device. ``train`` has a ``len``
    (batches per epoch) and is iterated once per epoch, shuffled by the generator
    ``loaders`` got; ``val`` and ``test`` are what ``evaluate`` reads."""
    train: object
    val: object
    test: object


class TrialTask(ABC):
    """A task as the training loop sees it (one instance per trial, bound to its data).

    ``metrics``: the validation metrics ``evaluate`` returns, each with its goal
    (``maximize``/``minimize``, kubenas.contract.tasks.TASK_METRIC_GOALS), in the order the
    history records them; the trial's ``objective.metric`` is one of them.
    ``test_metrics``: those also measured on the test split (reported as
    ``test<Metric>``, never used for the reward). ``data_name``: the dataset's name, for
    messages; ``split``: how the data was split (the result's ``split``, docs/tasks.md).
    """

    metrics: ClassVar[dict[str, str]]
    test_metrics: ClassVar[tuple[str, ...]] = ()
    data_name: str
    split: dict

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """One example as the network takes it (the metadata's ``inputShape``)."""

    @abstractmethod
    def example(self, n: int = 1, device=None) -> torch.Tensor:
        """A batch of ``n`` network inputs (for MACs and latency)."""

    @abstractmethod
    def loaders(self, training: dict, device: torch.device, generator: torch.Generator,
                memory_format: torch.memory_format) -> Loaders:
        """The batches of the train, validation and test splits, on ``device``."""

    @abstractmethod
    def build_model(self, architecture, builder: str | None = None) -> nn.Module:
        """The whole trainable network: the task's stem, the searched body
        (``architecture``, or the user's ``model.builder``) and the task's head.
        GenotypeError for a bad architecture, ValueError for data it cannot take."""

    def build_supernet(self, space: dict, user_supernet: str | None = None) -> nn.Module:
        """The whole network with a weight-sharing supernet of ``space`` (a cell or chain
        space, ``supernet.build_supernet``: ``select(architecture)`` picks the candidate
        that runs) as its body, or the user's ``model.supernet`` (``user_supernet``,
        user_code.build_user_supernet), for one-shot search. A task that cannot wrap one
        keeps this refusal."""
        raise NotImplementedError(f"{type(self).__name__}: this task has no one-shot supernet")

    @abstractmethod
    def train_step(self, model: nn.Module, batch, training: dict) -> Step:
        """Forward one training batch (inside the loop's autocast): its loss and running metrics."""

    @abstractmethod
    def evaluate(self, model: nn.Module, loader, autocast=None, check: Callable[[], None] | None = None
                 ) -> dict[str, float]:
        """``{metric: value}`` for every name of ``metrics``, of the model (already in eval
        mode) over ``loader``; ``autocast()`` wraps forward passes, ``check()`` is called
        between batches (it raises at the trial's deadline): ``evaluation_pass`` does both."""

    @abstractmethod
    def saved_fields(self) -> dict:
        """What the weights file records besides the architecture and the state dict."""

    @abstractmethod
    def metadata_fields(self) -> dict:
        """What the exported model's metadata records of the task and its data."""

    @abstractmethod
    def export_spec(self) -> ExportSpec:
        """The exported model's signature, front end and example inputs."""
