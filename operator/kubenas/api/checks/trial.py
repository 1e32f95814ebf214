"""What one trial runs: spec.trial's task, dataset, training schedule, your own command
or model builder, and export."""
from __future__ import annotations

import difflib
import re

from kubenas.contract.tasks import DATASETS_WITH_PATH, TASK_DATASET_FIELDS, TASK_DATASETS

from ..issues import Issue


def trial_issues(spec: dict) -> list[Issue]:
    dataset = spec["trial"]["dataset"]
    if dataset.get("loader") and dataset.get("name"):
        return [Issue("spec.trial.dataset.name", f"is set, and so is dataset.loader ({dataset['loader']}): "
                      "keep one, name for a built-in dataset or loader for your own")]
    if dataset.get("loader"):
        extra = sorted(set(dataset) - {"loader", "seed"})
        if extra:
            return [Issue(f"spec.trial.dataset.{extra[0]}", "applies to the built-in datasets; your loader "
                          "returns its own splits (it gets the seed): remove it")]
        return command_issues(spec)
    task = spec["trial"]["task"]
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
        + command_issues(spec)


def _validation_issues(validation) -> list[Issue]:
    """dataset.validation: the fields its type needs, and only those (kubenas_trainer.data.splits)."""
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


def _groups_file_issues(dataset: dict) -> list[Issue]:
    """dataset.groupsFile matches example names, so it needs a dataset read from files."""
    if dataset.get("groupsFile") and dataset["name"] not in DATASETS_WITH_PATH:
        return [Issue("spec.trial.dataset.groupsFile", f"dataset {dataset['name']} is built in and has no example "
                      f"names to match; remove groupsFile or use a dataset read from files "
                      f"({', '.join(DATASETS_WITH_PATH)})")]
    return []


def _noise_files_issues(dataset: dict) -> list[Issue]:
    """augment.noiseFiles is mixed with probability noiseProbability: refused when that is 0."""
    augment = dataset.get("augment") or {}
    if augment.get("noiseFiles") and not augment.get("noiseProbability"):
        return [Issue("spec.trial.dataset.augment.noiseFiles", "mixed into a take with probability "
                      "noiseProbability, which is 0; set noiseProbability above 0 or remove noiseFiles")]
    return []


def schedule_issues(spec: dict) -> list[Issue]:
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


def command_issues(spec: dict) -> list[Issue]:
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


def user_code_issues(spec: dict) -> list[Issue]:
    """A parameters space is built by the user's code: the built-in trainer builds chain and
    cell architectures only (kubenas.contract.spaces: built_by_trainer)."""
    from kubenas.contract.spaces import trainer_built_spaces

    built = trainer_built_spaces()
    kind = spec["searchSpace"]["type"]
    trial = spec["trial"]
    if kind in built or trial.get("command") or (trial.get("model") or {}).get("builder"):
        return []
    return [Issue("spec.trial.command", f"searchSpace.type {kind} needs your training code: the built-in "
                  f"trainer builds only {' and '.join(built)} architectures. Set trial.command "
                  "(your program receives the assignment, docs/byo.md) or trial.model.builder "
                  "(a callable that builds your model from it)")]


def export_issues(spec: dict) -> list[Issue]:
    """trial.export (formats, opset): the rules the schema cannot say (contract.settings)."""
    from kubenas.contract.settings import export_problem

    problem = export_problem(spec["trial"].get("export"), spec["trial"]["task"])
    if problem is None:
        return []
    where, message = problem
    return [Issue("spec.trial.export" + (f".{where}" if where else ""), message)]
