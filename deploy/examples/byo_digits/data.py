"""A data loader for the built-in training loop (docs/byo.md, route 2).

`trial.dataset.loader: byo_digits.data:load` returns the splits as tensors:
(x_train, y_train, x_val, y_val, x_test, y_test), inputs N x 1 x 8 x 8.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits


def load(seed: int = 0):
    digits = load_digits()
    x = torch.tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(seed).permutation(len(y)))
    a, b = int(0.7 * len(y)), int(0.85 * len(y))
    train, val, test = order[:a], order[a:b], order[b:]
    return x[train], y[train], x[val], y[val], x[test], y[test]
