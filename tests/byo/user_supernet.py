"""A user's network over a chain space with its own weight-sharing supernet, as
docs/oneshot.md describes (``trial.model.builder`` + ``trial.model.supernet``): each layer a
conv of one of the space's kernel sizes at one width, or identity. Used by the trainer,
validation and local-run tests."""
from __future__ import annotations

import random

import torch
from torch import nn

WIDTH = 8
BUILT = []  # the spaces build_supernet was called with (in-process tests read it)


def _conv(kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(WIDTH, WIDTH, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(WIDTH),
                         nn.ReLU())


class Net(nn.Module):
    """The stand-alone network of one candidate."""

    def __init__(self, architecture: dict, input_shape, num_classes: int):
        super().__init__()
        self.stem = nn.Conv2d(input_shape[0], WIDTH, 3, padding=1)
        self.layers = nn.ModuleList(_conv(layer["kernel"]) if layer["op"] == "conv" else nn.Identity()
                                    for layer in architecture["layers"])
        self.head = nn.Linear(WIDTH, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x.mean((2, 3)))


def build(architecture, input_shape, num_classes):
    return Net(architecture, input_shape, num_classes)


class Supernet(nn.Module):
    """Every candidate of the space: per layer one conv per kernel size; ``select`` picks."""

    def __init__(self, space: dict, input_shape, num_classes: int):
        super().__init__()
        self.space = space
        self.stem = nn.Conv2d(input_shape[0], WIDTH, 3, padding=1)
        self.layers = nn.ModuleList(nn.ModuleDict({str(k): _conv(k) for k in space["kernelSizes"]})
                                    for _ in range(space["layers"]))
        self.head = nn.Linear(WIDTH, num_classes)
        self.path = None

    def select(self, architecture: dict) -> None:
        self.path = architecture["layers"]

    def sample(self, rng: random.Random) -> dict:
        layers = []
        for _ in range(self.space["layers"]):
            op = rng.choice(self.space["operations"])
            layers.append({"op": op, "filters": WIDTH, "kernel": rng.choice(self.space["kernelSizes"]),
                           "stride": 1} if op == "conv" else {"op": op})
        return {"type": "chain", "layers": layers}

    def forward(self, x):
        x = self.stem(x)
        for choices, layer in zip(self.layers, self.path):
            if layer["op"] == "conv":
                x = choices[str(layer["kernel"])](x)
        return self.head(x.mean((2, 3)))


def build_supernet(space, input_shape, num_classes):
    BUILT.append(space)
    return Supernet(space, input_shape, num_classes)


def build_no_select(space, input_shape, num_classes):
    return nn.Linear(1, 1)
