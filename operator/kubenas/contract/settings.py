"""Training settings: every name a trial's ``training`` (and ``hyperparameters``) accepts,
its kind, default and limits (docs/formats.md).

One table for the three places that check them: the trainer (``resolve_trial``), the
search space (a searched hyperparameter's values) and the CRD schema (tests/contract
compares crds/*.yaml with this table).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant", "step")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_LEARNING_RATE = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Limit:
    """A closed or half-open range; None is unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def violation(self, value: float) -> str | None:
        """What is wrong with ``value`` ("must be at least 2, got 1"), or None."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"must be {'greater than' if self.low_open else 'at least'} {self.low}, got {value}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"must be {'less than' if self.high_open else 'at most'} {self.high}, got {value}"
        return None


@dataclass(frozen=True)
class Setting:
    kind: str                    # "int" | "float" | "bool" | "choice"
    default: Any                 # None: no default (or one that depends on others)
    limit: Limit | None = None   # int and float
    choices: tuple = ()          # choice

    @property
    def nullable(self) -> bool:
        return self.default is None


SETTINGS: dict[str, Setting] = {
    "epochs": Setting("int", 8, Limit(1, 100_000)),
    # The horizon of the learning-rate schedule (and warmup) in epochs; default: epochs.
    # epochs < scheduleEpochs trains the first epochs of the longer schedule (a rung of
    # multi-fidelity search, resumable to scheduleEpochs: trial.checkpoint).
    "scheduleEpochs": Setting("int", None, Limit(1, 100_000)),
    "batchSize": Setting("int", 64, Limit(2, 1 << 20)),
    "optimizer": Setting("choice", "sgd", choices=OPTIMIZERS),
    "learningRate": Setting("float", None, Limit(0.0, low_open=True)),  # default depends on the optimizer
    "momentum": Setting("float", 0.9, Limit(0.0, 1.0, high_open=True)),
    "nesterov": Setting("bool", False),
    "weightDecay": Setting("float", 5e-4, Limit(0.0)),
    "schedule": Setting("choice", "cosine", choices=SCHEDULES),
    "warmupEpochs": Setting("float", 0.0, Limit(0.0)),
    "labelSmoothing": Setting("float", 0.0, Limit(0.0, 1.0, high_open=True)),
    "gradientClipNorm": Setting("float", 0.0, Limit(0.0)),
    "seed": Setting("int", 0, Limit(0, INT64_MAX)),
    "device": Setting("choice", "auto", choices=DEVICES),
    "mixedPrecision": Setting("bool", True),
    "channelsLast": Setting("bool", True),
    "deterministic": Setting("bool", False),
    "maxTrainBatches": Setting("int", None, Limit(1, 1 << 40)),
    "evalBatchSize": Setting("int", 512, Limit(1, 1 << 20)),
    "numThreads": Setting("int", None, Limit(1, 4096)),
    "measureLatency": Setting("bool", True),
}

# The settings a search space may search (searchSpace.hyperparameters[].name).
SEARCHABLE = ("learningRate", "momentum", "weightDecay", "labelSmoothing", "batchSize", "epochs", "optimizer")


def defaults() -> dict:
    """The settings that have a default, filled in (learningRate is chosen per trial)."""
    return {name: s.default for name, s in SETTINGS.items() if s.default is not None}


def schedule_problem(training: dict, searched_epochs=()) -> tuple[str, str] | None:
    """What is wrong with the schedule's horizon of resolved ``training`` settings (each
    filled or None), as (setting, message naming the fix), or None. ``searched_epochs``:
    the values a searched ``epochs`` hyperparameter may take. The trainer and the
    validator both call this."""
    epochs = max([training["epochs"], *searched_epochs])
    horizon = training.get("scheduleEpochs")
    if horizon is not None and horizon < epochs:
        return "scheduleEpochs", (f"{horizon} is less than epochs ({epochs}): the schedule must cover every "
                                  "epoch trained; raise scheduleEpochs to at least epochs, or remove it "
                                  "(it defaults to epochs)")
    horizon = horizon if horizon is not None else training["epochs"]
    warmup = training.get("warmupEpochs") or 0.0
    if warmup > horizon:
        return "warmupEpochs", (f"{warmup} exceeds the schedule's {horizon} epochs (scheduleEpochs, default "
                                "epochs); lower warmupEpochs")
    return None


# ------------------------------------------------------------------ trial.checkpoint

# trial.checkpoint (set per trial by a multi-fidelity search, or by hand): save writes
# checkpoint.pt (kubenas.contract.artifacts.CHECKPOINT_FILE) after the last epoch
# trained; resumeFrom (a path or an fsspec URL of one) continues training from it, or
# trains from scratch when it cannot be read (docs/formats.md).
CHECKPOINT_DEFAULTS = {"save": False, "resumeFrom": None}


def checkpoint_problem(checkpoint) -> tuple[str, str] | None:
    """What is wrong with a ``trial.checkpoint`` object, as (field below it, message
    naming the fix), or None."""
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, dict):
        return "", f"must be an object with save and resumeFrom, got {checkpoint!r}"
    unknown = sorted(set(checkpoint) - set(CHECKPOINT_DEFAULTS))
    if unknown:
        return unknown[0], f"unknown field (known: {', '.join(CHECKPOINT_DEFAULTS)})"
    if not isinstance(checkpoint.get("save", False), bool):
        return "save", f"must be true or false, got {checkpoint['save']!r}"
    resume = checkpoint.get("resumeFrom")
    if resume is not None and (not isinstance(resume, str) or not resume.strip()):
        return "resumeFrom", f"must be the path or URL of a checkpoint.pt (or null), got {resume!r}"
    return None


def resolved_checkpoint(checkpoint) -> dict:
    """``trial.checkpoint`` with defaults filled (call checkpoint_problem first)."""
    return {**CHECKPOINT_DEFAULTS, **(checkpoint or {})}


# ---------------------------------------------------------------- exported model formats

# trial.export: which files a trained model is exported as (the trainer writes model.pt
# and/or model.onnx; a local run copies the best as best_model.pt / best_model.onnx).
EXPORT_FORMATS = ("torchscript", "onnx")
EXPORT_SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}
# ONNX opset: 17 is the default, tested with onnxruntime (tests/trainer/test_onnx.py);
# the range is what torch's exporter writes and onnxruntime runs for the built-in ops.
ONNX_OPSET = Setting("int", 17, Limit(13, 20))
EXPORT_DEFAULTS = {"formats": ["torchscript"], "opset": ONNX_OPSET.default}


# ONNX has STFT (the audio task's log-mel front end, inside its exported model) from opset 17.
ONNX_STFT_OPSET = 17
ONNX_NEEDS_STFT = ("audio-classification",)


# Tasks whose models torch's ONNX exporter cannot write, and why (the error names it).
ONNX_REFUSED = {
    "object-detection": ("onnx is not available for object-detection: torchvision's FCOS post-processing "
                         "(per-image top-k over a data-dependent number of candidates, batched NMS, the resize "
                         "transform) does not export to ONNX with torch's exporter; use formats: [torchscript] "
                         "(the detector scripts)"),
}


def export_problem(export, task: str | None = None) -> tuple[str, str] | None:
    """What is wrong with a ``trial.export`` object (of a trial of ``task``), as (field
    below it, message naming the fix), or None. The CRD schema says as much where it
    can; the trainer and the validator both call this."""
    if export is None:
        return None
    if not isinstance(export, dict):
        return "", f"must be an object with formats and opset, got {export!r}"
    unknown = sorted(set(export) - {"formats", "opset"})
    if unknown:
        return unknown[0], "unknown field (known: formats, opset)"
    formats = export.get("formats", EXPORT_DEFAULTS["formats"])
    if not isinstance(formats, list) or not formats:
        return "formats", f"must be a non-empty list of {', '.join(EXPORT_FORMATS)}"
    for i, name in enumerate(formats):
        if name not in EXPORT_FORMATS:
            return f"formats[{i}]", f"{name!r} is not one of {', '.join(EXPORT_FORMATS)}"
    if len(set(formats)) != len(formats):
        return "formats", "lists a format twice; name each once"
    if "opset" in export:
        opset = export["opset"]
        if isinstance(opset, bool) or not isinstance(opset, int):
            return "opset", f"must be a whole number, got {opset!r}"
        problem = ONNX_OPSET.limit.violation(opset)
        if problem:
            return "opset", problem
        if "onnx" not in formats:
            return "opset", "is read only when formats lists onnx: add onnx to formats, or remove opset"
    if "onnx" in formats and task in ONNX_REFUSED:
        return f"formats[{formats.index('onnx')}]", ONNX_REFUSED[task]
    if "onnx" in formats and task in ONNX_NEEDS_STFT and export.get("opset", ONNX_OPSET.default) < ONNX_STFT_OPSET:
        return "opset", (f"{task} models carry their log-mel front end, whose STFT ONNX has from opset "
                         f"{ONNX_STFT_OPSET}: set opset {ONNX_STFT_OPSET} or more")
    return None


def resolved_export(export) -> dict:
    """``trial.export`` with defaults filled (call export_problem first)."""
    return {**EXPORT_DEFAULTS, **(export or {})}
