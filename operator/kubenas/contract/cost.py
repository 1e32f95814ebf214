"""What a network costs, from its genotype alone (no torch): trainable parameters and
multiply-accumulates per sample, exactly as the trainer measures them on the model it
builds (``kubenas_trainer.training.measure.count_parameters`` / ``count_macs``; tests/trainer
checks the two agree). Hard constraints (``spec.constraints``) use these numbers to reject
a candidate before it is trained.

Conventions are the trainer's (``kubenas_trainer.models.ops`` and ``models``): convolutions
followed by BN have no bias; BN has 2 parameters per channel; every op pads
``dilation * (kernel // 2)``, so a stride-s op maps a side n to ceil(n / s); MACs count
Conv2d (``out elements * in_channels / groups * kh * kw``), Linear
(``out elements * in_features``) and the ``attention`` op's two products (``2 L^2 C``); a cell builds only its live edges
(``genotype.live_edges``).

Parameters depend on the input channels and the class count only; MACs also on the
image size. ``DATASET_SHAPES`` gives both for the built-in datasets; for data read from
files (npz, image-folder) the spec states them (``constraints.inputShape``,
``constraints.numClasses``).
"""
from __future__ import annotations

from .genotype import live_edges, validate_genotype

# name -> ((channels, height, width), classes) for the datasets whose shape is fixed.
DATASET_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
}


def _ceil_div(n: int, s: int) -> int:
    return -(-n // s)


def _bn(c: int) -> int:
    return 2 * c


# cell edge op -> (parameters, MACs per output pixel) at c channels in and out.
def _cell_op_cost(op: str, c: int) -> tuple[int, int]:
    if op in ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"):
        return 0, 0
    if op == "conv_1x1":
        return c * c + _bn(c), c * c
    if op == "conv_3x3":
        return 9 * c * c + _bn(c), 9 * c * c
    if op == "dil_conv_3x3":  # depthwise 3x3 + pointwise + BN
        return 9 * c + c * c + _bn(c), 9 * c + c * c
    if op == "sep_conv_3x3":  # two dil_conv blocks with dilation 1
        return 2 * (9 * c + c * c + _bn(c)), 2 * (9 * c + c * c)
    raise KeyError(f"no cost formula for cell op {op!r}")


def _chain_cost(genotype: dict, shape: tuple[int, int, int], classes: int) -> tuple[int, int]:
    c, h, w = shape
    params = macs = 0
    for layer in genotype["layers"]:
        op = layer["op"]
        if op == "identity":
            continue
        if op == "attention":  # LayerNorm, qkv and output projections (Linear), two L x L products
            positions = h * w
            params += _bn(c) + (3 * c * c + 3 * c) + (c * c + c)
            macs += positions * 4 * c * c + 2 * positions * positions * c
            continue
        k, s = layer["kernel"], layer["stride"]
        if op in ("tconv", "sep_tconv"):  # 1 x k along time (the last axis): stride along time only
            w = _ceil_div(w, s)
        else:
            h, w = _ceil_div(h, s), _ceil_div(w, s)
        if op == "tconv":
            f = layer["filters"]
            params += f * c * k + _bn(f)
            macs += h * w * f * c * k
            c = f
        elif op == "sep_tconv":
            f = layer["filters"]
            params += c * k + c * f + _bn(f)
            macs += h * w * (c * k + c * f)
            c = f
        elif op == "conv":
            f = layer["filters"]
            params += f * c * k * k + _bn(f)
            macs += h * w * f * c * k * k
            c = f
        elif op == "dw_conv":
            f = layer["filters"]
            params += c * k * k + c * f + _bn(f)
            macs += h * w * (c * k * k + c * f)
            c = f
    return params + c * classes + classes, macs + c * classes


def _cell_cost(genotype: dict, shape: tuple[int, int, int], classes: int) -> tuple[int, int]:
    c_in, h, w = shape
    c = genotype["channels"]
    params = 9 * c_in * c + _bn(c)  # stem conv 3x3 + BN
    macs = h * w * 9 * c_in * c
    edges = [op for node in live_edges(genotype["nodes"], genotype["edges"]) for _, op in node]
    for stage in range(genotype["stages"]):
        if stage > 0:  # residual reduction c -> 2c, stride 2
            h, w = _ceil_div(h, 2), _ceil_div(w, 2)
            params += 9 * c * 2 * c + _bn(2 * c) + 9 * 4 * c * c + _bn(2 * c) + c * 2 * c
            macs += h * w * (9 * c * 2 * c + 9 * 4 * c * c + c * 2 * c)
            c *= 2
        for _ in range(genotype["cellsPerStage"]):
            for op in edges:
                op_params, op_macs = _cell_op_cost(op, c)
                params += op_params
                macs += h * w * op_macs
    params += _bn(c) + c * classes + classes  # last BN, linear head
    return params, macs + c * classes


def architecture_cost(genotype: dict, input_shape: tuple[int, int, int], num_classes: int) -> dict[str, int]:
    """``{"parameters": ..., "macs": ...}`` of the network ``genotype`` builds; GenotypeError if invalid."""
    genotype = validate_genotype(genotype)
    shape = tuple(int(v) for v in input_shape)
    cost = _chain_cost if genotype["type"] == "chain" else _cell_cost
    params, macs = cost(genotype, shape, int(num_classes))
    return {"parameters": params, "macs": macs}
