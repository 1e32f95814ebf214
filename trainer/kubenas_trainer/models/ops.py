"""The operations of both search spaces, as TorchScript-friendly modules.

Shapes: every op uses ``padding = dilation * (kernel // 2)`` with odd kernels, so a
stride-s op maps a side of length n to ``ceil(n / s)`` and never below 1; pooling and
stride on a 1x1 map are therefore safe (the map stays 1x1).

Conventions
- chain space (post-activation, as REINFORCE NAS): conv -> BN -> ReLU.
- cell space (pre-activation, as NAS-Bench-201 / DARTS): ReLU -> conv -> BN.
- Convolutions followed by BN have no bias. Weights are He-initialised by ``init_weights``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from kubenas.contract.ops import CELL_OPS, CHAIN_OPS


def _pad(kernel: int, dilation: int = 1) -> int:
    return dilation * (kernel // 2)


# --------------------------------------------------------------------------- chain ops


class ConvBNReLU(nn.Sequential):
    """chain ``conv``: conv(kernel, stride) -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, _pad(kernel), bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class DWConvBNReLU(nn.Sequential):
    """chain ``dw_conv``: depthwise conv(kernel, stride) -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__(
            nn.Conv2d(c_in, c_in, kernel, stride, _pad(kernel), groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


def max_pool(kernel: int, stride: int) -> nn.Module:
    return nn.MaxPool2d(kernel, stride, _pad(kernel))


def avg_pool(kernel: int, stride: int) -> nn.Module:
    # count_include_pad=False: border outputs average real pixels only.
    return nn.AvgPool2d(kernel, stride, _pad(kernel), count_include_pad=False)


class TConvBNReLU(nn.Sequential):
    """chain ``tconv``: conv 1 x kernel along time (dilated, strided along time) -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, (1, kernel), (1, stride), (0, _pad(kernel, dilation)), (1, dilation), bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class SepTConvBNReLU(nn.Sequential):
    """chain ``sep_tconv``: depthwise conv 1 x kernel along time (dilated) -> pointwise 1x1 -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int):
        super().__init__(
            nn.Conv2d(c_in, c_in, (1, kernel), (1, stride), (0, _pad(kernel, dilation)), (1, dilation),
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class TemporalAttention(nn.Module):
    """chain ``attention``: x + proj(softmax(q k^T / sqrt(C)) v) over the H*W positions of
    a pre-normalised map (LayerNorm over channels); single head, channels unchanged.
    Made of Linear layers so that measure.count_macs counts its projections."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.scale = float(channels) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # N x HW x C
        q, k, v = self.qkv(self.norm(tokens)).chunk(3, dim=-1)
        attn = torch.softmax(torch.bmm(q, k.transpose(1, 2)) * self.scale, dim=-1)
        out = tokens + self.proj(torch.bmm(attn, v))
        return out.transpose(1, 2).reshape(n, c, h, w)


# name -> builder(layer, channels in) -> (module, channels out); one per kubenas.contract.ops.CHAIN_OPS.
CHAIN_OP_BUILDERS: dict[str, Callable[[dict, int], tuple[nn.Module, int]]] = {
    "conv": lambda layer, c: (ConvBNReLU(c, layer["filters"], layer["kernel"], layer["stride"]), layer["filters"]),
    "dw_conv": lambda layer, c: (DWConvBNReLU(c, layer["filters"], layer["kernel"], layer["stride"]),
                                 layer["filters"]),
    "max_pool": lambda layer, c: (max_pool(layer["kernel"], layer["stride"]), c),
    "avg_pool": lambda layer, c: (avg_pool(layer["kernel"], layer["stride"]), c),
    "identity": lambda layer, c: (nn.Identity(), c),
    "tconv": lambda layer, c: (TConvBNReLU(c, layer["filters"], layer["kernel"], layer["stride"],
                                           layer.get("dilation", 1)), layer["filters"]),
    "sep_tconv": lambda layer, c: (SepTConvBNReLU(c, layer["filters"], layer["kernel"], layer["stride"],
                                                  layer.get("dilation", 1)), layer["filters"]),
    "attention": lambda layer, c: (TemporalAttention(c), c),
}


def chain_op(layer: dict, c_in: int) -> tuple[nn.Module, int]:
    """Build one validated chain layer; returns (module, output channels)."""
    return CHAIN_OP_BUILDERS[layer["op"]](layer, c_in)


# --------------------------------------------------------------------------- cell ops


class Zero(nn.Module):
    """``none``: the edge carries nothing (the cell builder drops such edges)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class ReLUConvBN(nn.Sequential):
    """ReLU -> conv(kernel, stride, dilation) -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, _pad(kernel, dilation), dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise conv (dilated) -> pointwise 1x1 -> BN (DARTS ``dil_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride, _pad(kernel, dilation), dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked ``DilConv`` blocks with dilation 1 (DARTS ``sep_conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(DilConv(c_in, c_in, kernel, stride, 1), DilConv(c_in, c_out, kernel, 1, 1))


# name -> builder(channels); one per kubenas.contract.ops.CELL_OPS.
CELL_OP_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda c: Zero(),
    "skip_connect": lambda c: nn.Identity(),
    "conv_1x1": lambda c: ReLUConvBN(c, c, 1),
    "conv_3x3": lambda c: ReLUConvBN(c, c, 3),
    "sep_conv_3x3": lambda c: SepConv(c, c, 3),
    "dil_conv_3x3": lambda c: DilConv(c, c, 3, 1, 2),
    "avg_pool_3x3": lambda c: avg_pool(3, 1),
    "max_pool_3x3": lambda c: max_pool(3, 1),
}


def cell_op(name: str, channels: int) -> nn.Module:
    """A cell edge op: shape-preserving, ``channels`` in and out."""
    return CELL_OP_BUILDERS[name](channels)


def _check_registry() -> None:
    """Every op of the contract has exactly one builder here, and no builder is extra."""
    for space, names, builders in (("chain", CHAIN_OPS, CHAIN_OP_BUILDERS), ("cell", CELL_OPS, CELL_OP_BUILDERS)):
        if set(names) != set(builders):
            raise ImportError(f"{space} ops of kubenas.contract.ops and kubenas_trainer.models.ops differ: "
                              f"{sorted(set(names) ^ set(builders))}")


_check_registry()


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block: a stride-2 ResNet basic block that changes width.

    Main path ReLUConvBN(3x3, stride 2) -> ReLUConvBN(3x3); shortcut avg-pool 2x2 (ceil
    mode, so a 1x1 or odd-sized map never collapses to 0) -> conv 1x1.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.shortcut = nn.Sequential(
            nn.AvgPool2d(2, 2, 0, ceil_mode=True, count_include_pad=False),
            nn.Conv2d(c_in, c_out, 1, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


# --------------------------------------------------------------------------- init


def init_weights(model: nn.Module) -> None:
    """He (Kaiming) init for convs, unit/zero BN, small normal for the linear head."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
