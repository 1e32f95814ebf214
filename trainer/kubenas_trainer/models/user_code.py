"""Your model and your data in the built-in training loop (docs/byo.md).

``trial.model.builder: "mypkg.models:build"`` is called as
``build(architecture, input_shape, num_classes)`` (the architecture is the candidate's
decisions: the assignment of a ``parameters`` space, else the chain/cell genotype) and
must return a ``torch.nn.Module`` mapping ``N x C x H x W`` inputs to ``N x num_classes``
logits. ``trial.dataset.loader: "mypkg.data:load"`` is called as ``load()`` (or
``load(seed=...)`` if it takes a ``seed``) and returns the splits (see
:func:`dataset_from_loader`). With ``spec.oneShot``, ``trial.model.supernet:
"mypkg.models:build_supernet"`` is called as ``build_supernet(space, input_shape,
num_classes)`` and returns the weight-sharing supernet of the same network
(:func:`build_user_supernet`, docs/oneshot.md). Import paths are resolved in the trial's environment (the
experiment file's folder is on the path of a local trial); every error names the field.
"""
from __future__ import annotations

import importlib
import inspect
import traceback

import numpy as np
import torch
from torch import nn

from kubenas.contract.byo import assignment

from kubenas_trainer.data import LOADER_FIELDS, Dataset, Split, _channel_stats
from kubenas_trainer.errors import DataError, InvalidArchitecture, InvalidTrial


def resolve(path: str, field: str):
    """The object named ``module:attribute``; InvalidTrial naming ``field`` otherwise."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise InvalidTrial(f"{field}: {path!r} must be 'module:function', e.g. mypkg.models:build")
    module_name, attr = path.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any error while importing the user's module
        where = traceback.format_exception_only(type(exc), exc)[-1].strip()
        raise InvalidTrial(f"{field}: cannot import {module_name!r} ({where}); the module must be importable "
                           "in the trial (locally: next to the experiment file or installed; in a cluster: "
                           "in the trial image)") from None
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise InvalidTrial(f"{field}: module {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise InvalidTrial(f"{field}: {path} is not callable")
    return target


def build_user_model(builder: str, trial_architecture, input_shape, num_classes: int) -> nn.Module:
    build = resolve(builder, "trial.model.builder")
    decisions = assignment({"architecture": trial_architecture})
    try:
        model = build(trial_architecture if decisions is None else decisions, tuple(input_shape), num_classes)
    except Exception as exc:  # noqa: BLE001 - the user's code refused this candidate
        raise InvalidArchitecture(f"trial.model.builder {builder} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise InvalidTrial(f"trial.model.builder: {builder} returned {type(model).__name__}, not a torch.nn.Module")
    return model


SUPERNET_METHODS = ("select", "sample")


def build_user_supernet(target: str, space: dict, input_shape, num_classes: int) -> nn.Module:
    """``trial.model.supernet``'s module: a ``torch.nn.Module`` whose ``select(architecture)``
    picks the candidate (a genotype of ``space``, as ``model.builder`` receives it) that the
    next forward runs and whose ``sample(rng)`` returns a uniformly drawn one
    (``rng``: a ``random.Random``); InvalidTrial naming the field otherwise."""
    build = resolve(target, "trial.model.supernet")
    try:
        model = build(dict(space), tuple(input_shape), num_classes)
    except Exception as exc:  # noqa: BLE001 - the user's code refused this space
        raise InvalidTrial(f"trial.model.supernet {target} failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise InvalidTrial(f"trial.model.supernet: {target} returned {type(model).__name__}, not a torch.nn.Module")
    missing = [m for m in SUPERNET_METHODS if not callable(getattr(model, m, None))]
    if missing:
        raise InvalidTrial(f"trial.model.supernet: {target} returned a {type(model).__name__} without "
                           f"{' and '.join(m + '()' for m in missing)}: a supernet has select(architecture) and "
                           "sample(rng) (docs/oneshot.md)")
    return model


def _tensor(value, what: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise DataError(f"trial.dataset.loader: {what} must be a torch tensor or numpy array, got {type(value).__name__}")


def _split(value, what: str) -> Split:
    """(x, y) arrays, or a map-style dataset of (x, y) items."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        x, y = _tensor(value[0], f"{what} x"), _tensor(value[1], f"{what} y")
    elif isinstance(value, torch.utils.data.Dataset) and hasattr(value, "__len__"):
        items = [value[i] for i in range(len(value))]
        if not items:
            raise DataError(f"trial.dataset.loader: the {what} split is empty")
        x = torch.stack([_tensor(item[0], f"{what} x") if not isinstance(item[0], torch.Tensor) else item[0]
                         for item in items])
        y = torch.tensor([int(item[1]) for item in items])
    else:
        raise DataError(f"trial.dataset.loader: the {what} split must be (x, y) or a map-style torch Dataset, "
                        f"got {type(value).__name__}")
    if x.dim() == 2:
        x = x[:, :, None, None]  # N x F features: F channels of 1 x 1
    elif x.dim() == 3:
        x = x[:, None]            # N x H x W: one channel
    if x.dim() != 4:
        raise DataError(f"trial.dataset.loader: {what} x must be N x C x H x W (or N x H x W, N x F), "
                        f"got shape {tuple(x.shape)}")
    if y.dim() != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"trial.dataset.loader: {what} y must hold one class index per example "
                        f"({x.shape[0]}), got shape {tuple(y.shape)}")
    if y.dtype.is_floating_point or (len(y) and int(y.min()) < 0):
        raise DataError(f"trial.dataset.loader: {what} y must hold non-negative integer class indices")
    x = x if x.dtype == torch.uint8 else x.float()
    return Split(x.contiguous(), y.long().contiguous())


