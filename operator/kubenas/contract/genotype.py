"""The genotype format shared by the search code and the trainer (no torch here).

A genotype ("architecture") is a JSON object that fully describes one network, so
that ``build_model(architecture, input_shape, num_classes)`` is a pure function.

chain -- the layer-by-layer space of REINFORCE NAS (Zoph & Le 2017)::

    {"type": "chain",
     "layers": [{"op": "conv", "filters": 32, "kernel": 3, "stride": 1},
                {"op": "max_pool", "kernel": 3, "stride": 2},
                {"op": "identity"}]}

    The ops, and the fields each takes, are the table ``ops.CHAIN_OPS``. The temporal
    ops (``tconv``, ``sep_tconv``) also take ``dilation`` (default 1).

cell -- a NAS-Bench-201-style cell stacked into a network::

    {"type": "cell", "nodes": 4,
     "edges": [["conv_3x3"],
               ["skip_connect", "none"],
               ["conv_1x1", "avg_pool_3x3", "none"]],
     "channels": 16, "cellsPerStage": 2, "stages": 3}

    Node 0 is the cell input and node ``nodes - 1`` its output. ``edges[i - 1][j]``
    is the operation on the edge from node j to node i (j < i), so row i - 1 has i
    entries. The network is a stem conv to `channels`, then `stages` stages of
    `cellsPerStage` cells; each stage after the first starts with a stride-2
    residual reduction block that doubles the channels; then BN, ReLU, global
    average pooling and a linear head.

parameters -- the assignment of a general ``parameters`` space (docs/byo.md), built by
the user's code, not by the built-in trainer::

    {"type": "parameters", "parameters": {"lr": 0.003, "layers": [{"width": 64}]}}

    Its shape is ``kubenas.contract.parameters``; membership of a space is checked by
    the space.

``validate_genotype`` returns the genotype or raises GenotypeError naming the
decision at fault (for example ``layers[2].kernel``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

from .ops import (
    CELL_OPS,
    CHAIN_LAYER_FIELDS,
    CHAIN_OPS,
    DILATIONS,
    KERNEL_SIZES,
    MAX_CELL_CHANNELS,
    MAX_CELL_NODES,
    MAX_CELLS_PER_STAGE,
    MAX_CHAIN_LAYERS,
    MAX_FILTERS,
    MAX_STAGES,
    MIN_CELL_NODES,
    STRIDES,
)
from .parameters import PARAMETERS_TYPE, AssignmentError, check_assignment, describe_assignment
from .spaces import SpaceEntry, register, space_entry, space_names

CELL_SKELETON_FIELDS = ("channels", "cellsPerStage", "stages")


class GenotypeError(ValueError):
    """A genotype that does not describe a buildable network.

    ``path`` names the bad decision (``layers[2].kernel``, ``edges[1][0]``).
    """

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"architecture.{path}: {message}" if path else f"architecture: {message}")


def _require_int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenotypeError(path, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise GenotypeError(path, f"must be between {low} and {high}, got {value}")
    return value


def _require_choice(value: Any, path: str, choices: tuple) -> Any:
    if value not in choices:
        raise GenotypeError(path, f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


def _validate_chain(genotype: dict) -> dict:
    layers = genotype.get("layers")
    if not isinstance(layers, list) or not layers:
        raise GenotypeError("layers", "must be a non-empty list of layers")
    if len(layers) > MAX_CHAIN_LAYERS:
        raise GenotypeError("layers", f"at most {MAX_CHAIN_LAYERS} layers, got {len(layers)}")
    for i, layer in enumerate(layers):
        where = f"layers[{i}]"
        if not isinstance(layer, dict):
            raise GenotypeError(where, f"must be an object with an 'op', got {layer!r}")
        op = CHAIN_OPS[_require_choice(layer.get("op"), f"{where}.op", tuple(CHAIN_OPS))]
        if op.takes("filters"):
            _require_int(layer.get("filters"), f"{where}.filters", 1, MAX_FILTERS)
        if op.takes("kernel"):
            _require_choice(layer.get("kernel"), f"{where}.kernel", KERNEL_SIZES)
        if op.takes("stride"):
            _require_choice(layer.get("stride"), f"{where}.stride", STRIDES)
        if op.takes("dilation"):
            _require_choice(layer.get("dilation", 1), f"{where}.dilation", DILATIONS)
    return genotype


def _validate_cell(genotype: dict) -> dict:
    nodes = _require_int(genotype.get("nodes"), "nodes", MIN_CELL_NODES, MAX_CELL_NODES)
    edges = genotype.get("edges")
    if not isinstance(edges, list) or len(edges) != nodes - 1:
        raise GenotypeError("edges", f"must be a list of {nodes - 1} rows (one per node after the input)")
    for i, row in enumerate(edges):
        if not isinstance(row, list) or len(row) != i + 1:
            raise GenotypeError(f"edges[{i}]", f"must list {i + 1} operations (one per earlier node)")
        for j, op in enumerate(row):
            _require_choice(op, f"edges[{i}][{j}]", tuple(CELL_OPS))
    _require_int(genotype.get("channels"), "channels", 1, MAX_CELL_CHANNELS)
    _require_int(genotype.get("cellsPerStage"), "cellsPerStage", 1, MAX_CELLS_PER_STAGE)
    _require_int(genotype.get("stages"), "stages", 1, MAX_STAGES)
    return genotype


def _validate_parameters(genotype: dict) -> dict:
    try:
        check_assignment(genotype.get("parameters"), "parameters")
    except AssignmentError as error:
        raise GenotypeError(error.path, error.message) from None
    return genotype


def validate_genotype(genotype: Any) -> dict:
    """Return ``genotype`` if it is well formed, else raise GenotypeError."""
    if not isinstance(genotype, dict):
        raise GenotypeError("", f"must be an object, got {type(genotype).__name__}")
    kind = _require_choice(genotype.get("type"), "type", space_names())
    return space_entry(kind).check(genotype)


def live_edges(nodes: int, edges: list) -> list[list[tuple[int, str]]]:
    """For each node 1..nodes-1 of a cell, the (source, op) edges that can affect the output.

    ``none`` edges are dropped, and so are the edges into nodes from which the output
    node cannot be reached: they change neither the function nor the gradients. The
    trainer builds exactly these edges (so parameter and MAC counts stay honest), and
    duplicate detection hashes them (``canonical_genotype``): two cells with the same
    live edges build the same modules in the same order and train identically.
    """
    live = {nodes - 1}
    for i in range(nodes - 1, 0, -1):
        if i in live:
            live.update(j for j, op in enumerate(edges[i - 1]) if op != "none")
    return [
        [(j, op) for j, op in enumerate(edges[i - 1]) if op != "none"] if i in live else []
        for i in range(1, nodes)
    ]


def canonical_genotype(genotype: dict) -> dict:
    """The genotype with decisions that do not affect the network removed.

    Two genotypes that build the same network have the same canonical form, which
    is what duplicate detection hashes. For a cell, every edge that is not live
    (``live_edges``) is written as ``none``.
    """
    genotype = validate_genotype(genotype)
    return space_entry(genotype["type"]).canonical(genotype)


def _canonical_parameters(genotype: dict) -> dict:
    return {"type": PARAMETERS_TYPE, "parameters": genotype["parameters"]}


def _canonical_cell(genotype: dict) -> dict:
    nodes = genotype["nodes"]
    edges = [["none"] * (i + 1) for i in range(nodes - 1)]
    for i, node_edges in enumerate(live_edges(nodes, genotype["edges"])):
        for j, op in node_edges:
            edges[i][j] = op
    return {"type": "cell", "nodes": nodes, "edges": edges, **{k: genotype[k] for k in CELL_SKELETON_FIELDS}}


def _canonical_chain(genotype: dict) -> dict:
    layers = [{"op": layer["op"], **{f: layer.get(f, 1) if f == "dilation" else layer[f]
                                     for f in CHAIN_LAYER_FIELDS if CHAIN_OPS[layer["op"]].takes(f)}}
              for layer in genotype["layers"]]
    return {"type": "chain", "layers": layers}


def genotype_hash(genotype: dict, hyperparameters: dict | None = None) -> str:
    """A short stable hash of a candidate (canonical genotype + hyperparameters)."""
    payload = {"architecture": canonical_genotype(genotype), "hyperparameters": hyperparameters or {}}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_genotype(genotype: dict) -> str:
    """A one-line human summary, for leaderboards and the experiment status (lenient: an
    architecture of no registered type is described as a chain)."""
    return _entry_or_chain(genotype).describe(genotype)


def _entry_or_chain(genotype: dict) -> SpaceEntry:
    kind = genotype.get("type")
    return space_entry(kind if kind in space_names() else "chain")


def _describe_parameters(genotype: dict) -> str:
    parameters = genotype.get("parameters")
    return describe_assignment(parameters) if isinstance(parameters, dict) else ""


def _describe_cell(genotype: dict) -> str:
    rows = ["+".join(f"{op}~{j}" for j, op in enumerate(row)) for row in genotype.get("edges", [])]
    return "|" + "|".join(rows) + "|"


def _describe_chain(genotype: dict) -> str:
    parts = []
    for layer in genotype.get("layers", []):
        op = layer.get("op")
        entry = CHAIN_OPS.get(op)
        if entry is not None and entry.takes("dilation"):
            parts.append(f"{op}{layer.get('kernel')}d{layer.get('dilation', 1)}/{layer.get('stride')}:"
                         f"{layer.get('filters')}")
        elif entry is not None and entry.takes("filters"):
            parts.append(f"{op}{layer.get('kernel')}x{layer.get('kernel')}/{layer.get('stride')}:{layer.get('filters')}")
        elif entry is not None and entry.takes("kernel"):
            parts.append(f"{op}{layer.get('kernel')}/{layer.get('stride')}")
        else:
            parts.append(str(op))
    return " > ".join(parts)


def genotype_ops(genotype: dict) -> list[str]:
    """The operation at each decision of a genotype: a chain's layer ops in order, a
    cell's edge ops row by row (what op-frequency plots count); none for a parameters space."""
    return _entry_or_chain(genotype).ops(genotype)


