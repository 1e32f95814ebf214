"""Genotype -> PyTorch model, for both search spaces (see genotype.py for the format).

``build_model(architecture, input_shape, num_classes)`` is a pure function of its
arguments (plus torch's RNG for the initial weights). The result takes a normalised
float batch ``N x C x H x W`` of any spatial size that is at least 1x1 and returns
logits ``N x num_classes``. Models are TorchScript-scriptable.

The head is the task's: ``build_model(..., head=make_head)`` ends the searched body in
``make_head(channels)`` (the body's output channels) instead of the classification
head (``ClassifierHead``: global average pooling -> linear); the module keeps the name
``head`` either way.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import torch
from torch import nn

from kubenas.contract.genotype import GenotypeError, live_edges, validate_genotype
from kubenas.contract.spaces import trainer_built_spaces

from kubenas_trainer.models.ops import ResidualReduction, cell_op, chain_op, init_weights

__all__ = ["build_model", "GenotypeError", "ChainNet", "CellNet", "ClassifierHead", "live_edges"]

HeadFactory = Callable[[int], nn.Module]  # the body's output channels -> the task's head


class ClassifierHead(nn.Module):
    """Global average pooling -> linear."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(x), 1))


class ChainNet(nn.Module):
    """The layers of a chain genotype in order, then the head."""

    def __init__(self, layers: Sequence[dict], in_channels: int, head: HeadFactory):
        super().__init__()
        modules, channels = [], in_channels
        for layer in layers:
            module, channels = chain_op(layer, channels)
            modules.append(module)
        self.features = nn.Sequential(*modules)
        self.head = head(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class CellNode(nn.Module):
    """One intermediate/output node: the sum of its incoming edges' outputs."""

    def __init__(self, ops: List[nn.Module], sources: List[int]):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.sources: List[int] = list(sources)

    def forward(self, states: List[torch.Tensor]) -> torch.Tensor:
        total: Optional[torch.Tensor] = None
        for i, op in enumerate(self.ops):
            y = op(states[self.sources[i]])
            if total is None:
                total = y
            else:
                total = total + y
        if total is None:  # every incoming edge is "none": the node is zero
            return torch.zeros_like(states[0])
        return total


class Cell(nn.Module):
    """A NAS-Bench-201-style cell: node 0 is the input, the last node the output."""

    def __init__(self, nodes: int, edges: Sequence[Sequence[str]], channels: int):
        super().__init__()
        self.nodes = nn.ModuleList(
            CellNode([cell_op(op, channels) for _, op in node_edges], [j for j, _ in node_edges])
            for node_edges in live_edges(nodes, edges)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: List[torch.Tensor] = [x]
        for node in self.nodes:
            states.append(node(states))
        return states[-1]


class CellNet(nn.Module):
    """stem conv+BN -> stages of cells (stride-2 residual reduction between stages)
    -> BN -> ReLU -> the head."""

    def __init__(self, genotype: dict, in_channels: int, head: HeadFactory):
        super().__init__()
        c = genotype["channels"]
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        blocks: list[nn.Module] = []
        for stage in range(genotype["stages"]):
            if stage > 0:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks.extend(Cell(genotype["nodes"], genotype["edges"], c) for _ in range(genotype["cellsPerStage"]))
        self.cells = nn.Sequential(*blocks)
        self.last_act = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.head = head(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.last_act(self.cells(self.stem(x))))


class StemmedNet(nn.Module):
    """A task's trainable stem (e.g. the token embedding of sequence classification), then
    the searched network."""

    def __init__(self, stem: nn.Module, net: nn.Module):
        super().__init__()
        self.stem = stem
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.stem(x))


def _check_input(input_shape, num_classes, head) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}") from None
    if min(c, h, w) < 1:
        raise ValueError(f"input_shape must be positive, got {(c, h, w)}")
    if (head is None or num_classes is not None) and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2):
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    return c, h, w


def build_model(architecture: dict, input_shape: tuple[int, int, int], num_classes: int | None = None, *,
                head: HeadFactory | None = None) -> nn.Module:
    """Build the network a genotype describes, ending in ``head(channels)`` (default: the
    classification head over ``num_classes``).

    Raises GenotypeError (naming the decision, e.g. ``architecture.layers[2].kernel``)
    for an invalid genotype, ValueError for a bad input shape or class count.
    """
    genotype = validate_genotype(architecture)
    if genotype["type"] not in trainer_built_spaces():
        raise GenotypeError("type", f"the built-in trainer builds {' and '.join(trainer_built_spaces())} "
                            f"architectures, not {genotype['type']}; a parameters space needs trial.command "
                            "or trial.model.builder (docs/byo.md)")
    c, _, _ = _check_input(input_shape, num_classes, head)
    if head is None:
        def head(channels: int) -> nn.Module:
            return ClassifierHead(channels, num_classes)
    if genotype["type"] == "chain":
        model: nn.Module = ChainNet(genotype["layers"], c, head)
    else:
        model = CellNet(genotype, c, head)
    init_weights(model)
    return model
