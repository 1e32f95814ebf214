"""What each task (``trial.task``) reads: its dataset names and dataset fields.

One table for the places that check a dataset spec: ``kubenas validate`` / the operator
(``kubenas.api.validation``) and the trainer's task registry (``kubenas_trainer.tasks``,
which adds how each task loads its data, its stem and its exported input); the CRD enums
are checked against it (tests/contract). docs/tasks.md describes the fields.
"""
from __future__ import annotations

from . import METRIC_GOALS, TASKS

COMMON_DATASET_FIELDS = ("name", "path", "validationFraction", "seed", "limit", "validation", "groupsFile")

TASK_DATASETS: dict[str, tuple[str, ...]] = {
    "image-classification": ("digits", "mnist", "fashion-mnist", "cifar10", "npz", "image-folder"),
    "audio-classification": ("npz", "audio-folder"),
    "sequence-classification": ("npz", "jsonl"),
    "speech-recognition": ("npz", "manifest"),
    "object-detection": ("coco",),
}
TASK_DATASET_FIELDS: dict[str, tuple[str, ...]] = {
    "image-classification": COMMON_DATASET_FIELDS + ("layout", "imageSize"),
    "audio-classification": COMMON_DATASET_FIELDS + ("frontEnd", "augment"),
    "sequence-classification": COMMON_DATASET_FIELDS + ("sequence",),
    "speech-recognition": COMMON_DATASET_FIELDS + ("frontEnd", "augment", "vocabulary"),
    "object-detection": ("name", "path", "validationFraction", "seed", "limit", "validation", "imageSize"),
}
# The validation metrics each task measures (what objective.metric may name), in the order its
# history records them; the first is its default objective. Their goals: METRIC_GOALS.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "image-classification": ("accuracy", "loss"),
    "audio-classification": ("accuracy", "loss"),
    "sequence-classification": ("accuracy", "loss"),
    "speech-recognition": ("wer", "cer", "loss"),
    "object-detection": ("mAP", "mAP50"),
}
# Datasets read from files (dataset.path required); the others are built in.
DATASETS_WITH_PATH = ("mnist", "fashion-mnist", "cifar10", "npz", "image-folder", "audio-folder", "jsonl", "manifest",
                      "coco")
# The rules of dataset.validation (kubenas_trainer.data.splits); absent: group when the data has groups, else random.
VALIDATION_RULES = ("random", "group", "files", "kfold")

assert set(TASK_DATASETS) == set(TASKS) == set(TASK_DATASET_FIELDS), "a task without its datasets"
assert set(TASK_METRICS) == set(TASKS), "a task without its metrics"
assert {m for metrics in TASK_METRICS.values() for m in metrics} <= set(METRIC_GOALS), "a metric without its goal"

# metric -> goal of each task's metrics (TASK_METRICS' order): what the trainer's tasks
# measure and the trainer defaults objective.goal to, read from the one table of goals.
TASK_METRIC_GOALS: dict[str, dict[str, str]] = {
    task: {metric: METRIC_GOALS[metric] for metric in metrics} for task, metrics in TASK_METRICS.items()}


def goal_of(metric: str) -> str:
    """The goal of ``metric`` (METRIC_GOALS); ``maximize`` for a metric kubenas does not
    know (a user program's own)."""
    return METRIC_GOALS.get(metric, "maximize")
