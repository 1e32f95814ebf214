"""The task registry: one entry per task name (docs/tasks.md; docs/architecture.md "Adding a task").

One entry per name of ``kubenas.contract.TASKS``; the trainer refuses to import when
the two differ. An entry says which datasets (and dataset fields) the task reads, its
metrics with their goals (what ``objective.metric`` may name, and its default goal:
``settings.resolve_trial`` reads them here) and how ``load`` turns a dataset spec into
a ``TrialTask`` (``interface.py``), the only thing the training loop knows of a task.

Image, audio and sequence classification are one implementation,
``classification.ClassificationTask``, given different data, stems and front ends:

- the dataset: the splits the network is trained on (images, log-mel features, padded
  sequences) with their normalisation;
- ``stem``: a trainable module before the searched network (the token embedding);
- ``train_transform``: the per-batch training transform (audio augmentation);
- ``front``: the fixed module that turns what a user has (a waveform, ``N x T x F``
  floats) into what the network was trained on; the exported model starts with it;
- ``input_doc`` / ``export_example`` / ``export_input``: what the exported model takes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from kubenas.contract import GOALS, TASKS
from kubenas.contract.tasks import TASK_DATASET_FIELDS, TASK_DATASETS, TASK_METRIC_GOALS

from kubenas_trainer.tasks import audio
from kubenas_trainer.tasks import detection
from kubenas_trainer.tasks import sequence
from kubenas_trainer.tasks import speech
from kubenas_trainer.tasks.classification import ClassificationTask
from kubenas_trainer.data import (
    Dataset,
    Split,
    _channel_stats,
    check_spec,
    load_dataset,
    num_classes_of,
    read_raw,
    split_indices,
    split_info,
    take,
)
from kubenas_trainer.errors import InvalidTrial
from kubenas_trainer.tasks.interface import TensorSpec, TrialTask


@dataclass(frozen=True)
class Task:
    """A registry entry: what a trial of this task may ask for, and how it is loaded."""
    name: str
    datasets: tuple[str, ...]
    fields: tuple[str, ...]
    load: Callable[[dict, int, torch.device], TrialTask]
    metrics: dict[str, str]  # metric -> goal, the loaded task's ``metrics``

    def __post_init__(self):
        bad = {m: g for m, g in self.metrics.items() if g not in GOALS}
        if not self.metrics or bad:
            raise ValueError(f"task {self.name}: every metric needs a goal of {', '.join(GOALS)}, got {bad or 'none'}")

    @property
    def metric(self) -> str:
        """The default objective metric: the first."""
        return next(iter(self.metrics))


# --------------------------------------------------------------------------- image


def _load_image(spec: dict, seed: int, device: torch.device) -> ClassificationTask:
    return ClassificationTask(load_dataset(spec, seed))


# --------------------------------------------------------------------------- audio


def _load_audio(spec: dict, seed: int, device: torch.device) -> ClassificationTask:
    fe = audio.check_front_end(spec.get("frontEnd"))
    aug = audio.check_augment(spec.get("augment"))
    raw = read_raw(spec, audio.read_audio_npz if spec["name"] == "npz" else audio.read_audio_folder)
    num_classes, classes = num_classes_of(raw, spec["name"])
    train_idx, val_idx, test_idx = split_indices(raw, spec, seed)
    feats_train, feats_test = audio.cached_features(raw, tuple(sorted(fe.items())), str(device))
    y_train, y_test = torch.from_numpy(np.array(raw.y_train)), torch.from_numpy(np.array(raw.y_test))

    def part(x, y, idx):
        idx_t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
        return Split(x.index_select(0, idx_t.to(x.device)), y[idx_t])

    train, val, test = part(feats_train, y_train, train_idx), part(feats_train, y_train, val_idx), \
        part(feats_test, y_test, test_idx)
    mean, std = _channel_stats(train.x.cpu(), 1.0)
    frontend = audio.LogMel(fe)
    if aug["timeShiftSeconds"] > 0 or aug["noiseProbability"] > 0:
        # Augmenting waveforms: the training split stays waveforms, the transform makes features per batch.
        rates = raw.extra["rates_train"]
        wave = audio.waveforms(raw.x_train[train_idx], rates if np.isscalar(rates) else rates[train_idx], fe, device)
        train = Split(wave, train.y)
    data = Dataset(name=spec["name"], train=train, val=val, test=test, num_classes=num_classes, classes=classes,
                   scale=1.0, mean=[float(v) for v in mean], std=[float(v) for v in std],
                   info=split_info(raw, spec, seed, train_idx, val_idx))
    samples = audio.clip_samples(fe)
    noise = audio.read_noise(aug["noiseFiles"], Path(os.path.expanduser(str(spec["path"]))), fe) \
        if aug["noiseFiles"] else None

    def transform(generator):
        if not audio.Augment.needed(aug):
            return None
        return audio.Augment(aug, audio.LogMel(fe).to(device), fe, generator, noise)

    return ClassificationTask(
        data, train_transform=transform, front=frontend, export_input=TensorSpec("input", "FP32", (-1, -1)),
        input_doc=(f"float32 N x L mono waveform at {fe['sampleRate']} Hz in [-1, 1], any L (trained on "
                   f"L = {samples}; longer clips are centre-cropped, shorter ones zero-padded); the log-mel front "
                   "end and normalisation are built in. classify_features(logmel) takes the front end's output "
                   "instead"),
        export_example=lambda n: torch.randn(n, samples) * 0.1, variable_length=True,
        metadata={"frontEnd": fe, "sampleRate": fe["sampleRate"], "featureShape": list(data.input_shape)})


# --------------------------------------------------------------------------- sequence


class FloatSequenceFront(nn.Module):
    """``N x T x F`` float sequences -> ``N x F x 1 x T`` (features as channels)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2).unsqueeze(2)


