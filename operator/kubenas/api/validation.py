"""Validate NASExperiment objects: the CRD schema, unknown fields, then semantics.

Each problem is an Issue naming the field path (``spec.budget.parallelTrials``) and
what to do about it. The same checks run in `kubenas validate`, `kubenas run` and
the operator, so an experiment is accepted or refused the same way everywhere.
"""
from __future__ import annotations

import copy
import difflib
import json
import re
from decimal import Decimal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kubenas.contract import METRIC_GOALS
from kubenas.contract.tasks import TASK_METRICS
from kubenas.contract.tasks import DATASETS_WITH_PATH, TASK_DATASET_FIELDS, TASK_DATASETS

from . import API_VERSION, EXPERIMENT_KIND
from kubenas.contract import artifacts as artifacts_contract
from kubenas.contract import fidelity as fidelity_contract
from kubenas.strategies import strategy_names

from .schema import format_path, openapi_schema, validator

# Trial names are <experiment>-<index>; Job and pod label values must stay within 63
# characters with a 5-digit index and a retry suffix, hence the cap on the name.
MAX_EXPERIMENT_NAME = 50
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _training_defaults() -> dict:
    """The trainer's own defaults (kubenas.contract.settings): one source.

    learningRate is left out: its default depends on the optimizer, which may itself
    be a searched hyperparameter, so the trainer picks it per trial.
    """
    from kubenas.contract.settings import defaults

    return defaults()


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


# ------------------------------------------------------------------------- bounds

# How deeply a NASExperiment may nest lists and maps, in files and in objects read from
# the API server. A real one nests about a dozen levels (a sub-sub-space's values); the
# CRD's schema leaves no field free to nest deeper. Checked without recursion before
# anything else walks the object: Python's own recursion (repr, deepcopy, the JSON
# decoder) fails near 1000 levels, which the API server would store.
MAX_NESTING = 64
SHOWN_PATH_PARTS = 8  # a too-deep path is named by its first parts


