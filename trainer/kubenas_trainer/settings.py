"""Trial settings: defaults, validation and the hyperparameter override (docs/formats.md).

``resolve_trial(trial)`` turns a Trial object (fields may be missing) into a
``TrialConfig``, raising InvalidTrial naming the field at fault
(``training.learningRate``, ``hyperparameters.batchSize``, ...). A searched
hyperparameter overrides the training setting of the same name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidTrial

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant", "step")
DEVICES = ("auto", "cpu", "cuda")
METRICS = ("accuracy", "loss")
GOALS = ("maximize", "minimize")
TASKS = ("image-classification",)
DEFAULT_LEARNING_RATE = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}

# name -> (kind, default, constraint)
SETTINGS: dict[str, tuple[str, Any, Any]] = {
    "epochs": ("int", 8, (1, 100_000)),
    "batchSize": ("int", 64, (2, 1 << 20)),
    "optimizer": ("choice", "sgd", OPTIMIZERS),
    "learningRate": ("float", None, "positive"),  # default depends on the optimizer
    "momentum": ("float", 0.9, (0.0, 1.0)),
    "nesterov": ("bool", False, None),
    "weightDecay": ("float", 5e-4, "non-negative"),
    "schedule": ("choice", "cosine", SCHEDULES),
    "warmupEpochs": ("float", 0.0, "non-negative"),
    "labelSmoothing": ("float", 0.0, (0.0, 1.0)),
    "gradientClipNorm": ("float", 0.0, "non-negative"),
    "seed": ("int", 0, (0, 2**63 - 1)),
    "device": ("choice", "auto", DEVICES),
    "mixedPrecision": ("bool", True, None),
    "channelsLast": ("bool", True, None),
    "deterministic": ("bool", False, None),
    "maxTrainBatches": ("int", None, (1, 1 << 40)),
    "evalBatchSize": ("int", 512, (1, 1 << 20)),
    "numThreads": ("int", None, (1, 4096)),
    "measureLatency": ("bool", True, None),
}


@dataclass
class TrialConfig:
    architecture: Any
    dataset: dict
    training: dict
    metric: str = "accuracy"
    goal: str = "maximize"
    timeout_seconds: float | None = None
    name: str = ""
    hyperparameters: dict = field(default_factory=dict)


def _coerce(name: str, where: str, value: Any) -> Any:
    kind, _, constraint = SETTINGS[name]
    path = f"{where}.{name}"
    if value is None:
        if SETTINGS[name][1] is None:
            return None
        raise InvalidTrial(f"{path}: must not be null")
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidTrial(f"{path}: must be true or false, got {value!r}")
        return value
    if kind == "choice":
        if isinstance(value, str):
            value = value.lower()
        if value not in constraint:
            raise InvalidTrial(f"{path}: {value!r} is not one of {', '.join(constraint)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTrial(f"{path}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidTrial(f"{path}: must be finite, got {value!r}")
    if kind == "int":
        if value != int(value):
            raise InvalidTrial(f"{path}: must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if constraint == "positive" and not value > 0:
        raise InvalidTrial(f"{path}: must be > 0, got {value!r}")
    if constraint == "non-negative" and not value >= 0:
        raise InvalidTrial(f"{path}: must be >= 0, got {value!r}")
    if isinstance(constraint, tuple):
        low, high = constraint
        ok = low <= value <= high if kind == "int" else low <= value < high
        if not ok:
            bound = f"<= {high}" if kind == "int" else f"< {high}"
            raise InvalidTrial(f"{path}: must be >= {low} and {bound}, got {value!r}")
    return value


def _object(trial: dict, key: str) -> dict:
    value = trial.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidTrial(f"{key}: must be an object, got {value!r}")
    return value


def resolve_trial(trial: Any) -> TrialConfig:
    """Validate a Trial object and fill the documented defaults."""
    if not isinstance(trial, dict):
        raise InvalidTrial(f"trial: must be an object, got {type(trial).__name__}")
    # Other top-level fields (the NASTrial spec may carry more) are ignored; the
    # settings objects below are strict, so a typo never silently trains a default.
    if "architecture" not in trial:
        raise InvalidTrial("architecture: required")
    task = trial.get("task", "image-classification")
    if task not in TASKS:
        raise InvalidTrial(f"task: {task!r} is not supported (supported: {', '.join(TASKS)})")

    resolved: dict[str, Any] = {}
    for where in ("training", "hyperparameters"):
        for name, value in _object(trial, where).items():
            if name not in SETTINGS:
                raise InvalidTrial(f"{where}.{name}: unknown setting (known: {', '.join(SETTINGS)})")
            resolved[name] = _coerce(name, where, value)
    for name, (_, default, _) in SETTINGS.items():
        resolved.setdefault(name, default)
    if resolved["learningRate"] is None:
        resolved["learningRate"] = DEFAULT_LEARNING_RATE[resolved["optimizer"]]
    if resolved["nesterov"] and resolved["optimizer"] == "sgd" and resolved["momentum"] == 0:
        raise InvalidTrial("training.nesterov: needs momentum > 0")
    if resolved["warmupEpochs"] > resolved["epochs"]:
        raise InvalidTrial(f"training.warmupEpochs: {resolved['warmupEpochs']} exceeds epochs ({resolved['epochs']})")

    objective = _object(trial, "objective")
    metric = objective.get("metric", "accuracy")
    if metric not in METRICS:
        raise InvalidTrial(f"objective.metric: {metric!r} is not one of {', '.join(METRICS)} "
                           "(the reward is measured on the validation split)")
    goal = objective.get("goal", "minimize" if metric == "loss" else "maximize")
    if goal not in GOALS:
        raise InvalidTrial(f"objective.goal: {goal!r} is not one of {', '.join(GOALS)}")

    timeout = trial.get("timeoutSeconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0 or not math.isfinite(timeout)):
        raise InvalidTrial(f"timeoutSeconds: must be a positive number of seconds, got {timeout!r}")

    dataset = trial.get("dataset")
    if dataset is not None and not isinstance(dataset, dict):
        raise InvalidTrial(f"dataset: must be an object, got {dataset!r}")
    name = trial.get("name") or (f"{trial['experiment']}-{trial['index']}"
                                 if "experiment" in trial and "index" in trial else "")
    return TrialConfig(
        architecture=trial["architecture"], dataset=dict(dataset or {"name": "digits"}), training=resolved,
        metric=metric, goal=goal, timeout_seconds=float(timeout) if timeout is not None else None,
        name=str(name), hyperparameters=dict(_object(trial, "hyperparameters")),
    )