def _load_sequence(spec: dict, seed: int, device: torch.device) -> ClassificationTask:
    seq = sequence.check_sequence(spec.get("sequence"))
    raw = read_raw(spec, sequence.read_jsonl if spec["name"] == "jsonl" else sequence.read_sequence_npz)
    num_classes, classes = num_classes_of(raw, spec["name"])
    train_idx, val_idx, test_idx = split_indices(raw, spec, seed)
    x_tr, x_te, vocabulary, width = sequence.padded(raw, seq)
    train, val = take(x_tr, raw.y_train, train_idx), take(x_tr, raw.y_train, val_idx)
    test = take(x_te, raw.y_test, test_idx)
    info = split_info(raw, spec, seed, train_idx, val_idx)
    length = int(x_tr.shape[-1])
    if width is None:
        data = Dataset(name=spec["name"], train=train, val=val, test=test, num_classes=num_classes, classes=classes,
                       scale=1.0, mean=[], std=[], info=info, input_kind="tokens")
        return ClassificationTask(
            data, stem=lambda: sequence.TokenStem(vocabulary, seq["embeddingDim"], seq["padId"]),
            export_input=TensorSpec("input", "INT64", (-1, -1)),
            input_doc=(f"int64 N x T token ids, any length T >= 1 (trained on T = {length}, padded with "
                       f"{seq['padId']}); ids outside 0..{vocabulary - 1} count as padding"),
            export_example=lambda n: torch.randint(0, vocabulary, (n, length)), variable_length=True,
            metadata={"vocabulary": vocabulary, "padId": seq["padId"], "maxLength": length,
                      "embeddingDim": seq["embeddingDim"]})
    mean, std = _channel_stats(train.x, 1.0)
    data = Dataset(name=spec["name"], train=train, val=val, test=test, num_classes=num_classes, classes=classes,
                   scale=1.0, mean=[float(v) for v in mean], std=[float(v) for v in std], info=info)
    return ClassificationTask(
        data, front=FloatSequenceFront(), export_input=TensorSpec("input", "FP32", (-1, -1, width)),
        input_doc=f"float32 N x T x {width} sequences, any length T >= 1 (trained on T = {length}); "
                  "normalisation is built in",
        export_example=lambda n: torch.randn(n, length, width), variable_length=True,
        metadata={"features": width, "maxLength": length})


# --------------------------------------------------------------------------- registry

_LOADERS = {"image-classification": _load_image, "audio-classification": _load_audio,
            "sequence-classification": _load_sequence}
TASK_REGISTRY: dict[str, Task] = {
    name: Task(name, TASK_DATASETS[name], TASK_DATASET_FIELDS[name], load, TASK_METRIC_GOALS[name])
    for name, load in _LOADERS.items()}
TASK_REGISTRY["speech-recognition"] = Task(
    "speech-recognition", TASK_DATASETS["speech-recognition"], TASK_DATASET_FIELDS["speech-recognition"],
    speech.load_speech, TASK_METRIC_GOALS["speech-recognition"])
TASK_REGISTRY["object-detection"] = Task(
    "object-detection", TASK_DATASETS["object-detection"], TASK_DATASET_FIELDS["object-detection"],
    detection.load_detection, TASK_METRIC_GOALS["object-detection"])

if set(TASK_REGISTRY) != set(TASKS):
    raise ImportError(f"tasks of kubenas.contract and kubenas_trainer.tasks differ: "
                      f"{sorted(set(TASKS) ^ set(TASK_REGISTRY))}")


def load_task(task: str, spec: dict | None, seed: int, device: torch.device) -> TrialTask:
    """The data of a trial's task (InvalidTrial naming the field for a bad spec)."""
    entry = TASK_REGISTRY.get(task)
    if entry is None:
        raise InvalidTrial(f"task: {task!r} is not supported (supported: {', '.join(TASK_REGISTRY)})")
    if spec is None and task != "image-classification":
        raise InvalidTrial(f"dataset: required for task {task}")
    checked = check_spec(spec, entry.fields, entry.datasets, task)
    split_seed = checked.get("seed", seed)
    return entry.load(checked, split_seed, device)


def open_task(task: str, spec: dict | None, seed: int, device: torch.device) -> TrialTask:
    """The ``TrialTask`` a trial trains: ``load_task``, or the image classification of
    the user's ``dataset.loader`` (user_code.py), which returns its own splits."""
    if (spec or {}).get("loader"):
        from kubenas_trainer.models.user_code import dataset_from_loader

        return ClassificationTask(dataset_from_loader(spec, seed))
    return load_task(task, spec, (spec or {}).get("seed", seed), device)