def nesting_issue(value: Any, limit: int = MAX_NESTING) -> Issue | None:
    """The first place where ``value`` nests lists and maps more than ``limit`` levels
    deep, as an Issue naming it; None if it does not. Iterative: any depth is safe."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth == limit:
            shown = format_path(path[:SHOWN_PATH_PARTS]) + ("..." if len(path) > SHOWN_PATH_PARTS else "")
            return Issue(shown or "(top level)",
                         f"nests lists and maps more than {limit} levels deep; a NASExperiment needs about a "
                         "dozen: remove the nesting (the field takes plain values)")
        stack.extend((child, path + (key,), depth + 1) for key, child in children
                     if isinstance(child, (dict, list)))
    return None


def max_spec_bytes() -> int:
    """The most characters the accepted spec (defaults filled, as JSON) may take: the
    operator keeps it in status.acceptedSpec, whose maxLength the CRD sets."""
    status = openapi_schema("NASExperiment")["properties"]["status"]["properties"]
    return int(status["acceptedSpec"]["maxLength"])


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _largest_part(spec: dict, size: int) -> tuple[list, int]:
    """The path (under spec) and size of the part that makes most of ``spec``'s size,
    followed down while one part holds at least half of its parent."""
    path: list = []
    node = spec
    while isinstance(node, (dict, list)) and node:
        children = list(node.items() if isinstance(node, dict) else enumerate(node))
        sizes = [(_json_size(child), key) for key, child in children]
        biggest, key = max(sizes, key=lambda pair: pair[0])
        if biggest * 2 < size:
            break
        path.append(key)
        node, size = node[key], biggest
    return path, size


def _size_issues(spec: dict) -> list[Issue]:
    """The accepted spec must fit status.acceptedSpec, or the operator could never record
    that it accepted it (every status write would be refused)."""
    limit, size = max_spec_bytes(), _json_size(spec)
    if size <= limit:
        return []
    path, part = _largest_part(spec, size)
    where = f"; most of it is {format_path(['spec', *path])} ({part} characters)" if path else ""
    return [Issue("spec", f"is {size} characters as JSON (defaults filled in); the operator keeps the accepted "
                  f"spec in status.acceptedSpec, which holds at most {limit}{where}: shorten it")]


# ----------------------------------------------------------------------------- schema


QUANTITY_EXAMPLES = "an integer or a string such as 500m, 2, 1.5, 4Gi or 512Mi"


def _schema_issues(obj: dict) -> list[Issue]:
    issues = []
    for error in sorted(validator("NASExperiment").iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = format_path(error.absolute_path) or "(top level)"
        if error.validator == "required":
            missing = error.message.split("'")[1]
            path = f"{path}.{missing}" if error.absolute_path else missing
            issues.append(Issue(path, "is required"))
        else:
            issues.append(Issue(path, _schema_message(error)))
    return issues


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _schema_message(error) -> str:
    """jsonschema's message, made short and actionable for the keywords whose default
    text would echo a whole oversized value or a regular expression."""
    kind, limit, schema, value = error.validator, error.validator_value, error.schema, error.instance
    quantity = schema.get("x-kubernetes-int-or-string") and "pattern" in schema
    if kind == "maxLength":
        return f"is {len(value)} characters long; at most {limit} are allowed: shorten it"
    if kind == "maxItems":
        return f"has {len(value)} items; at most {limit} are allowed: remove some"
    if kind == "maxProperties":
        return f"has {len(value)} entries; at most {limit} are allowed: remove some"
    if kind == "pattern" and quantity:
        return f"{_shown(value)} is not a Kubernetes quantity; use {QUANTITY_EXAMPLES}"
    if kind == "pattern":
        return f"{_shown(value)} does not match the pattern {limit}"
    if kind == "anyOf" and schema.get("x-kubernetes-int-or-string"):
        what = "a Kubernetes quantity" if quantity else "an integer or a string"
        return f"{_shown(value)} is not {what}; use {QUANTITY_EXAMPLES if quantity else 'one of those'}"
    if kind == "enum":
        return f"{_shown(value)} is not one of {', '.join(map(str, limit))}"
    if kind == "type":
        return f"{_shown(value)} is not of type {limit!r}"
    return error.message if len(error.message) <= 300 else error.message[:300] + "..."


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
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return []  # the schema names it
    name = (metadata or {}).get("name")
    if not name:
        return [Issue("metadata.name", "is required: name the experiment (a DNS-1123 label, "
                      f"at most {MAX_EXPERIMENT_NAME} characters)")]
    if not isinstance(name, str):
        return [Issue("metadata.name", f"must be a string, got {_shown(name)}")]
    if len(name) > MAX_EXPERIMENT_NAME:
        return [Issue("metadata.name", f"is {len(name)} characters long; at most {MAX_EXPERIMENT_NAME} are "
                      "allowed, because trial and Job names are built from it: shorten it")]
    if not DNS_LABEL.match(name):
        return [Issue("metadata.name", f"{_shown(name)} is not a DNS-1123 label: use lower-case letters, "
                      "digits and '-', starting and ending with a letter or digit")]
    return []


def _objective_issues(spec: dict) -> list[Issue]:
    objective = spec["objective"]
    issues = []
    metric, goal = objective["metric"], objective["goal"]
    task = (spec.get("trial") or {}).get("task", "image-classification")
    if metric not in TASK_METRICS.get(task, (metric,)):
        return [Issue("spec.objective.metric", f"{metric} is not measured by {task}; use one of "
                      f"{', '.join(TASK_METRICS[task])}")]
    if goal != METRIC_GOALS[metric]:
        issues.append(Issue("spec.objective.goal", f"{metric} should be {METRIC_GOALS[metric]}d, not {goal}d"))
    target = objective.get("target")
    if target is not None and metric == "accuracy" and not 0 < target <= 1:
        issues.append(Issue("spec.objective.target", f"accuracy lies in (0, 1]; got {target}"))
    return issues


def _pareto_issues(spec: dict) -> list[Issue]:
    """objective.pareto: each cost once, measured by the trainer, searched by a strategy that can."""
    from kubenas.contract.pareto import check_pareto
    from kubenas.space import SpaceError
    from kubenas.strategies import check_pareto_strategy

    pareto = spec["objective"].get("pareto") or []
    try:
        check_pareto(pareto, "spec.objective.pareto")
        check_pareto_strategy(spec["strategy"]["type"], pareto)
    except SpaceError as err:
        return [Issue(_spec_path(err.path, "objective"), err.message)]
    except ValueError as err:
        path, _, message = str(err).partition(": ")
        return [Issue(path, message)]
    training = spec["trial"].get("training") or {}
    if "latencyMs" in pareto and training.get("measureLatency") is False:
        return [Issue("spec.objective.pareto", "lists latencyMs but spec.trial.training.measureLatency is false; "
                      "remove measureLatency: false or drop latencyMs from pareto")]
    return []


def _search_space_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SearchSpace, SpaceError

    space = spec["searchSpace"]
    for other in ("chain", "cell", "parameters"):
        if other != space["type"] and other in space:
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
    for other in strategy_names():
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


def _fidelity_issues(spec: dict) -> list[Issue]:
    """spec.strategy.fidelity: rungs within trial.training.epochs, and nothing it would contradict."""
    from kubenas.space import SpaceError
    from kubenas.strategies import resolve_fidelity

    strategy = spec["strategy"]
    if strategy.get("fidelity") is None:
        return []
    try:
        resolve_fidelity(strategy, spec["trial"]["training"]["epochs"])
    except SpaceError as err:
        return [Issue(_spec_path(err.path, "strategy"), err.message)]
    if spec["earlyStopping"]["type"] != "none":
        return [Issue("spec.earlyStopping.type", f"{spec['earlyStopping']['type']} cannot be combined with "
                      "strategy.fidelity, which already stops the weaker trials at every rung; set it to none "
                      "or remove strategy.fidelity")]
    if spec["objective"].get("pareto"):
        return [Issue("spec.strategy.fidelity", "promotes by one scalar reward and cannot rank several "
                      "objectives (objective.pareto); remove objective.pareto or strategy.fidelity")]
    if spec.get("final"):
        return [Issue("spec.final", "cannot be combined with strategy.fidelity yet: re-evaluate the best "
                      "candidates in a separate experiment, or remove one of them")]
    return []


def _constraints_issues(spec: dict) -> list[Issue]:
    from kubenas.space import SearchSpace, SpaceError, cheapest_violation, constraints_from_spec

    try:
        constraints = constraints_from_spec(spec)
    except SpaceError as err:
        return [Issue(_spec_path(err.path, "constraints"), err.message)]
    try:
        space = SearchSpace.from_spec(spec["searchSpace"])
    except SpaceError:
        return []  # reported by the search-space check
    violation = cheapest_violation(constraints, space)
    if violation is not None:
        field = violation.split(" > ")[1].split()[0]
        return [Issue(f"spec.constraints.{field}", f"even the cheapest network of the search space breaks it "
                      f"({violation}); raise the limit or shrink the space's skeleton")]
    return []


def _schedule_issues(spec: dict) -> list[Issue]:
    """trial.training.scheduleEpochs covers every epoch trained (a searched epochs too), and warmup fits in it."""
    from kubenas.contract.settings import schedule_problem
    from kubenas.space import SpaceError
    from kubenas.space.hyperparameters import parse_hyperparameters

    try:
        searched = [h for h in parse_hyperparameters(spec["searchSpace"].get("hyperparameters")) if h.name == "epochs"]
    except SpaceError:
        searched = []  # reported by the search-space check
    problem = schedule_problem(spec["trial"]["training"], searched[0].values if searched else ())
    return [Issue(f"spec.trial.training.{problem[0]}", problem[1])] if problem else []


def _budget_issues(spec: dict) -> list[Issue]:
    budget = spec["budget"]
    if budget["parallelTrials"] > budget["maxTrials"]:
        return [Issue("spec.budget.parallelTrials", f"{budget['parallelTrials']} exceeds budget.maxTrials "
                      f"({budget['maxTrials']}); lower it to at most {budget['maxTrials']}")]
    return []


def _final_issues(spec: dict) -> list[Issue]:
    """spec.final re-evaluates after all maxTrials search trials; objective.target would end
    the search before (kubenas.experiment.final)."""
    final = spec.get("final")
    if final and spec["objective"].get("target") is not None:
        return [Issue("spec.final", f"cannot follow objective.target ({spec['objective']['target']}): reaching it "
                      "ends the search before the re-evaluation; remove one of them")]
    return []


def _trial_issues(spec: dict) -> list[Issue]:
    dataset = spec["trial"]["dataset"]
    if dataset.get("loader") and dataset.get("name"):
        return [Issue("spec.trial.dataset.name", f"is set, and so is dataset.loader ({dataset['loader']}): "
                      "keep one, name for a built-in dataset or loader for your own")]
    if dataset.get("loader"):
        extra = sorted(set(dataset) - {"loader", "seed"})
        if extra:
            return [Issue(f"spec.trial.dataset.{extra[0]}", "applies to the built-in datasets; your loader "
                          "returns its own splits (it gets the seed): remove it")]
        return _command_issues(spec)
    task = spec["trial"].get("task", "image-classification")
    if dataset["name"] not in TASK_DATASETS[task]:
        return [Issue("spec.trial.dataset.name", f"{dataset['name']!r} is not a dataset of task {task}: "
                      f"use one of {', '.join(TASK_DATASETS[task])} (docs/tasks.md)")]
    foreign = sorted(set(dataset) - set(TASK_DATASET_FIELDS[task]))
    if foreign:
        return [Issue(f"spec.trial.dataset.{foreign[0]}", f"task {task} does not read it; remove it "
                      f"(task {task} reads {', '.join(TASK_DATASET_FIELDS[task])})")]
    if dataset["name"] in DATASETS_WITH_PATH and not dataset.get("path"):
        return [Issue("spec.trial.dataset.path", f"dataset {dataset['name']} is read from files: "
                      "set path to the folder (or .npz file) that holds them")]
    return _validation_issues(dataset.get("validation")) + _groups_file_issues(dataset) + _noise_files_issues(dataset) \
        + _command_issues(spec)


def _noise_files_issues(dataset: dict) -> list[Issue]:
    """augment.noiseFiles is mixed with probability noiseProbability: refused when that is 0."""
    augment = dataset.get("augment") or {}
    if augment.get("noiseFiles") and not augment.get("noiseProbability"):
        return [Issue("spec.trial.dataset.augment.noiseFiles", "mixed into a take with probability "
                      "noiseProbability, which is 0; set noiseProbability above 0 or remove noiseFiles")]
    return []


def _groups_file_issues(dataset: dict) -> list[Issue]:
    """dataset.groupsFile matches example names, so it needs a dataset read from files."""
    if dataset.get("groupsFile") and dataset["name"] not in DATASETS_WITH_PATH:
        return [Issue("spec.trial.dataset.groupsFile", f"dataset {dataset['name']} is built in and has no example "
                      f"names to match; remove groupsFile or use a dataset read from files "
                      f"({', '.join(DATASETS_WITH_PATH)})")]
    return []


def command_names(spec: dict) -> list[str]:
    """The names ``${name}`` in spec.trial.command may use (kubenas.contract.byo): the
    built-in ones, the searched hyperparameters, and the top-level decisions of a
    ``parameters`` space."""
    from kubenas.contract.byo import BUILTIN_NAMES

    space = spec["searchSpace"]
    names = [h.get("name") for h in space.get("hyperparameters") or [] if isinstance(h, dict)]
    if space.get("type") == "parameters":
        names += _decision_names(space)
    return sorted(set(BUILTIN_NAMES) | {n for n in names if isinstance(n, str)})


def _decision_names(space: dict) -> list[str]:
    """Top-level decisions of a parameters space; ``${layers[0].width}``-style names below
    them are checked against each candidate when the trial starts."""
    return [p["name"] for p in space.get("parameters") or [] if isinstance(p, dict) and "name" in p]


def _command_issues(spec: dict) -> list[Issue]:
    from kubenas.contract.byo import BUILTIN_NAMES, references

    trial = spec["trial"]
    command = trial.get("command")
    if not command:
        return []
    issues = []
    for key, what in (("model", "spec.trial.model"), ("loader", "spec.trial.dataset.loader")):
        present = trial.get("model") if key == "model" else trial["dataset"].get("loader")
        if present:
            issues.append(Issue(what, "is for the built-in trainer, but trial.command runs your own program, which "
                                      "builds its model and reads its data itself: remove one of them"))
    known = command_names(spec)
    for index, name in references(command):
        root = re.split(r"[.\[]", name, maxsplit=1)[0]
        if name not in known and not (spec["searchSpace"].get("type") == "parameters" and root in known
                                      and root not in BUILTIN_NAMES):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean ${{{close[0]}}}? " if close else ""
            issues.append(Issue(f"spec.trial.command[{index}]", f"${{{name}}} names no decision or hyperparameter; "
                                f"{hint}known: {', '.join(known)} (write $${{ for a literal ${{)"))
    return issues


def _user_code_issues(spec: dict) -> list[Issue]:
    """A parameters space is built by the user's code: the built-in trainer builds chain and
    cell architectures only (kubenas.contract.ops.BUILT_IN_SPACE_TYPES)."""
    from kubenas.contract.ops import BUILT_IN_SPACE_TYPES

    kind = spec["searchSpace"]["type"]
    trial = spec["trial"]
    if kind in BUILT_IN_SPACE_TYPES or trial.get("command") or (trial.get("model") or {}).get("builder"):
        return []
    return [Issue("spec.trial.command", f"searchSpace.type {kind} needs your training code: the built-in "
                  f"trainer builds only {' and '.join(BUILT_IN_SPACE_TYPES)} architectures. Set trial.command "
                  "(your program receives the assignment, docs/byo.md) or trial.model.builder "
                  "(a callable that builds your model from it)")]


def _artifacts_issues(spec: dict) -> list[Issue]:
    """spec.artifacts: one destination, credentials only where a store reads them, and
    topK/maxBytes only with models: top (no setting accepted and ignored)."""
    art = spec.get("artifacts")
    if art is None:
        return []
    issues = []
    if bool(art.get("url")) == bool(art.get("persistentVolumeClaim")):
        issues.append(Issue("spec.artifacts", "needs exactly one of persistentVolumeClaim (a volume) or url "
                            "(an object store): set one"))
    path = (art.get("persistentVolumeClaim") or {}).get("path") or ""
    if any(part in (".", "..") for part in path.split("/")):
        issues.append(Issue("spec.artifacts.persistentVolumeClaim.path", f"{_shown(path)} may not contain '.' or "
                            "'..' segments: name a folder inside the volume, like results/nas"))
    volumes = (spec.get("trial", {}).get("template") or {}).get("volumes") or []
    if any(isinstance(v, dict) and v.get("name") == artifacts_contract.VOLUME_NAME for v in volumes):
        issues.append(Issue("spec.trial.template.volumes", f"the volume name {artifacts_contract.VOLUME_NAME} "
                            "is the artifacts volume the operator adds: rename your volume"))
    url = art.get("url") or ""
    if url:
        proto = artifacts_contract.scheme(url)
        if proto not in artifacts_contract.URL_SCHEMES:
            issues.append(Issue("spec.artifacts.url", f"{_shown(url)}: use s3://, gs:// or az://"))
        elif art.get("credentialsSecret") and not artifacts_contract.CREDENTIAL_VARIABLES[proto]:
            issues.append(Issue("spec.artifacts.credentialsSecret", f"{proto}:// reads no credentials from a "
                                "Secret (it uses Workload Identity or the node's default credentials): remove it"))
    elif art.get("credentialsSecret"):
        issues.append(Issue("spec.artifacts.credentialsSecret", "is for an object store url; a volume needs "
                            "none: remove it"))
    models = art.get("models", artifacts_contract.MODELS_ALL)
    if models != artifacts_contract.MODELS_TOP:
        for key in ("topK", "maxBytes"):
            if key in art:
                issues.append(Issue(f"spec.artifacts.{key}", f"applies only with models: top (models is "
                                    f"{models}): set models: top, or remove {key}"))
    elif "topK" not in art and "maxBytes" not in art:
        issues.append(Issue("spec.artifacts.models", "top keeps the best models within topK and/or maxBytes: "
                            "set at least one of them"))
    if "maxBytes" in art:
        size = parse_quantity(art["maxBytes"])
        if size is None or size < 1:
            issues.append(Issue("spec.artifacts.maxBytes", f"{_shown(art['maxBytes'])} is not a positive byte "
                                "quantity: write e.g. 500Mi or 2Gi"))
    return issues


def _export_issues(spec: dict) -> list[Issue]:
    """trial.export (formats, opset): the rules the schema cannot say (contract.settings)."""
    from kubenas.contract.settings import export_problem

    problem = export_problem(spec["trial"].get("export"), spec["trial"].get("task", "image-classification"))
    if problem is None:
        return []
    where, message = problem
    return [Issue("spec.trial.export" + (f".{where}" if where else ""), message)]

def _deploy_issues(spec: dict) -> list[Issue]:
    """spec.deploy serves a model that spec.artifacts keeps; kubenas serve's Deployment
    mounts it from a volume (an object store's model needs KServe)."""
    deploy, artifacts = spec.get("deploy"), spec.get("artifacts") or {}
    if deploy is None:
        return []
    if not artifacts or artifacts.get("models") == "none":
        return [Issue("spec.deploy", "serves a model kept in spec.artifacts: add spec.artifacts (a "
                      "persistentVolumeClaim or an object store url) with models all or top")]
    if deploy.get("kind") == "Deployment" and artifacts.get("url"):
        return [Issue("spec.deploy.kind", "Deployment (kubenas serve) mounts the model from "
                      "spec.artifacts.persistentVolumeClaim; with an object store use kind InferenceService "
                      "(KServe) or auto")]
    return []


def _validation_issues(validation) -> list[Issue]:
    """dataset.validation: the fields its type needs, and only those (kubenas_trainer.splits)."""
    if not validation:
        return []
    where, rule = "spec.trial.dataset.validation", validation.get("type")
    if rule == "files" and not validation.get("files"):
        return [Issue(f"{where}.files", "type files needs files: the path of the list of validation examples")]
    if rule != "files" and "files" in validation:
        return [Issue(f"{where}.files", f"only type files reads a list (type is {rule}); remove it")]
    if rule == "kfold":
        if "folds" not in validation:
            return [Issue(f"{where}.folds", "type kfold needs folds (2 or more)")]
        if validation.get("fold", 0) >= validation["folds"]:
            return [Issue(f"{where}.fold", f"{validation['fold']} is not a fold of {validation['folds']} "
                          f"(folds count from 0 to {validation['folds'] - 1})")]
    elif "folds" in validation or "fold" in validation:
        return [Issue(f"{where}.folds", f"only type kfold has folds (type is {rule}); remove folds and fold")]
    return []


QUANTITY = re.compile(r"^([+-]?)((?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))"
                      r"(?:(Ki|Mi|Gi|Ti|Pi|Ei)|([numkMGTPE])|[eE]([+-]?(?:(?:[0-9]+(?:\.[0-9]*)?)|(?:\.[0-9]+))))?\Z")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
RESOURCE_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                           r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")


def parse_quantity(value) -> Decimal | None:
    """A Kubernetes quantity (an int, or a string such as 500m, 1.5, 4Gi, 1e3) as a
    Decimal; None if it is not one (the CRD's pattern already said so)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    match = QUANTITY.match(value) if isinstance(value, str) else None
    if not match:
        return None
    sign, number, binary, decimal, exponent = match.groups()
    amount = Decimal(sign + number)
    if binary:
        return amount * (Decimal(1024) ** _BINARY[binary])
    if decimal:
        return amount.scaleb(_DECIMAL[decimal])
    if exponent:
        return amount * Decimal(10) ** Decimal(exponent) if abs(Decimal(exponent)) <= 100 else None
    return amount


def _resources_issues(spec: dict) -> list[Issue]:
    """What the API server would refuse only when it creates the pod: unknown resource
    names, fractional extended resources (nvidia.com/gpu: 0.5), requests above limits."""
    issues = []
    blocks = ((["spec", "trial", "template", "resources"], spec["trial"]["template"].get("resources")),
              (["spec", "controller", "resources"], spec["controller"].get("resources")),
              (["spec", "deploy", "resources"], (spec.get("deploy") or {}).get("resources")))
    for where, resources in blocks:
        resources = resources or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        for part, values in (("limits", limits), ("requests", requests)):
            for name, value in values.items():
                field = format_path(where + [part, name])
                amount = parse_quantity(value)
                if not RESOURCE_NAME.match(name) or len(name) > 253 or (
                        "/" not in name and name not in STANDARD_RESOURCES and not name.startswith("hugepages-")):
                    issues.append(Issue(field, f"{name!r} is not a resource name; use cpu, memory, "
                                        "ephemeral-storage, hugepages-<size> or a domain-prefixed name "
                                        "such as nvidia.com/gpu"))
                elif amount is None:
                    continue  # the schema named it
                elif amount < 0:
                    issues.append(Issue(field, f"{value} is negative; use 0 or more"))
                elif "/" in name and not name.startswith("kubernetes.io/") and amount != amount.to_integral_value():
                    issues.append(Issue(field, f"{value}: an extended resource is counted in whole units; "
                                        "use an integer such as 1"))
        for name, value in requests.items():
            if name not in limits:
                continue
            request, limit = parse_quantity(value), parse_quantity(limits[name])
            if request is not None and limit is not None and request > limit:
                issues.append(Issue(format_path(where + ["requests", name]),
                                    f"{value} is more than its limit {limits[name]} "
                                    f"({format_path(where + ['limits', name])}); lower the request or raise the limit"))
    return issues


def _template_schema(field: str) -> dict:
    spec = openapi_schema("NASExperiment")["properties"]["spec"]["properties"]
    return spec["trial"]["properties"]["template"]["properties"][field]["items"]


def _template_rule_issues(spec: dict) -> list[Issue]:
    """The CEL rules of the CRD on env and volume items, in Python (the API server applies
    them; `kubenas validate` cannot run CEL). The sources and references are the schema's."""
    template = spec["trial"].get("template") or {}
    refs = list(_template_schema("env")["properties"]["valueFrom"]["properties"])
    sources = [key for key in _template_schema("volumes")["properties"] if key != "name"]
    issues = []
    for i, env in enumerate(template.get("env") or []):
        where = f"spec.trial.template.env[{i}]"
        if "value" in env and "valueFrom" in env:
            issues.append(Issue(where, "an env item sets value or valueFrom, not both"))
        if "valueFrom" in env and sum(ref in env["valueFrom"] for ref in refs) != 1:
            issues.append(Issue(f"{where}.valueFrom", f"needs exactly one of {', '.join(refs)}"))
    for i, volume in enumerate(template.get("volumes") or []):
        if sum(source in volume for source in sources) != 1:
            issues.append(Issue(f"spec.trial.template.volumes[{i}]", "a volume needs exactly one source of: "
                                f"{', '.join(sources)} (the sources kubenas knows; the cluster admin's "
                                "volumeTypes says which are allowed)"))
    return issues


def _spec_path(path: str, block: str) -> str:
    path = path or block
    if path.startswith("spec."):
        return path
    if not path.startswith(block):
        path = f"{block}.{path}"
    return f"spec.{path}"


# Each semantic check, and the parts of spec it reads: it runs when those parts passed
# the schema, so schema and semantic errors of different parts are reported together.
SEMANTIC_CHECKS = (
    (_objective_issues, ("spec.objective",)),
    (_pareto_issues, ("spec.objective", "spec.strategy", "spec.trial.training")),
    (_search_space_issues, ("spec.searchSpace",)),
    (_strategy_issues, ("spec.strategy", "spec.budget", "spec.objective")),
    (_budget_issues, ("spec.budget",)),
    (_fidelity_issues, ("spec.strategy", "spec.trial.training", "spec.earlyStopping", "spec.objective",
                        "spec.final")),
    (_schedule_issues, ("spec.trial.training", "spec.searchSpace")),
    (_final_issues, ("spec.final", "spec.objective")),
    (_constraints_issues, ("spec.constraints", "spec.trial.dataset")),
    (_trial_issues, ("spec.trial.dataset", "spec.trial.task", "spec.trial.command", "spec.trial.model",
                     "spec.searchSpace")),
    (_user_code_issues, ("spec.searchSpace", "spec.trial")),
    (_export_issues, ("spec.trial.export",)),
    (_deploy_issues, ("spec.deploy", "spec.artifacts")),
    (_resources_issues, ("spec.trial.template", "spec.controller")),
    (_artifacts_issues, ("spec.artifacts", "spec.trial.template")),
    (_template_rule_issues, ("spec.trial.template",)),
    (_size_issues, ()),
)


def validate_experiment(obj: Any) -> list[Issue]:
    """All problems of a NASExperiment object; an empty list means it is valid."""
    if not isinstance(obj, dict):
        return [Issue("(top level)", "must be a YAML/JSON object (a NASExperiment)")]
    too_deep = nesting_issue(obj)
    if too_deep is not None:  # every later check may walk the value recursively: none runs
        return [too_deep]
    issues = []
    if obj.get("apiVersion") != API_VERSION:
        issues.append(Issue("apiVersion", f"must be {API_VERSION}, got {_shown(obj.get('apiVersion'))}"))
    if obj.get("kind") != EXPERIMENT_KIND:
        issues.append(Issue("kind", f"must be {EXPERIMENT_KIND}, got {_shown(obj.get('kind'))}"))
    issues += _metadata_issues(obj)
    structural = _schema_issues(obj) + _unknown_field_issues(obj, openapi_schema("NASExperiment"), [])
    issues += structural
    return issues + _semantic_issues(obj, [i.path for i in structural])


def _semantic_issues(obj: dict, bad_paths: list[str]) -> list[Issue]:
    """The semantic checks whose parts of spec passed the schema (they assume it)."""
    if not isinstance(obj.get("spec"), dict) or any(p in ("spec", "(top level)") for p in bad_paths):
        return []

    def clean(prefix: str) -> bool:
        return not any(p == prefix or p.startswith((prefix + ".", prefix + "[")) for p in bad_paths)

    runnable = [check for check, parts in SEMANTIC_CHECKS if all(map(clean, parts))]
    if not runnable:
        return []
    try:
        spec = with_defaults(_without(obj["spec"], bad_paths))
    except (AttributeError, TypeError, KeyError, ValueError):
        if not bad_paths:
            raise
        return []  # a part the defaults need is malformed; the schema issues say which
    issues = []
    for check in runnable:
        try:
            issues += check(spec)
        except (AttributeError, TypeError, KeyError, ValueError):
            if not bad_paths:
                raise
            # a malformed part outside the check's own reached it through the defaults
    return issues


def _without(spec: dict, bad_paths: list[str]) -> dict:
    """A shallow copy of spec without the malformed blocks two levels deep (spec.budget,
    spec.trial.training): the checks reading them are skipped, and with_defaults fills
    them in for the others."""
    spec = dict(spec)
    for path in bad_paths:
        parts = path.split(".")
        if parts[0] != "spec" or len(parts) not in (2, 3):
            continue
        if len(parts) == 2:
            spec.pop(parts[1], None)
        elif isinstance(spec.get(parts[1]), dict):
            spec[parts[1]] = {k: v for k, v in spec[parts[1]].items() if k != parts[2]}
    return spec


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


# ------------------------------------------------------------------------------ files

# Bounds on an experiment file. Real experiments are a few kilobytes with a few hundred
# YAML nodes; the caps refuse abuse (a YAML alias bomb, a multi-megabyte list) before
# anything walks the document, so validation never hangs or exhausts memory.
MAX_FILE_BYTES = 1024 * 1024  # the API server's request limit is about 1.5 MiB
MAX_YAML_NODES = 50_000  # scalars, lists and maps, counting each use of an alias in full
MAX_YAML_DEPTH = MAX_NESTING


class _InputTooLarge(yaml.YAMLError):
    def __init__(self, message: str, mark=None):
        super().__init__(message)
        self.message = message
        self.mark = mark


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses documents nested too deeply or whose aliases expand
    past MAX_YAML_NODES, checked on the node graph before any Python object is built
    (PyYAML composes an alias as a reference to its anchor's node, so a billion-laughs
    file is small until something walks it)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _InputTooLarge(f"is nested more than {MAX_YAML_DEPTH} levels deep; "
                                     "an experiment needs a handful", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _check_expanded_size(node)
        return node


def _check_expanded_size(root) -> None:
    """Count the nodes of the document as if every alias were written out in full
    (memoized on the node graph, so linear in the file), refusing cycles."""
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if children_done:
            in_progress.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_YAML_NODES:
                raise _InputTooLarge(
                    f"holds, from here on, more than {MAX_YAML_NODES} YAML values, lists and maps once "
                    "each alias (*name) is counted in full; an experiment has a few hundred: shorten the "
                    "lists, or drop the aliases if this is a YAML alias bomb", node.start_mark)
            continue
        if key in in_progress:
            raise _InputTooLarge("holds an alias (*name) that refers to itself; a NASExperiment "
                                 "cannot be recursive", node.start_mark)
        in_progress.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in in_progress:
                raise _InputTooLarge("holds an alias (*name) that refers to a node containing it; a "
                                     "NASExperiment cannot be recursive", child.start_mark)
            if id(child) not in sizes:
                stack.append((child, False))


def _where(path: str, mark) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path


def _snippet(mark) -> str:
    snippet = mark.get_snippet(indent=4, max_length=100) if mark is not None else None
    return f"\n{snippet}" if snippet else ""


def _yaml_issue(path: str, err: yaml.YAMLError) -> Issue:
    """A YAML error as file:line:column, what is wrong, and the line with a caret."""
    if isinstance(err, _InputTooLarge):
        return Issue(_where(path, err.mark), f"{err.message}{_snippet(err.mark)}")
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        problem = err.problem or "invalid syntax"
        context = ""
        if err.context:
            context = f" ({err.context}"
            if err.context_mark is not None and err.context_mark is not mark:
                context += f" at line {err.context_mark.line + 1}, column {err.context_mark.column + 1}"
            context += ")"
        return Issue(_where(path, mark), f"is not valid YAML: {problem}{context}; "
                     f"fix the syntax at the caret{_snippet(mark)}")
    return Issue(path, f"is not valid YAML: {err}")


def load_experiment_text(text: str, path: str = "<input>") -> list:
    """The YAML documents of ``text``, loaded with the bounds above; ExperimentInvalid if bad."""
    documents = []
    loader = _BoundedLoader(text)
    try:
        while loader.check_data():
            documents.append(loader.get_data())
    except yaml.YAMLError as err:
        raise ExperimentInvalid([_yaml_issue(path, err)]) from None
    finally:
        loader.dispose()
    return documents


def load_experiment_file(path: str | Path) -> dict:
    """Read one NASExperiment from a YAML or JSON file; raise ExperimentInvalid if bad."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except IsADirectoryError:
        raise ExperimentInvalid([Issue(str(path), "is a directory; pass the NASExperiment YAML file")]) from None
    except OSError as err:
        raise ExperimentInvalid([Issue(str(path), f"cannot read the file: {err.strerror or err}; "
                                       "check the path and its permissions")]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ExperimentInvalid([Issue(str(path), f"is larger than {MAX_FILE_BYTES // 1024} KiB; "
                                       "a NASExperiment is a few KiB: is this the right file?")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ExperimentInvalid([Issue(str(path), f"is not UTF-8 text (byte {err.start}); "
                                       "save it as UTF-8 YAML or JSON")]) from None
    documents = [d for d in load_experiment_text(text, str(path)) if d is not None]
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
