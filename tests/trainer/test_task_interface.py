"""The task interface (kubenas_trainer.tasks.interface): a new task plugs into the unchanged loop.

A toy regression task (MSE loss, a minimised metric, batches the loop never looks
inside, its own head and export signature) is registered and trained through
``run_trial``; the classification tasks are driven through the interface only; and
what the registry says of metrics agrees with the contract's table.
"""
from __future__ import annotations

import ast
import contextlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import kubenas_trainer
from kubenas.contract import METRIC_GOALS, TASKS
from kubenas_trainer import tasks as tasks_module
from kubenas_trainer.training import loop as train_module
from kubenas_trainer.training.export import load_metadata, load_onnx_metadata
from kubenas_trainer.tasks.interface import ExportSpec, Loaders, Step, TensorSpec, TrialTask
from kubenas_trainer.models import build_model
from kubenas_trainer.data.synthetic import spoken_words, token_sequences
from kubenas_trainer.tasks import TASK_REGISTRY, Task
from kubenas_trainer.training.loop import run_trial

CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1}]}
TEMPORAL = {"type": "chain", "layers": [{"op": "tconv", "filters": 8, "kernel": 3, "stride": 1, "dilation": 1}]}
FAST = {"epochs": 4, "batchSize": 16, "numThreads": 1, "measureLatency": False, "optimizer": "adam",
        "learningRate": 0.01}


# ----------------------------------------------------------------------------- a toy task


class DictBatches:
    """Batches as dicts: the loop must pass them to the task untouched."""

    def __init__(self, x, y, batch_size, generator=None):
        self.x, self.y, self.batch_size, self.generator = x, y, batch_size, generator

    def __len__(self):
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.y), generator=self.generator) if self.generator is not None \
            else torch.arange(len(self.y))
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield {"inputs": self.x[idx], "targets": self.y[idx]}


class RegressionHead(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))


class ToyRegression(TrialTask):
    """y = the mean brightness of a 1 x 6 x 6 image, times 3."""

    metrics = {"mse": "minimize", "mae": "minimize"}
    test_metrics = ("mse",)

    def __init__(self, spec: dict, seed: int):
        rng = np.random.RandomState(seed)
        x = torch.from_numpy(rng.rand(spec.get("limit", 160), 1, 6, 6).astype(np.float32))
        y = 3 * x.mean(dim=(1, 2, 3))
        self.parts = {"train": (x[:96], y[:96]), "val": (x[96:128], y[96:128]), "test": (x[128:], y[128:])}
        self.built_head = False

    data_name = "toy"
    split = {"validation": "random", "seed": 0}
    input_shape = (1, 6, 6)

    def example(self, n=1, device=None):
        return torch.rand(n, *self.input_shape, device=device)

    def loaders(self, training, device, generator, memory_format):
        return Loaders(DictBatches(*self.parts["train"], training["batchSize"], generator),
                       DictBatches(*self.parts["val"], 64), DictBatches(*self.parts["test"], 64))

    def build_model(self, architecture, builder=None):
        def head(channels):
            self.built_head = True
            return RegressionHead(channels)

        return build_model(architecture, self.input_shape, head=head)

    def train_step(self, model, batch, training):
        out = model(batch["inputs"]).squeeze(1)
        loss = nn.functional.mse_loss(out, batch["targets"])
        return Step(loss, len(batch["targets"]), {"trainMae": (out.detach() - batch["targets"]).abs().sum()})

    def evaluate(self, model, loader, autocast=contextlib.nullcontext, check=None):
        se = ae = n = 0.0
        with torch.inference_mode():
            for batch in loader:
                err = model(batch["inputs"]).squeeze(1) - batch["targets"]
                se, ae, n = se + float((err ** 2).sum()), ae + float(err.abs().sum()), n + len(err)
        return {"mse": se / n, "mae": ae / n}

    def saved_fields(self):
        return {"inputShape": list(self.input_shape)}

    def metadata_fields(self):
        return {"dataset": "toy", "split": self.split}

    def export_spec(self):
        return ExportSpec(inputs=(TensorSpec("images", "FP32", (-1, 1, 6, 6)),),
                          outputs=(TensorSpec("value", "FP32", (-1, 1)),), input_shape=self.input_shape,
                          mean=[0.0], std=[1.0], example=self.example(2))


