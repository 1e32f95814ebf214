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

from kubenas.contract import GOALS
from kubenas.contract.reward import check_penalties
from kubenas.contract.settings import (DEFAULT_LEARNING_RATE, SETTINGS, checkpoint_problem, export_problem,
                                      resolved_checkpoint, resolved_export, schedule_problem)

from kubenas_trainer.errors import InvalidTrial
from kubenas_trainer.tasks import TASK_REGISTRY


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
    penalties: list = field(default_factory=list)  # objective.penalties (kubenas.contract.reward)
    model: dict = field(default_factory=dict)  # {"builder": "module:function", "supernet": ...} (user_code.py), or {}
    export: dict = field(default_factory=lambda: resolved_export(None))  # formats, opset (contract.settings)
    task: str = "image-classification"
    checkpoint: dict = field(default_factory=lambda: resolved_checkpoint(None))  # save, resumeFrom

    @property
    def objective(self) -> dict:
        return {"metric": self.metric, "goal": self.goal, "penalties": self.penalties}


def _coerce(name: str, where: str, value: Any) -> Any:
    setting = SETTINGS[name]
    path = f"{where}.{name}"
    if value is None:
        if setting.nullable:
            return None
        raise InvalidTrial(f"{path}: must not be null")
    if setting.kind == "bool":
        if not isinstance(value, bool):
            raise InvalidTrial(f"{path}: must be true or false, got {value!r}")
        return value
    if setting.kind == "choice":
        if isinstance(value, str):
            value = value.lower()
        if value not in setting.choices:
            raise InvalidTrial(f"{path}: {value!r} is not one of {', '.join(setting.choices)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTrial(f"{path}: must be a number, got {value!r}")
    if not math.isfinite(value):
        raise InvalidTrial(f"{path}: must be finite, got {value!r}")
    if setting.kind == "int":
        if value != int(value):
            raise InvalidTrial(f"{path}: must be an integer, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    problem = setting.limit.violation(value) if setting.limit else None
    if problem:
        raise InvalidTrial(f"{path}: {problem}")
    return value


def _object(trial: dict, key: str) -> dict:
    value = trial.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidTrial(f"{key}: must be an object, got {value!r}")
    return value


def _user_model(trial: dict) -> dict:
    """``trial.model``: ``builder`` (and, for one-shot trials, ``supernet``), each
    'module:function' (models/user_code.py); {} without it."""
    model = _object(trial, "model")
    unknown = sorted(set(model) - {"builder", "supernet"})
    if unknown:
        raise InvalidTrial(f"model.{unknown[0]}: unknown field (known: builder, supernet)")
    if model and not isinstance(model.get("builder"), str):
        raise InvalidTrial(f"model.builder: must be 'module:function', got {model.get('builder')!r}")
    if "supernet" in model and not isinstance(model["supernet"], str):
        raise InvalidTrial(f"model.supernet: must be 'module:function', got {model['supernet']!r}")
    return model


def resolve_trial(trial: Any) -> TrialConfig:
    """Validate a Trial object and fill the documented defaults."""
    if not isinstance(trial, dict):
        raise InvalidTrial(f"trial: must be an object, got {type(trial).__name__}")
    # Other top-level fields (the NASTrial spec may carry more) are ignored; the
    # settings objects below are strict, so a typo never silently trains a default.
    if "architecture" not in trial:
        raise InvalidTrial("architecture: required")
    task = trial.get("task", "image-classification")
    if task not in TASK_REGISTRY:
        raise InvalidTrial(f"task: {task!r} is not supported (supported: {', '.join(TASK_REGISTRY)})")

    resolved: dict[str, Any] = {}
    for where in ("training", "hyperparameters"):
        for name, value in _object(trial, where).items():
            if name not in SETTINGS:
                raise InvalidTrial(f"{where}.{name}: unknown setting (known: {', '.join(SETTINGS)})")
            resolved[name] = _coerce(name, where, value)
    for name, setting in SETTINGS.items():
        resolved.setdefault(name, setting.default)
    if resolved["learningRate"] is None:
        resolved["learningRate"] = DEFAULT_LEARNING_RATE[resolved["optimizer"]]
    if resolved["nesterov"] and resolved["optimizer"] == "sgd" and resolved["momentum"] == 0:
        raise InvalidTrial("training.nesterov: needs momentum > 0")
    problem = schedule_problem(resolved)
    if problem:
        raise InvalidTrial(f"training.{problem[0]}: {problem[1]}")
    if resolved["scheduleEpochs"] is None:
        resolved["scheduleEpochs"] = resolved["epochs"]
    problem = checkpoint_problem(trial.get("checkpoint"))
    if problem:
        raise InvalidTrial(f"checkpoint{'.' + problem[0] if problem[0] else ''}: {problem[1]}")

    objective = _object(trial, "objective")
    # The task's metrics, each with its goal (the registry's, which reads kubenas.contract.tasks)
    goals = TASK_REGISTRY[task].metrics
    metric = objective.get("metric", TASK_REGISTRY[task].metric)
    if metric not in goals:
        raise InvalidTrial(f"objective.metric: {metric!r} is not one of {', '.join(goals)} "
                           "(the reward is measured on the validation split)")
    goal = objective.get("goal", goals[metric])
    if goal not in GOALS:
        raise InvalidTrial(f"objective.goal: {goal!r} is not one of {', '.join(GOALS)}")
    try:
        penalties = check_penalties(objective.get("penalties"))
    except ValueError as err:
        raise InvalidTrial(str(err)) from None

    timeout = trial.get("timeoutSeconds")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not timeout > 0 or not math.isfinite(timeout)):
        raise InvalidTrial(f"timeoutSeconds: must be a positive number of seconds, got {timeout!r}")

    dataset = trial.get("dataset")
    if dataset is not None and not isinstance(dataset, dict):
        raise InvalidTrial(f"dataset: must be an object, got {dataset!r}")
    model = _user_model(trial)
    problem = export_problem(trial.get("export"), trial.get("task") or "image-classification")
    if problem:
        raise InvalidTrial(f"export{'.' + problem[0] if problem[0] else ''}: {problem[1]}")
    name = trial.get("name") or (f"{trial['experiment']}-{trial['index']}"
                                 if "experiment" in trial and "index" in trial else "")
    return TrialConfig(
        architecture=trial["architecture"], dataset=dict(dataset or {"name": "digits"}), training=resolved,
        metric=metric, goal=goal, timeout_seconds=float(timeout) if timeout is not None else None,
        name=str(name), hyperparameters=dict(_object(trial, "hyperparameters")), penalties=list(penalties),
        model=dict(model),
        export=resolved_export(trial.get("export")),
        task=task,
        checkpoint=resolved_checkpoint(trial.get("checkpoint")),
    )