def _cell_ops(genotype: dict) -> list[str]:
    return [str(op) for row in genotype.get("edges") or [] if isinstance(row, list) for op in row]


def _chain_ops(genotype: dict) -> list[str]:
    return [str(layer.get("op")) for layer in genotype.get("layers") or [] if isinstance(layer, dict)]


# The built-in spaces, in the order of the CRDs' enums (kubenas.contract.spaces).
register(SpaceEntry(
    "chain", "kubenas.space.chain:ChainSpace",
    "a sequence of layers, each an op with its filters, kernel and stride (REINFORCE NAS, Zoph & Le 2017)",
    check=_validate_chain, canonical=_canonical_chain, describe=_describe_chain, ops=_chain_ops,
    built_by_trainer=True, supernet=True))
register(SpaceEntry(
    "cell", "kubenas.space.cell:CellSpace",
    "a NAS-Bench-201-style cell (an op per edge of a small DAG) stacked into stages",
    check=_validate_cell, canonical=_canonical_cell, describe=_describe_cell, ops=_cell_ops,
    built_by_trainer=True, supernet=True))
register(SpaceEntry(
    "parameters", "kubenas.space.parameters:ParametersSpace",
    "general named parameters (choices, ranges, nested lists) that your own code builds a model from",
    check=_validate_parameters, canonical=_canonical_parameters, describe=_describe_parameters))