@pytest.fixture
def toy(monkeypatch):
    """The toy task registered under a new name: one registry entry, no loop edit."""
    made = []

    def load(spec, seed, device):
        made.append(ToyRegression(spec, seed))
        return made[-1]

    monkeypatch.setitem(TASK_REGISTRY, "toy-regression", Task("toy-regression", ("toy",), ("name", "limit"), load,
                                                                ToyRegression.metrics))
    return made


def toy_trial(**training):
    return {"architecture": CHAIN, "task": "toy-regression", "dataset": {"name": "toy"},
            "objective": {"metric": "mse"}, "training": {**FAST, **training}}


def test_a_registered_regression_task_trains_with_the_unchanged_loop(toy, tmp_path):
    result = run_trial(toy_trial(), model_path=tmp_path / "model.pt", weights_path=tmp_path / "w.pt")
    assert result["status"] == "Succeeded", result["message"]
    assert toy[0].built_head  # the task's head ends the searched body
    history = result["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert {"mse", "mae", "trainLoss", "trainMae", "learningRate"} <= set(history[0])
    assert "accuracy" not in history[0] and "testAccuracy" not in result["metrics"]
    assert history[-1]["mse"] < history[0]["mse"]  # it learns
    assert result["reward"] == history[-1]["mse"] == result["metrics"]["mse"]
    assert result["metrics"]["testMse"] >= 0 and result["metrics"]["macs"] > 0
    meta = load_metadata(tmp_path / "model.pt")
    assert meta["objective"] == {"metric": "mse", "goal": "minimize"}  # the goal is the task's
    assert meta["signature"]["outputs"] == [{"name": "value", "datatype": "FP32", "shape": [-1, 1]}]
    saved = torch.load(tmp_path / "w.pt", weights_only=True)
    assert saved["inputShape"] == [1, 6, 6] and "head.fc.weight" in saved["stateDict"]


def test_the_toy_task_exports_onnx_under_its_signature_names(toy, tmp_path):
    pytest.importorskip("onnxruntime")
    result = run_trial({**toy_trial(epochs=1), "export": {"formats": ["onnx"]}}, model_path=tmp_path / "model.pt")
    assert result["status"] == "Succeeded", result["message"]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["value"]
    assert load_onnx_metadata(tmp_path / "model.onnx")["signature"]["inputs"][0]["name"] == "images"


def test_the_loop_resumes_and_stops_a_new_task_as_any_other(toy, tmp_path):
    straight = run_trial(toy_trial())
    first = run_trial({**toy_trial(epochs=2, scheduleEpochs=4), "checkpoint": {"save": True}},
                      checkpoint_path=tmp_path / "c.pt")
    resumed = run_trial({**toy_trial(scheduleEpochs=4), "checkpoint": {"resumeFrom": str(tmp_path / "c.pt")}})
    assert first["status"] == resumed["status"] == "Succeeded", (first["message"], resumed["message"])

    def curve(r):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in r["history"]]

    assert curve(resumed) == curve(straight) and resumed["metrics"]["resumedFromEpoch"] == 2
    stopped = run_trial(toy_trial(), on_epoch=lambda record: "stop" if record["epoch"] == 2 else None)
    assert stopped["status"] == "EarlyStopped" and stopped["reward"] == stopped["history"][-1]["mse"]


def test_an_objective_metric_the_task_does_not_measure_is_refused(toy):
    result = run_trial({**toy_trial(), "objective": {"metric": "accuracy"}})
    assert result["reason"] == "InvalidTrial" and "objective.metric: 'accuracy' is not one of mse, mae" in \
        result["message"]


# ----------------------------------------------------------------------------- the loop knows no task


