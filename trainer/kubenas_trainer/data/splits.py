"""The validation split of every task: which training examples validate a trial.

``dataset.validation`` (docs/tasks.md) picks the rule; without it the rule is ``group``
when the dataset carries a group per example (a speaker, a patient, a session) and
``random`` otherwise:

- ``random``: a stratified ``validationFraction`` of every class (the old behaviour;
  with groups it lets the same speaker be in both splits, which rewards memorising voices).
- ``group``: whole groups are held out until about ``validationFraction`` of the
  examples are, so no group is in both splits (what a test set of unseen speakers measures).
- ``files``: the examples whose names are listed in ``validation.files`` (one per line,
  e.g. Speech Commands' ``validation_list.txt``) validate, the rest train.
- ``kfold``: the groups (or, without groups, the examples) are dealt into ``folds`` folds
  from the split seed; fold ``fold`` validates. For small data, run one experiment per fold.

Groups come from the dataset (npz ``groups_train``, a folder level, a speaker prefix,
JSONL ``group``) or, replacing those, from ``dataset.groupsFile``: a CSV of
``name,group`` lines naming every training example.

All rules are pure functions of (labels, groups, names, spec, seed).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kubenas_trainer.errors import DataError, InvalidTrial

RULES = ("random", "group", "files", "kfold")
VALIDATION_FIELDS = ("type", "files", "folds", "fold")
MAX_FOLDS = 100


def check_validation(value, has_path: bool = True) -> dict | None:
    """``dataset.validation`` checked (InvalidTrial naming the field), or None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidTrial(f"dataset.validation: must be an object such as {{type: group}}, got {value!r}")
    unknown = sorted(set(value) - set(VALIDATION_FIELDS))
    if unknown:
        raise InvalidTrial(f"dataset.validation.{unknown[0]}: unknown field (known: {', '.join(VALIDATION_FIELDS)})")
    rule = value.get("type")
    if rule not in RULES:
        raise InvalidTrial(f"dataset.validation.type: {rule!r} is not one of {', '.join(RULES)}")
    if rule == "files" and not (isinstance(value.get("files"), str) and value["files"]):
        raise InvalidTrial("dataset.validation.files: required for type files: the path of a file that lists "
                           "the validation examples, one name per line")
    if rule != "files" and "files" in value:
        raise InvalidTrial(f"dataset.validation.files: only type files reads a list (type is {rule})")
    if rule == "kfold":
        folds = value.get("folds")
        if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
            raise InvalidTrial(f"dataset.validation.folds: must be an integer from 2 to {MAX_FOLDS}, got {folds!r}")
        fold = value.get("fold", 0)
        if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
            raise InvalidTrial(f"dataset.validation.fold: must be an integer from 0 to {folds - 1}, got {fold!r}")
        return {"type": rule, "folds": folds, "fold": fold}
    for key in ("folds", "fold"):
        if key in value:
            raise InvalidTrial(f"dataset.validation.{key}: only type kfold has folds (type is {rule})")
    return dict(value)


def stratified_split(y: np.ndarray, fraction: float, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) index arrays, each shuffled; ``fraction`` of every class held out."""
    kept, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        k = int(round(len(idx) * fraction))
        if len(idx) > 1:
            k = min(max(k, 1), len(idx) - 1)
        held.append(idx[:k])
        kept.append(idx[k:])
    kept_all, held_all = np.concatenate(kept), np.concatenate(held)
    return kept_all[rng.permutation(len(kept_all))], held_all[rng.permutation(len(held_all))]


def group_split(groups: np.ndarray, fraction: float, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out): whole groups, in a seeded order, held out until ``fraction`` of the
    examples are (at least one group, never all of them)."""
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise DataError(f"dataset: a group-aware validation split needs at least 2 groups, found {len(names)} "
                        "(set dataset.validation.type: random to split examples instead)")
    order = rng.permutation(len(names))
    target, taken, held_groups = fraction * len(groups), 0, []
    for g in order[:-1]:
        if held_groups and taken + counts[g] / 2 > target:
            break
        held_groups.append(g)
        taken += counts[g]
    held_mask = np.isin(inverse, held_groups)
    kept, held = np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
    return kept[rng.permutation(len(kept))], held[rng.permutation(len(held))]


