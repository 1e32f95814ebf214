"""A model builder for the built-in training loop (docs/byo.md, route 2).

`trial.model.builder: byo_digits.models:build` makes kubenas call
build(decisions, input_shape, num_classes) for each candidate; kubenas then trains it
with its own loop, measures parameters, MACs and latency, and exports TorchScript.
"""
from __future__ import annotations

import math

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def build(decisions: dict, input_shape: tuple, num_classes: int) -> nn.Module:
    modules: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for layer in decisions["layers"]:
        modules += [nn.Linear(width, layer["width"]), ACTIVATIONS[decisions["activation"]]()]
        width = layer["width"]
    modules.append(nn.Linear(width, num_classes))
    return nn.Sequential(*modules)