def _interface_names() -> set[str]:
    return {name for name in [*dir(TrialTask), *TrialTask.__annotations__] if not name.startswith("_")}


class Spy:
    """A task seen through the interface only: records every attribute the loop reads."""

    def __init__(self, task, seen: set):
        self._task, self._seen = task, seen

    def __getattr__(self, name):
        self._seen.add(name)
        return getattr(self._task, name)


@pytest.mark.parametrize("task", ["image-classification", "audio-classification", "sequence-classification"])
def test_the_loop_reads_only_the_task_interface(task, monkeypatch, tmp_path):
    datasets = {"image-classification": {"name": "digits", "limit": 80}}
    if task == "audio-classification":
        np.savez(tmp_path / "d.npz", **spoken_words(train_speakers=4, test_speakers=2, per_word=2))
        datasets[task] = {"name": "npz", "path": str(tmp_path / "d.npz"),
                          "frontEnd": {"sampleRate": 8000, "clipSeconds": 0.25, "nFft": 128, "hopLength": 64,
                                       "nMels": 16}}
    if task == "sequence-classification":
        np.savez(tmp_path / "d.npz", **token_sequences(train_users=3, test_users=2, per_class=3))
        datasets[task] = {"name": "npz", "path": str(tmp_path / "d.npz")}
    seen: set = set()
    real = tasks_module.open_task
    monkeypatch.setattr(train_module, "open_task", lambda *a: Spy(real(*a), seen))
    result = run_trial({"architecture": CHAIN if task == "image-classification" else TEMPORAL, "task": task,
                        "dataset": datasets[task], "training": {**FAST, "epochs": 1}}, model_path=tmp_path / "m.pt")
    assert result["status"] == "Succeeded", result["message"]
    assert seen and seen <= _interface_names(), sorted(seen - _interface_names())


def test_the_training_loop_imports_nothing_task_specific():
    """kubenas_trainer.training (loop, checkpoint, measure, export) reaches tasks only through
    the registry and the interface: no dataset reader, model builder or task module."""
    allowed_tasks = {"kubenas_trainer.tasks", "kubenas_trainer.tasks.interface"}
    for path in sorted((Path(kubenas_trainer.__file__).parent / "training").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        specific = {m for m in imported if m.startswith("kubenas_trainer.data")
                    or (m.startswith("kubenas_trainer.models") and m != "kubenas_trainer.models.ops")  # ops: MACs
                    or (m.startswith("kubenas_trainer.tasks") and m not in allowed_tasks)}
        assert not specific, (path.name, specific)
        if path.name == "loop.py":
            names = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            assert not [n for n in names if any(t in n for t in TASKS)]  # no task named in the loop


# ----------------------------------------------------------------------------- one source for metric goals


def test_every_task_metric_has_the_contracts_goal():
    """The registry's goals are what the trainer defaults to; the control plane's
    validation reads kubenas.contract.METRIC_GOALS: they must agree."""
    for name, entry in TASK_REGISTRY.items():
        assert entry.metrics, name
        for metric, goal in entry.metrics.items():
            assert METRIC_GOALS.get(metric) == goal, (name, metric)


def test_a_registry_entry_refuses_a_metric_without_a_goal():
    with pytest.raises(ValueError, match="needs a goal"):
        Task("x", ("toy",), ("name",), lambda *a: None, {"mse": "lower"})


# ----------------------------------------------------------------------------- the exported signature


def test_the_exported_signature_is_what_kubenas_serve_reads(tmp_path):
    from kubenas.serving.signature import input_of

    result = run_trial({"architecture": CHAIN, "dataset": {"name": "digits", "limit": 60},
                        "training": {**FAST, "epochs": 1}}, model_path=tmp_path / "m.pt")
    assert result["status"] == "Succeeded", result["message"]
    meta = load_metadata(tmp_path / "m.pt")
    assert meta["signature"]["inputs"] == [input_of(meta).as_v2()]
    assert meta["signature"]["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(str(tmp_path / "m.pt"))
    assert list(model(torch.rand(3, 1, 8, 8)).shape) == [3, 10]
