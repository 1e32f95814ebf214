"""The chain space: one operation per layer, as in REINFORCE NAS (Zoph & Le 2017) and the
ENAS macro space (Pham et al. 2018).

Per layer the decisions are ``op``, then ``filters`` (convolutions only), ``kernel`` and
``stride`` (convolutions and pooling), ``dilation`` (temporal convolutions only; the
decision exists only in spaces that search a temporal op); identity and attention have
nothing more to decide.
"""
from __future__ import annotations

from kubenas.contract import ops as ops_contract
from kubenas.contract.ops import (
    CHAIN_LAYER_FIELDS,
    CHAIN_OPS,
    DEFAULT_CHAIN_OPS,
    DILATIONS,
    KERNEL_SIZES,
    MAX_CHAIN_LAYERS,
    MAX_FILTERS,
    STRIDES,
)

from .base import Decision, SearchSpace
from .errors import CandidateError
from .hyperparameters import Hyperparameter
from .spec import check_int, expect_mapping, one_of, read_int, read_list, reject_unknown_keys

DEFAULT_LAYERS = ops_contract.DEFAULT_CHAIN_LAYERS
DEFAULT_FILTERS = ops_contract.DEFAULT_CHAIN_FILTERS
DEFAULT_KERNEL_SIZES = ops_contract.DEFAULT_CHAIN_KERNEL_SIZES
DEFAULT_STRIDES = ops_contract.DEFAULT_CHAIN_STRIDES
DEFAULT_DILATIONS = ops_contract.DEFAULT_CHAIN_DILATIONS


class ChainSpace(SearchSpace):
    type = "chain"

    def __init__(self, layers: int, operations: tuple, filters: tuple, kernel_sizes: tuple, strides: tuple,
                 hyperparameters: list[Hyperparameter], dilations: tuple = DEFAULT_DILATIONS):
        self.layers = layers
        self.operations = tuple(operations)
        decisions: list[Decision] = []
        choices = {"filters": tuple(filters), "kernel": tuple(kernel_sizes), "stride": tuple(strides),
                   "dilation": tuple(dilations)}
        # For each layer field, the op choices (by index) under which it is decided; a field
        # no searched op takes is no decision at all (spaces without temporal ops keep the
        # three decisions per layer they always had).
        taken_by = {field: frozenset(i for i, op in enumerate(self.operations) if CHAIN_OPS[op].takes(field))
                    for field in CHAIN_LAYER_FIELDS}
        self.fields = tuple(f for f in CHAIN_LAYER_FIELDS if f != "dilation" or taken_by[f])
        for layer in range(layers):
            op_position = len(decisions)
            decisions.append(Decision(f"layers[{layer}].op", self.operations, gene=layer))
            decisions += [Decision(f"layers[{layer}].{field}", choices[field], layer, op_position, taken_by[field])
                          for field in self.fields]
        super().__init__(decisions, hyperparameters)

    @classmethod
    def from_block(cls, block: dict | None, hyperparameters: list[Hyperparameter],
                   path: str = "searchSpace.chain") -> "ChainSpace":
        block = expect_mapping({} if block is None else block, path)
        reject_unknown_keys(block, ("layers", "operations", "filters", "kernelSizes", "strides", "dilations"), path)
        return cls(
            layers=read_int(block, "layers", path, default=DEFAULT_LAYERS, low=1, high=MAX_CHAIN_LAYERS),
            operations=read_list(block, "operations", path, DEFAULT_CHAIN_OPS, one_of(tuple(CHAIN_OPS))),
            filters=read_list(block, "filters", path, DEFAULT_FILTERS, lambda v, w: check_int(v, w, 1, MAX_FILTERS)),
            kernel_sizes=read_list(block, "kernelSizes", path, DEFAULT_KERNEL_SIZES, one_of(KERNEL_SIZES)),
            strides=read_list(block, "strides", path, DEFAULT_STRIDES, one_of(STRIDES)),
            dilations=read_list(block, "dilations", path, DEFAULT_DILATIONS, one_of(DILATIONS)),
            hyperparameters=hyperparameters,
        )

    def _genotype(self, values: list) -> dict:
        layers = []
        names = ("op",) + self.fields
        for start in range(0, len(values), len(names)):
            fields = zip(names, values[start:start + len(names)])
            layers.append({field: value for field, value in fields if value is not None})
        return {"type": "chain", "layers": layers}

    def _architecture_values(self, genotype: dict) -> list:
        layers = genotype["layers"]
        if len(layers) != self.layers:
            raise CandidateError("architecture.layers", f"the space has {self.layers} layers, got {len(layers)}")
        values: list = []
        for layer in layers:
            op = CHAIN_OPS[layer["op"]]
            values += [layer["op"], *((layer.get(field, 1) if field == "dilation" else layer[field])
                                      if op.takes(field) else None for field in self.fields)]
        return values
