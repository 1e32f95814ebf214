"""Datasets for image classification trials, and the deterministic splits.

``load_dataset(spec, seed)`` reads the ``dataset`` object of a trial (docs/formats.md)
and returns a ``Dataset``: three in-memory splits (train / validation / test) of raw
images ``N x C x H x W`` (uint8 or float32) with int64 labels, plus what is needed to
normalise them: ``x * scale`` maps pixels to [0, 1], then per-channel ``(x - mean) / std``
with mean and std measured on the training split.

- The validation split is carved out of the training data from ``seed`` by the rule of
  ``dataset.validation`` (``splits.py``): by group when the dataset carries groups
  (npz ``groups_train``), else stratified by class; the same seed gives the same split. The test split is the dataset's own
  (``digits`` has none, so a fixed stratified 20% is held out with a constant seed,
  independent of the trial's seed). The test split is never used for the reward.
- ``limit: N`` caps every split at N examples (a random, roughly class-balanced
  subset): for tests and smoke runs.

Problems with the spec raise InvalidTrial naming the field; problems with the files
raise DataError.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kubenas_trainer.errors import DataError, InvalidTrial
from kubenas_trainer.data.splits import check_groups_file, check_validation, groups_from_file, split_train_validation, stratified_split

from kubenas.contract.datasets import layout_problem
from kubenas.contract.tasks import COMMON_DATASET_FIELDS as COMMON_FIELDS
from kubenas.contract.tasks import TASK_DATASET_FIELDS, TASK_DATASETS

IMAGE_DATASETS = TASK_DATASETS["image-classification"]
# Every dataset name and field of every task (the CRDs list these; a task refuses the ones it does not read).
DATASETS = tuple(dict.fromkeys(n for names in TASK_DATASETS.values() for n in names))
SPEC_FIELDS = tuple(dict.fromkeys([*(f for fields in TASK_DATASET_FIELDS.values() for f in fields), "loader"]))
# With a loader (the user's data, user_code.py) only these apply: it returns its own splits.
LOADER_FIELDS = ("loader", "seed")
DEFAULT_VALIDATION_FRACTION = 0.2
DIGITS_TEST_FRACTION = 0.2
DIGITS_TEST_SEED = 20240601  # constant: the digits test split never depends on a trial
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")

FASHION_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle boot")


@dataclass
class Split:
    x: torch.Tensor  # N x C x H x W, uint8 or float32, raw units (multiply by Dataset.scale)
    y: torch.Tensor  # N, int64

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(eq=False)  # hashed by identity: the per-process feature cache keys on it
class Raw:
    """What a reader returns: the training and test examples as arrays, before any split.

    ``groups`` (one per training example: speaker, patient, session) and ``names`` (one
    per training example: what a validation file list names) are optional."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    scale: float = 1.0
    groups: np.ndarray | None = None
    names: np.ndarray | None = None
    extra: dict = field(default_factory=dict)  # reader facts a task needs (sample rate, vocabulary)