def _fold_split(y, groups, folds: int, fold: int, rng) -> tuple[np.ndarray, np.ndarray]:
    units = groups if groups is not None else np.arange(len(y))
    names, inverse = np.unique(units, return_inverse=True)
    if len(names) < folds:
        raise DataError(f"dataset.validation.folds: {folds} folds need at least {folds} "
                        f"{'groups' if groups is not None else 'examples'}, found {len(names)}")
    fold_of = np.empty(len(names), dtype=np.int64)
    fold_of[rng.permutation(len(names))] = np.arange(len(names)) % folds
    held_mask = fold_of[inverse] == fold
    kept, held = np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
    return kept[rng.permutation(len(kept))], held[rng.permutation(len(held))]


def _read_list(path: str, root: Path | None, field: str = "dataset.validation.files") -> list[str]:
    p = Path(os.path.expanduser(path))
    if not p.is_absolute() and root is not None:
        p = (root if root.is_dir() else root.parent) / p
    if not p.is_file():
        raise DataError(f"{field}: {p} is not a file (a relative path is read from dataset.path's folder)")
    return [line.strip() for line in p.read_text().splitlines() if line.strip() and not line.startswith("#")]


def check_groups_file(value) -> str | None:
    """``dataset.groupsFile`` checked (InvalidTrial naming the field), or None when absent."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidTrial(f"dataset.groupsFile: must be the path of a CSV file of name,group lines, got {value!r}")
    return value


def groups_from_file(names, path: str, root: Path | None) -> np.ndarray:
    """The group of every training example from ``dataset.groupsFile``: one ``name,group``
    line per example (``#`` comments and blank lines skipped; names as in
    ``validation.files``). Every training example must be listed (DataError naming one
    that is not); listed names that are not training examples (test files) are ignored."""
    if names is None:
        raise DataError("dataset.groupsFile: this dataset has no example names to match "
                        "(npz: add a names_train array)")
    groups: dict[str, str] = {}
    for number, line in enumerate(_read_list(path, root, "dataset.groupsFile"), 1):
        name, sep, group = line.rpartition(",")
        if not sep or not name.strip() or not group.strip():
            raise DataError(f"dataset.groupsFile: line {number} {line!r} is not name,group")
        groups[name.strip()] = group.strip()
    missing = [str(n) for n in names if str(n) not in groups]
    if missing:
        raise DataError(f"dataset.groupsFile: {len(missing)} training example(s) have no group, e.g. "
                        f"{missing[0]!r}; add a line {missing[0]},<group> for each")
    return np.array([groups[str(n)] for n in names])


def validation_rule(spec: dict, groups) -> str:
    """The rule a dataset spec and its groups give (the documented default)."""
    validation = spec.get("validation")
    if validation:
        return validation["type"]
    return "group" if groups is not None else "random"


def split_train_validation(y: np.ndarray, groups, names, spec: dict, seed: int,
                           root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into the training examples (see the module docstring)."""
    rule = validation_rule(spec, groups)
    rng = np.random.RandomState(seed)
    fraction = spec["validationFraction"]
    if rule == "random":
        return stratified_split(y, fraction, rng)
    if rule == "group":
        if groups is None:
            raise DataError("dataset.validation.type: group needs a group per example (npz groups_train, a "
                            "folder level per group or a speaker prefix; docs/tasks.md), and this dataset has none")
        return group_split(groups, fraction, rng)
    if rule == "kfold":
        v = spec["validation"]
        return _fold_split(y, groups, v["folds"], v["fold"], rng)
    listed = set(_read_list(spec["validation"]["files"], root))
    if names is None:
        raise DataError("dataset.validation.files: this dataset has no example names to match "
                        "(npz: add a names_train array)")
    held_mask = np.array([str(n) in listed for n in names])
    if not held_mask.any():
        raise DataError(f"dataset.validation.files: none of the {len(listed)} listed names is a training "
                        f"example (names look like {str(names[0])!r})")
    if held_mask.all():
        raise DataError("dataset.validation.files: lists every training example; nothing is left to train on")
    return np.flatnonzero(~held_mask), np.flatnonzero(held_mask)
