"""The cell space: one operation per edge of a NAS-Bench-201-style DAG (Dong & Yang 2020),
stacked into a network with a fixed skeleton (channels, stages, cells per stage).

The ``edges[i][j]`` decisions come row by row, the order in which a NASNet/ENAS
controller (Zoph et al. 2018; Pham et al. 2018) builds a cell node after node.
"""
from __future__ import annotations

from kubenas.contract.genotype import CELL_SKELETON_FIELDS as SKELETON_FIELDS
from kubenas.contract.ops import (
    CELL_OPS,
    MAX_CELL_CHANNELS,
    MAX_CELL_NODES,
    MAX_CELLS_PER_STAGE,
    MAX_STAGES,
    MIN_CELL_NODES,
)

from .base import Decision, SearchSpace
from .errors import CandidateError
from .hyperparameters import Hyperparameter
from .spec import expect_mapping, one_of, read_int, read_list, reject_unknown_keys

DEFAULT_NODES = 4
DEFAULT_OPERATIONS = ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")  # NAS-Bench-201
DEFAULT_CHANNELS = 16
DEFAULT_CELLS_PER_STAGE = 1
DEFAULT_STAGES = 3


class CellSpace(SearchSpace):
    type = "cell"

    def __init__(self, nodes: int, operations: tuple, channels: int, cells_per_stage: int, stages: int,
                 hyperparameters: list[Hyperparameter]):
        self.skeleton = {"channels": channels, "cellsPerStage": cells_per_stage, "stages": stages}
        self.nodes = nodes
        self.operations = tuple(operations)
        # One decision (and gene) per edge, row by row: edges[row][source], source < row + 1.
        edges = [(row, source) for row in range(nodes - 1) for source in range(row + 1)]
        super().__init__([Decision(f"edges[{row}][{source}]", self.operations, gene=gene)
                          for gene, (row, source) in enumerate(edges)], hyperparameters)

    @classmethod
    def from_block(cls, block: dict | None, hyperparameters: list[Hyperparameter],
                   path: str = "searchSpace.cell") -> "CellSpace":
        block = expect_mapping({} if block is None else block, path)
        reject_unknown_keys(block, ("nodes", "operations") + SKELETON_FIELDS, path)
        return cls(
            nodes=read_int(block, "nodes", path, default=DEFAULT_NODES, low=MIN_CELL_NODES, high=MAX_CELL_NODES),
            operations=read_list(block, "operations", path, DEFAULT_OPERATIONS, one_of(tuple(CELL_OPS))),
            channels=read_int(block, "channels", path, default=DEFAULT_CHANNELS, low=1, high=MAX_CELL_CHANNELS),
            cells_per_stage=read_int(block, "cellsPerStage", path, default=DEFAULT_CELLS_PER_STAGE,
                                     low=1, high=MAX_CELLS_PER_STAGE),
            stages=read_int(block, "stages", path, default=DEFAULT_STAGES, low=1, high=MAX_STAGES),
            hyperparameters=hyperparameters,
        )

    def fixed_fields(self) -> dict:
        return {"nodes": self.nodes, **self.skeleton}

    def _genotype(self, values: list) -> dict:
        edges, start = [], 0
        for row in range(self.nodes - 1):
            edges.append(list(values[start:start + row + 1]))
            start += row + 1
        return {"type": "cell", "nodes": self.nodes, "edges": edges, **self.skeleton}

    def _architecture_values(self, genotype: dict) -> list:
        if genotype["nodes"] != self.nodes:
            raise CandidateError("architecture.nodes", f"the space has {self.nodes} nodes, got {genotype['nodes']}")
        for field, value in self.skeleton.items():
            if genotype[field] != value:
                raise CandidateError(f"architecture.{field}", f"the space fixes {field} = {value}, got {genotype[field]}")
        return [op for row in genotype["edges"] for op in row]
