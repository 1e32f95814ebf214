"""Validate NASExperiment objects: the CRD schema, unknown fields, then semantics.

Each problem is an Issue naming the field path (``spec.budget.parallelTrials``) and
what to do about it. The same checks run in `kubenas validate`, `kubenas run` and
the operator, so an experiment is accepted or refused the same way everywhere.
"""
from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import API_VERSION, EXPERIMENT_KIND
from .schema import format_path, openapi_schema, validator

# Trial names are <experiment>-<index>; Job and pod label values must stay within 63
# characters with a 5-digit index and a retry suffix, hence the cap on the name.
MAX_EXPERIMENT_NAME = 50
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DATASETS_WITH_PATH = ("mnist", "fashion-mnist", "cifar10", "npz", "image-folder")
METRIC_GOALS = {"accuracy": "maximize", "loss": "minimize"}


def _training_defaults() -> dict:
    """The trainer's own defaults (kubenas_trainer.settings, torch-free): one source.

    learningRate is left out: its default depends on the optimizer, which may itself
    be a searched hyperparameter, so the trainer picks it per trial.
    """
    from kubenas_trainer.settings import SETTINGS

    return {name: default for name, (_, default, _) in SETTINGS.items() if default is not None}


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ExperimentInvalid(ValueError):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(map(str, issues)))


# ----------------------------------------------------------------------------- schema


