"""The defaults of a NASExperiment spec, applied once (``with_defaults``): the local
runner, the operator, the controller and the validation's semantic checks all read the
filled spec, and none of them defaults a value again."""
from __future__ import annotations

import copy

from kubenas.contract import artifacts as artifacts_contract
from kubenas.contract import fidelity as fidelity_contract
from kubenas.contract.tasks import goal_of


def with_defaults(spec: dict) -> dict:
    """A copy of a NASExperiment spec with every optional setting filled in.

    Defaults live here, once, for the local runner, the operator and the controller.
    """
    spec = copy.deepcopy(spec)
    objective = spec.setdefault("objective", {"metric": "accuracy"})
    objective.setdefault("goal", goal_of(objective.get("metric")))
    objective.setdefault("penalties", [])
    spec.setdefault("searchSpace", {}).setdefault("hyperparameters", [])
    spec.setdefault("strategy", {}).setdefault("seed", 0)
    if isinstance(spec["strategy"].get("fidelity"), dict):
        for key, value in fidelity_contract.FIDELITY_DEFAULTS.items():
            spec["strategy"]["fidelity"].setdefault(key, value)
    budget = spec.setdefault("budget", {})
    budget.setdefault("parallelTrials", 1)
    budget.setdefault("maxFailedTrials", 3 + int(budget.get("maxTrials", 0)) // 10)
    budget.setdefault("trialTimeoutSeconds", 3600)
    budget.setdefault("maxRetries", 3)
    stopping = spec.setdefault("earlyStopping", {})
    stopping.setdefault("type", "none")
    stopping.setdefault("minTrials", 5)
    stopping.setdefault("startEpoch", 2)
    trial = spec.setdefault("trial", {})
    trial.setdefault("task", "image-classification")
    dataset = trial.setdefault("dataset", {})
    if not dataset.get("loader"):  # a loader returns its own splits (docs/byo.md)
        dataset.setdefault("name", "digits")
        dataset.setdefault("validationFraction", 0.2)
    dataset.setdefault("seed", 0)
    training = trial.setdefault("training", {})
    for key, value in _training_defaults().items():
        training.setdefault(key, value)
    trial.setdefault("template", {})
    spec.setdefault("controller", {})
    if isinstance(spec.get("artifacts"), dict):
        spec["artifacts"].setdefault("models", artifacts_contract.MODELS_ALL)
    return spec


def _training_defaults() -> dict:
    """The trainer's own defaults (kubenas.contract.settings): one source.

    learningRate is left out: its default depends on the optimizer, which may itself
    be a searched hyperparameter, so the trainer picks it per trial.
    """
    from kubenas.contract.settings import defaults

    return defaults()