def dataset_from_loader(spec: dict, seed: int) -> Dataset:
    """The loader's splits as a Dataset. It returns ``(x_train, y_train, x_val, y_val)``,
    optionally ``+ (x_test, y_test)`` (else validation is the test split too), or a dict
    ``{"train": ..., "validation": ..., "test": ..., "classes": [...]}`` whose splits are
    ``(x, y)`` pairs or map-style torch Datasets. Inputs are normalised per channel with
    the training split's mean and std, as for the built-in datasets."""
    loader, seed = spec["loader"], spec.get("seed", seed)  # as load_dataset: the dataset's seed wins
    extra = sorted(set(spec) - set(LOADER_FIELDS))
    if extra:
        raise InvalidTrial(f"dataset.{extra[0]}: applies to the built-in datasets; a loader returns its own splits")
    load = resolve(loader, "trial.dataset.loader")
    try:
        takes_seed = "seed" in inspect.signature(load).parameters
    except (TypeError, ValueError):
        takes_seed = False
    try:
        raw = load(seed=seed) if takes_seed else load()
    except Exception as exc:  # noqa: BLE001 - the user's loader failed
        raise DataError(f"trial.dataset.loader {loader} failed: {type(exc).__name__}: {exc}") from None
    classes = None
    if isinstance(raw, dict):
        unknown = set(raw) - {"train", "validation", "test", "classes"}
        if unknown or "train" not in raw or "validation" not in raw:
            raise DataError(f"trial.dataset.loader: {loader} returned a dict with keys {sorted(raw)}; "
                            "expected train, validation, and optionally test and classes")
        train, val = _split(raw["train"], "train"), _split(raw["validation"], "validation")
        test = _split(raw["test"], "test") if raw.get("test") is not None else val
        classes = raw.get("classes")
    elif isinstance(raw, (tuple, list)) and len(raw) in (4, 6):
        train, val = _split(raw[0:2], "train"), _split(raw[2:4], "validation")
        test = _split(raw[4:6], "test") if len(raw) == 6 else val
    else:
        raise DataError(f"trial.dataset.loader: {loader} must return (x_train, y_train, x_val, y_val[, x_test, "
                        f"y_test]) or a dict with train and validation, got {type(raw).__name__}")
    if train.x.shape[1:] != val.x.shape[1:] or train.x.shape[1:] != test.x.shape[1:]:
        raise DataError("trial.dataset.loader: the splits' inputs have different shapes "
                        f"({tuple(train.x.shape[1:])}, {tuple(val.x.shape[1:])}, {tuple(test.x.shape[1:])})")
    num_classes = max(int(s.y.max()) + 1 for s in (train, val, test))
    if classes is not None:
        num_classes = max(num_classes, len(classes))
    if num_classes < 2:
        raise DataError("trial.dataset.loader: needs at least 2 classes")
    mean, std = _channel_stats(train.x, 1.0)
    names = [str(c) for c in classes] if classes else []
    return Dataset(name=loader, train=train, val=val, test=test, num_classes=num_classes,
                   classes=names + [str(i) for i in range(len(names), num_classes)], scale=1.0,
                   mean=[float(v) for v in mean], std=[float(v) for v in std], info={"loader": loader, "seed": seed})