def _schema_issues(obj: dict) -> list[Issue]:
    issues = []
    for error in sorted(validator("NASExperiment").iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = format_path(error.absolute_path) or "(top level)"
        if error.validator == "required":
            missing = error.message.split("'")[1]
            path = f"{path}.{missing}" if error.absolute_path else missing
            issues.append(Issue(path, "is required"))
        else:
            issues.append(Issue(path, error.message))
    return issues


def _unknown_field_issues(value: Any, schema: dict, path: list) -> list[Issue]:
    """Fields the schema does not know: the API server would silently drop them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    issues = []
    if isinstance(value, dict) and "properties" in schema:
        known = schema["properties"]
        for key, item in value.items():
            if key in known:
                issues += _unknown_field_issues(item, known[key], path + [key])
            elif not (path == [] and key in ("metadata", "status")):
                hint = difflib.get_close_matches(str(key), list(known), n=1)
                fix = f"did you mean '{hint[0]}'?" if hint else f"known fields: {', '.join(known)}"
                issues.append(Issue(format_path(path + [key]), f"unknown field; {fix}"))
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            issues += _unknown_field_issues(item, schema["additionalProperties"], path + [key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            issues += _unknown_field_issues(item, schema["items"], path + [i])
    return issues


# -------------------------------------------------------------------------- semantics


def _metadata_issues(obj: dict) -> list[Issue]:
    name = (obj.get("metadata") or {}).get("name")
    if not name:
        return [Issue("metadata.name", "is required")]
    if len(name) > MAX_EXPERIMENT_NAME or not DNS_LABEL.match(name):
        return [Issue("metadata.name", f"must be a DNS-1123 label of at most {MAX_EXPERIMENT_NAME} characters "
                      "(lower-case letters, digits, '-'), because trial and Job names are built from it")]
    return []


def _objective_issues(spec: dict) -> list[Issue]:
    objective = spec["objective"]
    issues = []
    metric, goal = objective["metric"], objective["goal"]
    if goal != METRIC_GOALS[metric]:
        issues.append(Issue("spec.objective.goal", f"{metric} should be {METRIC_GOALS[metric]}d, not {goal}d"))
    target = objective.get("target")
    if target is not None and metric == "accuracy" and not 0 < target <= 1:
        issues.append(Issue("spec.objective.target", f"accuracy lies in (0, 1]; got {target}"))
    return issues


def _search_space_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SearchSpace, SpaceError

    space = spec["searchSpace"]
    other = "cell" if space["type"] == "chain" else "chain"
    if other in space:
        return [Issue(f"spec.searchSpace.{other}", f"is set but searchSpace.type is {space['type']}; "
                      f"remove it or set type: {other}")]
    try:
        SearchSpace.from_spec(space)
    except SpaceError as err:
        return [Issue(_spec_path(err.path, "searchSpace"), err.message)]
    return []


def _strategy_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SpaceError
    from kubenas.strategies import check_strategy_spec

    strategy, budget = spec["strategy"], spec["budget"]
    for other in ("random", "evolution", "reinforce"):
        if other != strategy["type"] and other in strategy:
            return [Issue(f"spec.strategy.{other}", f"is set but strategy.type is {strategy['type']}; "
                          f"remove it or set type: {other}")]
    try:
        checked = check_strategy_spec(strategy, spec["objective"]["goal"])
    except SpaceError as err:
        return [Issue(_spec_path(err.path, "strategy"), err.message)]
    population = checked["settings"].get("populationSize")
    if strategy["type"] == "evolution" and population >= budget["maxTrials"]:
        return [Issue("spec.strategy.evolution.populationSize",
                      f"{population} >= budget.maxTrials ({budget['maxTrials']}): evolution would never "
                      "evolve; lower populationSize or raise maxTrials")]
    return []


def _budget_issues(spec: dict) -> list[Issue]:
    budget = spec["budget"]
    if budget["parallelTrials"] > budget["maxTrials"]:
        return [Issue("spec.budget.parallelTrials", f"{budget['parallelTrials']} exceeds budget.maxTrials "
                      f"({budget['maxTrials']}); lower it to at most {budget['maxTrials']}")]
    return []


def _trial_issues(spec: dict) -> list[Issue]:
    dataset = spec["trial"]["dataset"]
    if dataset["name"] in DATASETS_WITH_PATH and not dataset.get("path"):
        return [Issue("spec.trial.dataset.path", f"dataset {dataset['name']} is read from files: "
                      "set path to the folder (or .npz file) that holds them")]
    return []


def _spec_path(path: str, block: str) -> str:
    path = path or block
    if path.startswith("spec."):
        return path
    if not path.startswith(block):
        path = f"{block}.{path}"
    return f"spec.{path}"


def validate_experiment(obj: Any) -> list[Issue]:
    """All problems of a NASExperiment object; an empty list means it is valid."""
    if not isinstance(obj, dict):
        return [Issue("(top level)", "must be a YAML/JSON object (a NASExperiment)")]
    issues = []
    if obj.get("apiVersion") != API_VERSION:
        issues.append(Issue("apiVersion", f"must be {API_VERSION}, got {obj.get('apiVersion')!r}"))
    if obj.get("kind") != EXPERIMENT_KIND:
        issues.append(Issue("kind", f"must be {EXPERIMENT_KIND}, got {obj.get('kind')!r}"))
    issues += _metadata_issues(obj)
    issues += _schema_issues(obj)
    issues += _unknown_field_issues(obj, openapi_schema("NASExperiment"), [])
    if issues:
        return issues  # semantic checks assume a schema-valid object
    spec = with_defaults(obj["spec"])
    for check in (_objective_issues, _search_space_issues, _strategy_issues, _budget_issues, _trial_issues):
        issues += check(spec)
    return issues


# --------------------------------------------------------------------------- defaults


def with_defaults(spec: dict) -> dict:
    """A copy of a NASExperiment spec with every optional setting filled in.

    Defaults live here, once, for the local runner, the operator and the controller.
    """
    spec = copy.deepcopy(spec)
    objective = spec.setdefault("objective", {"metric": "accuracy"})
    objective.setdefault("goal", METRIC_GOALS.get(objective.get("metric"), "maximize"))
    objective.setdefault("penalties", [])
    spec.setdefault("searchSpace", {}).setdefault("hyperparameters", [])
    spec.setdefault("strategy", {}).setdefault("seed", 0)
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
    dataset = trial.setdefault("dataset", {"name": "digits"})
    dataset.setdefault("validationFraction", 0.2)
    dataset.setdefault("seed", 0)
    training = trial.setdefault("training", {})
    for key, value in _training_defaults().items():
        training.setdefault(key, value)
    trial.setdefault("template", {})
    spec.setdefault("controller", {})
    return spec


# ------------------------------------------------------------------------------ files


def load_experiment_file(path: str | Path) -> dict:
    """Read one NASExperiment from a YAML or JSON file; raise ExperimentInvalid if bad."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ExperimentInvalid([Issue(str(path), f"cannot read the file: {err.strerror}")]) from err
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as err:
        raise ExperimentInvalid([Issue(str(path), f"is not valid YAML: {err}")]) from err
    experiments = [d for d in documents if isinstance(d, dict) and d.get("kind") == EXPERIMENT_KIND]
    if len(documents) == 1:
        obj = documents[0]
    elif len(experiments) == 1:
        obj = experiments[0]
    else:
        raise ExperimentInvalid([Issue(str(path), f"must hold exactly one {EXPERIMENT_KIND}, "
                                       f"found {len(experiments)} among {len(documents)} documents")])
    issues = validate_experiment(obj)
    if issues:
        raise ExperimentInvalid(issues)
    return obj