@dataclass
class Dataset:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    classes: list[str]
    scale: float
    mean: list[float]
    std: list[float]
    info: dict = field(default_factory=dict)
    # What the model is fed: "image" (float N x C x H x W, normalised by ``affine``) or
    # "tokens" (int64 N x T, fed unnormalised to the task's embedding stem).
    input_kind: str = "image"

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example as the model takes it (the validation split always holds model
        inputs; an audio training split may hold waveforms that augmentation turns into features)."""
        return tuple(int(v) for v in self.val.x.shape[1:])

    def example(self, n: int = 1, device=None) -> torch.Tensor:
        """A batch of ``n`` inputs of the model's input type and shape (for MACs and latency)."""
        if self.input_kind == "tokens":
            return torch.zeros(n, *self.input_shape, dtype=torch.int64, device=device)
        return torch.randn(n, *self.input_shape, device=device)

    def affine(self, device=None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(a, b) of shape 1 x C x 1 x 1 so that ``x * a + b`` is the normalised input
        (None for token inputs, which are not normalised)."""
        if self.input_kind == "tokens":
            return None
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        a, b = self.scale / std, -mean / std
        return a.to(device), b.to(device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        affine = self.affine(x.device)
        if affine is None:
            return x
        a, b = affine
        return x.float() * a + b


# --------------------------------------------------------------------------- readers
# Each returns (x_train, y_train, x_test, y_test, classes, scale), x as N x C x H x W.


def _read_digits(spec: dict):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.uint8)[:, None]  # values 0..16
    y = bunch.target.astype(np.int64)
    train_idx, test_idx = stratified_split(y, DIGITS_TEST_FRACTION, np.random.RandomState(DIGITS_TEST_SEED))
    classes = [str(c) for c in bunch.target_names]
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], classes, 1.0 / 16.0


def _open_maybe_gz(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def read_idx(path: Path) -> np.ndarray:
    """An array from an idx file (the MNIST format), optionally gzipped."""
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{path}: not an idx file (bad magic number)")
    if data[2] != 0x08:
        raise DataError(f"{path}: idx element type 0x{data[2]:02x} is not supported (only unsigned bytes)")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    expected = int(np.prod(dims))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != expected:
        raise DataError(f"{path}: header says {dims} ({expected} values) but the file has {body.size}")
    return body.reshape(dims)


def _find_file(root: Path, subdirs: tuple[str, ...], names: tuple[str, ...], what: str) -> Path:
    tried = []
    for sub in subdirs:
        for name in names:
            for candidate in (root / sub / name, root / sub / (name + ".gz")):
                if candidate.is_file():
                    return candidate
                tried.append(str(candidate))
    raise DataError(f"{what} not found under {root} (looked for {', '.join(names)} [.gz] in "
                    f"{', '.join(repr(s or '.') for s in subdirs)})")


def _read_idx_dataset(spec: dict, flavour: str):
    root = _require_path(spec)
    sub = "MNIST" if flavour == "mnist" else "FashionMNIST"
    subdirs = ("", "raw", f"{sub}/raw", sub, flavour)
    arrays = []
    for stem in ("train-images", "train-labels", "t10k-images", "t10k-labels"):
        kind = "idx3" if stem.endswith("images") else "idx1"
        path = _find_file(root, subdirs, (f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte"), f"{flavour} {stem}")
        arrays.append(read_idx(path))
    x_tr, y_tr, x_te, y_te = arrays
    for x, y, which in ((x_tr, y_tr, "train"), (x_te, y_te, "t10k")):
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise DataError(f"{flavour} {which}: images {x.shape} and labels {y.shape} do not match")
    classes = [str(i) for i in range(10)] if flavour == "mnist" else list(FASHION_CLASSES)
    return x_tr[:, None], y_tr.astype(np.int64), x_te[:, None], y_te.astype(np.int64), classes, 1.0 / 255.0


class UnsafePickle(DataError):
    """A pickle that names a callable a CIFAR-10 batch never holds: refused, not run."""


# Everything a CIFAR-10 python batch (dicts, lists, bytes, str, ints and numpy arrays)
# needs to be unpickled; any other global (os.system, builtins.eval, ...) is refused
# before it is called. numpy.core is numpy 1's name of numpy._core.
_CIFAR_GLOBALS = frozenset(
    [(f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")]
    + [(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")]
    + [("numpy", "ndarray"), ("numpy", "dtype")]
    + [("_codecs", "encode")]  # bytes in protocol-2 pickles written by Python 3
)


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise UnsafePickle(f"refers to {module}.{name}, which a CIFAR-10 batch never holds")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        raise UnsafePickle("uses persistent ids, which a CIFAR-10 batch never does")


def load_cifar_pickle(path: Path) -> dict:
    """One CIFAR-10 python batch: unpickled with only the globals a batch needs."""
    with open(path, "rb") as f:
        try:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        except UnsafePickle as exc:
            raise UnsafePickle(
                f"cifar10: refused to unpickle {path}: it {exc.message}. It is not a CIFAR-10 python "
                "batch (or was tampered with): replace it with the files of cifar-10-python.tar.gz "
                "from https://www.cs.toronto.edu/~kriz/cifar.html") from None
    if not isinstance(batch, dict):
        raise DataError(f"cifar10: {path} holds a {type(batch).__name__}, not a CIFAR-10 batch (a dict); "
                        "replace it with the files of cifar-10-python.tar.gz")
    return batch


def _read_cifar10(spec: dict):
    root = _require_path(spec)
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root

    def load(name: str) -> dict:
        path = base / name
        if not path.is_file():
            raise DataError(f"cifar10: {path} not found (expected the python-pickle batches "
                            "data_batch_1..5 and test_batch)")
        try:
            return load_cifar_pickle(path)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - any unpickling problem is a data problem
            raise DataError(f"cifar10: cannot read {path}: {exc}") from exc

    def arrays(batch: dict, name: str):
        try:
            x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(batch[b"labels"], dtype=np.int64)
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"cifar10: {name} is not a CIFAR-10 batch ({exc})") from exc
        return x, y

    train = [arrays(load(f"data_batch_{i}"), f"data_batch_{i}") for i in range(1, 6)]
    x_te, y_te = arrays(load("test_batch"), "test_batch")
    classes = [str(i) for i in range(10)]
    if (base / "batches.meta").is_file():
        meta = load("batches.meta")
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", classes)]
    x_tr = np.concatenate([x for x, _ in train])
    y_tr = np.concatenate([y for _, y in train])
    return x_tr, y_tr, x_te, y_te, classes, 1.0 / 255.0


def _to_nchw(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim != 4:
        raise DataError(f"{where}: images must be N x H x W or N x C x H x W, got shape {x.shape}")
    if layout == "auto":
        layout = "NHWC" if x.shape[3] in (1, 3, 4) and x.shape[1] not in (1, 3, 4) else "NCHW"
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if layout == "NHWC" else x


NPZ_SPLITS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(spec: dict, required: tuple[str, ...] = NPZ_SPLITS, holds: str | None = None
             ) -> tuple[Path, dict[str, np.ndarray]]:
    """``dataset.path`` and every array of that ``.npz`` (read without unpickling):
    DataError when it is not a file, cannot be read, or lacks a ``required`` array (the
    message says what it has, or ``holds``: what such a file holds)."""
    path = _require_path(spec)
    if not path.is_file():
        raise DataError(f"npz: {path} is not a file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in required if k not in npz.files]
            if missing:
                raise DataError(f"npz: {path} lacks the array(s) {', '.join(missing)} "
                                f"({holds or 'has ' + (', '.join(npz.files) or 'none')})")
            return path, {k: npz[k] for k in npz.files}
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"npz: cannot read {path}: {exc}") from exc


def _read_npz(spec: dict):
    layout = spec.get("layout", "auto")
    path, arrays = read_npz(spec)
    names = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    side = {k: arrays[k] for k in ("groups_train", "names_train") if k in arrays}
    xs, ys = [], []
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        x = _to_nchw(x, layout, f"npz x_{part}")
        y = np.asarray(y).reshape(-1)
        if x.shape[0] != y.shape[0]:
            raise DataError(f"npz: x_{part} has {x.shape[0]} images but y_{part} has {y.shape[0]} labels")
        if y.size and (not np.issubdtype(y.dtype, np.number) or np.any(y != np.round(y)) or y.min() < 0):
            raise DataError(f"npz: y_{part} must hold non-negative integer class indices")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.number):
                raise DataError(f"npz: x_{part} has non-numeric dtype {x.dtype}")
            x = x.astype(np.float32)
            if not np.all(np.isfinite(x)):
                raise DataError(f"npz: x_{part} contains NaN or infinite values")
        xs.append(x)
        ys.append(y.astype(np.int64))
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise DataError(f"npz: x_train images are {xs[0].shape[1:]} but x_test images are {xs[1].shape[1:]}")
    if xs[0].dtype != xs[1].dtype:
        xs = [x.astype(np.float32) for x in xs]
    num_classes = int(max(ys[0].max(initial=0), ys[1].max(initial=0))) + 1
    classes = names if names and len(names) >= num_classes else [str(i) for i in range(num_classes)]
    scale = 1.0 / 255.0 if xs[0].dtype == np.uint8 else 1.0
    return Raw(xs[0], ys[0], xs[1], ys[1], classes, scale, *npz_side_arrays(side, len(ys[0]), path))


def npz_side_arrays(side: dict, n: int, path) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(groups, names) of an npz's ``groups_train`` / ``names_train``, checked against n examples."""
    out = []
    for key in ("groups_train", "names_train"):
        a = side.get(key)
        if a is not None:
            a = np.asarray(a).reshape(-1)
            if a.shape[0] != n:
                raise DataError(f"npz: {path}: {key} has {a.shape[0]} entries but there are {n} training examples")
            a = a.astype(str)
        out.append(a)
    return out[0], out[1]


def _read_image_folder(spec: dict):
    from PIL import Image

    root = _require_path(spec)
    size = spec.get("imageSize")
    train_dir, test_dir = root / "train", root / "test"
    problem = layout_problem("image-folder", root)  # what `kubenas validate` says too
    if problem:
        raise DataError(f"image-folder: {problem}")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"image-folder: {train_dir} must hold one directory per class (found {len(classes)})")
    index = {c: i for i, c in enumerate(classes)}

    def files(split_dir: Path):
        out = []
        for d in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            if d.name not in index:
                raise DataError(f"image-folder: class {d.name!r} in {split_dir} is not a class of {train_dir}")
            out += [(f, index[d.name]) for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
        if not out:
            raise DataError(f"image-folder: no images under {split_dir}")
        return out

    train_files, test_files = files(train_dir), files(test_dir)
    with Image.open(train_files[0][0]) as first:
        mode = "L" if first.mode in ("1", "L", "I", "I;16", "F") else "RGB"
        target = (int(size[1]), int(size[0])) if size else first.size  # PIL sizes are (w, h)

    def load(items):
        xs = []
        for path, _ in items:
            try:
                with Image.open(path) as img:
                    img = img.convert(mode)
                    if img.size != target:
                        if not size:
                            raise DataError(f"image-folder: {path} is {img.size[0]}x{img.size[1]} but the first "
                                            f"image is {target[0]}x{target[1]}; set dataset.imageSize to resize")
                        img = img.resize(target, Image.BILINEAR)
                    a = np.asarray(img, dtype=np.uint8)
            except DataError:
                raise
            except Exception as exc:  # noqa: BLE001
                raise DataError(f"image-folder: cannot read {path}: {exc}") from exc
            xs.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
        return np.stack(xs), np.array([c for _, c in items], dtype=np.int64)

    x_tr, y_tr = load(train_files)
    x_te, y_te = load(test_files)
    return x_tr, y_tr, x_te, y_te, classes, 1.0 / 255.0


READERS = {
    "digits": _read_digits,
    "mnist": lambda spec: _read_idx_dataset(spec, "mnist"),
    "fashion-mnist": lambda spec: _read_idx_dataset(spec, "fashion-mnist"),
    "cifar10": _read_cifar10,
    "npz": _read_npz,
    "image-folder": _read_image_folder,
}


# --------------------------------------------------------------------------- split + load


def _require_path(spec: dict) -> Path:
    path = spec.get("path")
    if not path:
        raise InvalidTrial(f"dataset.path: required for dataset {spec.get('name')!r}")
    p = Path(os.path.expanduser(str(path)))
    if not p.exists():
        raise DataError(f"dataset.path: {p} does not exist")
    return p


@functools.lru_cache(maxsize=2)
def _read_cached(name: str, path: str | None, layout: str | None, image_size: tuple | None, reader=None) -> Raw:
    spec = {"name": name, "path": path, "layout": layout or "auto", "imageSize": image_size}
    raw = (reader or READERS[name])(spec)
    if isinstance(raw, tuple):
        raw = Raw(*raw)
    for a in (raw.x_train, raw.y_train, raw.x_test, raw.y_test):
        a.setflags(write=False)
    return raw


def dataset_block(value, defaults: dict, where: str) -> dict:
    """A task's settings block of the dataset spec (``dataset.<where>``: absent, or an
    object of ``defaults``' fields) with the defaults filled; InvalidTrial naming an
    unknown field. The values are the caller's to check."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidTrial(f"dataset.{where}: must be an object, got {value!r}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise InvalidTrial(f"dataset.{where}.{unknown[0]}: unknown field (known: {', '.join(defaults)})")
    return {**defaults, **value}


def check_spec(spec, fields: tuple = COMMON_FIELDS + ("layout", "imageSize"), datasets: tuple = IMAGE_DATASETS,
               task: str = "image-classification") -> dict:
    """Validate the dataset spec, naming the bad field; returns it with defaults filled.

    ``fields`` and ``datasets`` are what the trial's task reads (kubenas_trainer.tasks)."""
    if spec is None:
        spec = {"name": "digits"}
    if not isinstance(spec, dict):
        raise InvalidTrial(f"dataset: must be an object, got {spec!r}")
    unknown = sorted(set(spec) - set(SPEC_FIELDS))
    if unknown:
        raise InvalidTrial(f"dataset.{unknown[0]}: unknown field (known: {', '.join(SPEC_FIELDS)})")
    foreign = sorted(set(spec) - set(fields))
    if foreign:
        raise InvalidTrial(f"dataset.{foreign[0]}: task {task} does not read it (it reads {', '.join(fields)})")
    name = spec.get("name", "digits")
    if name not in datasets:
        raise InvalidTrial(f"dataset.name: {name!r} is not a dataset of task {task} (one of {', '.join(datasets)})")
    fraction = spec.get("validationFraction", DEFAULT_VALIDATION_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise InvalidTrial(f"dataset.validationFraction: must be a number strictly between 0 and 1, got {fraction!r}")
    limit = spec.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise InvalidTrial(f"dataset.limit: must be an integer >= 2, got {limit!r}")
    seed = spec.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise InvalidTrial(f"dataset.seed: must be an integer, got {seed!r}")
    layout = spec.get("layout", "auto")
    if layout not in ("auto", "NCHW", "NHWC"):
        raise InvalidTrial(f"dataset.layout: {layout!r} is not one of auto, NCHW, NHWC")
    size = spec.get("imageSize")
    if size is not None and (not isinstance(size, (list, tuple)) or len(size) != 2
                             or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise InvalidTrial(f"dataset.imageSize: must be [height, width] in pixels, got {size!r}")
    return {**spec, "name": name, "validationFraction": float(fraction), "layout": layout,
            "validation": check_validation(spec.get("validation")),
            "groupsFile": check_groups_file(spec.get("groupsFile"))}


def _channel_stats(x: torch.Tensor, scale: float, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``x * scale``, in chunks (no full float64 copy)."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], chunk):
        part = x[start:start + chunk].to(torch.float64) * scale
        total += part.sum(dim=(0, 2, 3))
        total_sq += (part * part).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(0).sqrt()
    return mean, torch.where(std > 1e-6, std, torch.ones_like(std))


def read_raw(spec: dict, reader=None) -> Raw:
    """The examples a checked dataset spec names, read once per process (cached).

    ``reader`` (spec -> Raw) defaults to the image reader of ``spec["name"]``."""
    size = spec.get("imageSize")
    path = str(Path(os.path.expanduser(str(spec["path"]))).resolve()) if spec.get("path") else None
    try:
        raw = _read_cached(spec["name"], path, spec.get("layout"), tuple(size) if size else None, reader)
    except (DataError, InvalidTrial):
        raise
    except OSError as exc:
        raise DataError(f"dataset {spec['name']}: {exc}") from exc
    if len(raw.y_train) < 2:
        raise DataError(f"dataset {spec['name']}: needs at least 2 training examples, has {len(raw.y_train)}")
    if len(raw.y_test) == 0:
        raise DataError(f"dataset {spec['name']}: the test split is empty")
    return raw


def groups_of(raw: Raw, spec: dict):
    """The group per training example: ``dataset.groupsFile`` when set, else the dataset's own (or None)."""
    if not spec.get("groupsFile"):
        return raw.groups
    root = Path(os.path.expanduser(str(spec["path"]))) if spec.get("path") else None
    return groups_from_file(raw.names, spec["groupsFile"], root)


def split_indices(raw: Raw, spec: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, validation, test) indices: validation by ``splits.split_train_validation``,
    each capped at ``limit`` (the test cap never depends on the trial's seed)."""
    root = Path(os.path.expanduser(str(spec["path"]))) if spec.get("path") else None
    train_idx, val_idx = split_train_validation(raw.y_train, groups_of(raw, spec), raw.names, spec, seed, root)
    test_idx = np.arange(len(raw.y_test))
    limit = spec.get("limit")
    if limit:
        train_idx, val_idx = train_idx[:limit], val_idx[:limit]
        test_idx = np.sort(np.random.RandomState(DIGITS_TEST_SEED).permutation(len(raw.y_test))[:limit])
    if len(val_idx) == 0 or len(train_idx) == 0:
        raise DataError(f"dataset {spec['name']}: too few examples for a train/validation split")
    return train_idx, val_idx, test_idx


def num_classes_of(raw: Raw, name: str) -> tuple[int, list[str]]:
    num_classes = max(len(raw.classes), int(raw.y_train.max()) + 1, int(raw.y_test.max()) + 1)
    if num_classes < 2:
        raise DataError(f"dataset {name}: needs at least 2 classes")
    classes = [str(c) for c in raw.classes] + [str(i) for i in range(len(raw.classes), num_classes)]
    return num_classes, classes


def take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(x[idx])), torch.from_numpy(np.ascontiguousarray(y[idx])))


def split_info(raw: Raw, spec: dict, seed: int, train_idx, val_idx) -> dict:
    """What a trial reports about its split: the rule, and the groups on each side."""
    from kubenas_trainer.data.splits import validation_rule

    info = {"seed": seed, "validationFraction": spec["validationFraction"], "limit": spec.get("limit"),
            "validation": validation_rule(spec, groups_of(raw, spec))}
    groups = groups_of(raw, spec)
    if groups is not None:
        if spec.get("groupsFile"):
            info["groupsFile"] = spec["groupsFile"]
        train_groups, val_groups = set(groups[train_idx]), set(groups[val_idx])
        info.update(trainGroups=len(train_groups), validationGroups=len(val_groups),
                    sharedGroups=len(train_groups & val_groups))
    return info


def load_dataset(spec: dict | None, seed: int | None = None) -> Dataset:
    """Load the image dataset a trial names and split it (see the module docstring).

    ``spec["seed"]`` wins over ``seed``; both absent means 0.
    """
    spec = check_spec(spec)
    split_seed = spec.get("seed", seed if seed is not None else 0)
    raw = read_raw(spec)
    num_classes, classes = num_classes_of(raw, spec["name"])
    train_idx, val_idx, test_idx = split_indices(raw, spec, split_seed)
    train, val = take(raw.x_train, raw.y_train, train_idx), take(raw.x_train, raw.y_train, val_idx)
    test = take(raw.x_test, raw.y_test, test_idx)
    mean, std = _channel_stats(train.x, raw.scale)
    return Dataset(
        name=spec["name"], train=train, val=val, test=test, num_classes=num_classes, classes=classes,
        scale=float(raw.scale), mean=[float(v) for v in mean], std=[float(v) for v in std],
        info=split_info(raw, spec, split_seed, train_idx, val_idx),
    )
