"""Trial names and NASTrial specs, built the same way by the local runner and the controller."""
from __future__ import annotations

import copy

from kubenas.space import max_latency_ms

from .defaults import with_defaults

INDEX_DIGITS = 5  # budget.maxTrials <= 100000


def trial_name(experiment: str, index: int) -> str:
    """Deterministic, so that creating a trial can be retried safely (409 = done)."""
    return f"{experiment}-{index}"


def build_trial_spec(experiment_name: str, spec: dict, index: int, candidate: dict) -> dict:
    """The NASTrial.spec (and the trainer's input) of one candidate of an experiment."""
    spec = with_defaults(spec)
    trial = spec["trial"]
    objective = spec["objective"]
    return {
        "experiment": experiment_name,
        "index": index,
        "architecture": copy.deepcopy(candidate["architecture"]),
        "hyperparameters": copy.deepcopy(candidate.get("hyperparameters") or {}),
        "objective": {"metric": objective["metric"], "goal": objective["goal"],
                      "penalties": copy.deepcopy(objective["penalties"])},
        "task": trial["task"],
        "dataset": copy.deepcopy(trial["dataset"]),
        "training": copy.deepcopy(trial["training"]),
        "timeoutSeconds": spec["budget"]["trialTimeoutSeconds"],
        **({"model": copy.deepcopy(trial["model"])} if trial.get("model") else {}),
        **({"export": copy.deepcopy(trial["export"])} if "export" in trial else {}),
        # limits the trainer checks before training (the rest are checked before proposing)
        **({"constraints": {"maxLatencyMs": latency}} if (latency := max_latency_ms(spec)) is not None else {}),
    }
