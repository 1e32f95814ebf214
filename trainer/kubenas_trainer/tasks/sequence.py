"""Sequence classification: token-id or float sequences from npz or JSONL, the embedding stem.

Data (docs/tasks.md):

- ``npz``: ``x_train`` / ``x_test`` as ``N x T`` integer token ids or ``N x T x F`` float
  features, ``y_*`` class indices, optional ``groups_train``, ``names_train``, ``classes``,
  and ``lengths_train`` / ``lengths_test`` (the real length of each padded row).
- ``jsonl``: a folder with ``train.jsonl`` and ``test.jsonl``, one example a line:
  ``{"x": [3, 17, 5], "y": "positive", "group": "user-4", "name": "r-102"}`` (``x`` a list
  of token ids, or of equal-length float vectors; ``y`` a class index or name; ``group``
  and ``name`` optional).

Rows are cropped to ``dataset.sequence.maxLength`` (default: the longest training row)
and padded at the end with ``padId`` (tokens) or 0.0 (floats). Token sequences reach the
network through an embedding of ``embeddingDim`` (the task's stem; ids at or above the
vocabulary size map to ``padId``); float sequences are normalised per feature. Either
way the network sees ``channels x 1 x T``, so the chain space's temporal ops
(``tconv``, ``sep_tconv``, ``attention``) and pooling apply, and any length T works.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from torch import nn

from kubenas_trainer.data import Raw, _require_path, dataset_block, npz_side_arrays, read_npz
from kubenas_trainer.errors import DataError, InvalidTrial

SEQUENCE_DEFAULTS = {"maxLength": None, "padId": 0, "embeddingDim": 32}
MAX_VOCABULARY = 1 << 22


def check_sequence(value) -> dict:
    out = dataset_block(value, SEQUENCE_DEFAULTS, "sequence")
    for key, low in (("maxLength", 1), ("padId", 0), ("embeddingDim", 1)):
        v = out[key]
        if v is None and key == "maxLength":
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise InvalidTrial(f"dataset.sequence.{key}: must be an integer >= {low}, got {v!r}")
    return out


def _pad_rows(rows: list, length: int, pad, width: int | None) -> np.ndarray:
    shape = (len(rows), length) if width is None else (len(rows), length, width)
    out = np.full(shape, pad, dtype=np.int64 if width is None else np.float32)
    for i, row in enumerate(rows):
        row = row[:length]
        out[i, :len(row)] = row
    return out


def _read_jsonl_file(path, what: str):
    xs, ys, groups, names = [], [], [], []
    if not path.is_file():
        raise DataError(f"jsonl: {path} is not a file (a jsonl dataset is a folder with train.jsonl and test.jsonl)")
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"jsonl: {path}:{number}: not JSON ({exc})") from None
            if not isinstance(row, dict) or "x" not in row or "y" not in row:
                raise DataError(f"jsonl: {path}:{number}: each line must be an object with x and y")
            if not isinstance(row["x"], list) or not row["x"]:
                raise DataError(f"jsonl: {path}:{number}: x must be a non-empty list")
            xs.append(row["x"])
            ys.append(row["y"])
            groups.append(row.get("group"))
            names.append(row.get("name", f"{what}:{number}"))
    if not xs:
        raise DataError(f"jsonl: {path} holds no examples")
    return xs, ys, groups, names


def _as_array(rows: list, where: str):
    """A list of rows -> (list of np arrays, float feature width or None for tokens)."""
    first = rows[0]
    floats = isinstance(first[0], list) if isinstance(first, list) else np.asarray(first).ndim == 2
    out = []
    for i, row in enumerate(rows):
        a = np.asarray(row, dtype=np.float32 if floats else np.float64)
        if floats:
            if a.ndim != 2 or a.shape[1] != np.asarray(first).shape[1]:
                raise DataError(f"{where}[{i}]: float sequences must be T x F with the same F, got {a.shape}")
        elif a.ndim != 1 or np.any(a != np.round(a)) or (a.size and a.min() < 0):
            raise DataError(f"{where}[{i}]: a token sequence must be a list of non-negative integer ids")
        out.append(a if floats else a.astype(np.int64))
    return out, (int(np.asarray(first).shape[1]) if floats else None)


def read_jsonl(spec: dict) -> Raw:
    root = _require_path(spec)
    x_tr, y_tr, g_tr, n_tr = _read_jsonl_file(root / "train.jsonl", "train")
    x_te, y_te, _, _ = _read_jsonl_file(root / "test.jsonl", "test")
    labels = y_tr + y_te
    if all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in labels):
        classes = [str(i) for i in range(max(labels) + 1)]
        to_index = {i: i for i in range(len(classes))}
    elif all(isinstance(v, str) for v in labels):
        classes = sorted(set(y_tr))
        to_index = {c: i for i, c in enumerate(classes)}
        strangers = sorted(set(y_te) - set(classes))
        if strangers:
            raise DataError(f"jsonl: test.jsonl has the class {strangers[0]!r}, which train.jsonl never names")
    else:
        raise DataError("jsonl: y must be class indices (non-negative integers) or class names (strings), not a mix")
    rows_tr, width = _as_array(x_tr, "jsonl train.jsonl x")
    rows_te, width_te = _as_array(x_te, "jsonl test.jsonl x")
    if width != width_te:
        raise DataError("jsonl: train.jsonl and test.jsonl hold different kinds of sequences (tokens vs floats)")
    groups = np.array([str(g) for g in g_tr]) if all(g is not None for g in g_tr) else None
    arr_tr = np.empty(len(rows_tr), dtype=object)
    arr_tr[:] = rows_tr
    arr_te = np.empty(len(rows_te), dtype=object)
    arr_te[:] = rows_te
    return Raw(arr_tr, np.array([to_index[v] for v in y_tr], dtype=np.int64), arr_te,
               np.array([to_index[v] for v in y_te], dtype=np.int64), classes, 1.0, groups,
               np.array([str(n) for n in n_tr]), extra={"width": width})


def read_sequence_npz(spec: dict) -> Raw:
    path, a = read_npz(spec)
    parts = {}
    width = None
    for part in ("train", "test"):
        x, y = a[f"x_{part}"], np.asarray(a[f"y_{part}"]).reshape(-1)
        if x.ndim not in (2, 3) or x.shape[0] != y.shape[0]:
            raise DataError(f"npz: x_{part} must be N x T token ids or N x T x F floats matching y_{part} "
                            f"({y.shape[0]} labels), got shape {x.shape}")
        if x.ndim == 2 and (not np.issubdtype(x.dtype, np.integer) or (x.size and x.min() < 0)):
            raise DataError(f"npz: x_{part} is N x T, so it must hold non-negative integer token ids "
                            "(float sequences are N x T x F)")
        if y.size and (not np.issubdtype(y.dtype, np.number) or np.any(y != np.round(y)) or y.min() < 0):
            raise DataError(f"npz: y_{part} must hold non-negative integer class indices")
        width = int(x.shape[2]) if x.ndim == 3 else None
        lengths = a.get(f"lengths_{part}")
        rows = [row[:int(n)] for row, n in zip(x, lengths)] if lengths is not None else list(x)
        rows = [r.astype(np.float32) if width else r.astype(np.int64) for r in rows]
        arr = np.empty(len(rows), dtype=object)
        arr[:] = rows
        parts[part] = (arr, y.astype(np.int64))
    num_classes = int(max(parts["train"][1].max(initial=0), parts["test"][1].max(initial=0))) + 1
    names = [str(c) for c in a["classes"]] if "classes" in a else None
    classes = names if names and len(names) >= num_classes else [str(i) for i in range(num_classes)]
    groups, example_names = npz_side_arrays(a, len(parts["train"][1]), path)
    return Raw(parts["train"][0], parts["train"][1], parts["test"][0], parts["test"][1], classes, 1.0,
               groups, example_names, extra={"width": width})


def padded(raw: Raw, seq: dict) -> tuple[np.ndarray, np.ndarray, int, int | None]:
    """(train rows, test rows, vocabulary size or 0, float width or None), padded to one length:
    tokens ``N x T`` int64; floats ``N x F x 1 x T`` float32 (features as channels)."""
    width = raw.extra["width"]
    length = seq["maxLength"] or max(len(r) for r in raw.x_train)
    pad = seq["padId"] if width is None else 0.0
    x_tr = _pad_rows(list(raw.x_train), length, pad, width)
    x_te = _pad_rows(list(raw.x_test), length, pad, width)
    if width is not None:
        return (np.ascontiguousarray(x_tr.transpose(0, 2, 1)[:, :, None]),
                np.ascontiguousarray(x_te.transpose(0, 2, 1)[:, :, None]), 0, width)
    vocabulary = int(max(x_tr.max(initial=0), seq["padId"])) + 1
    if vocabulary > MAX_VOCABULARY:
        raise DataError(f"dataset: token ids reach {vocabulary - 1}; at most {MAX_VOCABULARY} ids are supported")
    x_te = np.where(x_te >= vocabulary, seq["padId"], x_te)  # ids never seen in training: padding
    return x_tr, x_te, vocabulary, None


class TokenStem(nn.Module):
    """Token ids ``N x T`` -> ``N x embeddingDim x 1 x T``; unknown ids count as padding."""

    def __init__(self, vocabulary: int, dim: int, pad_id: int):
        super().__init__()
        self.vocabulary = vocabulary
        self.pad_id = pad_id
        self.embedding = nn.Embedding(vocabulary, dim)
        nn.init.normal_(self.embedding.weight, 0.0, 1.0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.where((tokens >= 0) & (tokens < self.vocabulary), tokens, torch.full_like(tokens, self.pad_id))
        return self.embedding(tokens).transpose(1, 2).unsqueeze(2)

