"""The op registry of the chain and cell search spaces: one table each (names, what each op takes).

The search spaces, genotype validation and summaries read these tables; the trainer
registers one builder per name (``kubenas_trainer.models.ops``) and refuses to import if a
name has none. The CRD enums of the operations lists are checked against them.
"""
from __future__ import annotations

from dataclasses import dataclass

# Which kinds of search space there are, and which the built-in trainer builds: the
# space registry (kubenas.contract.spaces).


@dataclass(frozen=True)
class ChainOp:
    """A chain layer op and the genotype fields it takes besides ``op``."""

    fields: tuple[str, ...]
    doc: str

    def takes(self, field: str) -> bool:
        return field in self.fields


# Layer fields in the order a policy decides them (after the op).
CHAIN_LAYER_FIELDS = ("filters", "kernel", "stride", "dilation")

CHAIN_OPS: dict[str, ChainOp] = {
    "conv": ChainOp(("filters", "kernel", "stride"), "conv(kernel, stride) -> BN -> ReLU, `filters` output channels"),
    "dw_conv": ChainOp(("filters", "kernel", "stride"),
                       "depthwise conv(kernel, stride) -> pointwise 1x1 -> BN -> ReLU"),
    "max_pool": ChainOp(("kernel", "stride"), "max pool(kernel, stride), channels unchanged"),
    "avg_pool": ChainOp(("kernel", "stride"), "avg pool(kernel, stride), channels unchanged"),
    "identity": ChainOp((), "nothing"),
    # Temporal ops: along the last axis only (time), kernel 1 x k; for 1-D inputs laid out
    # N x C x 1 x T (keyword spotting over log-mel bins as channels, sequences).
    "tconv": ChainOp(("filters", "kernel", "stride", "dilation"),
                     "temporal conv 1 x kernel (dilated, stride along time) -> BN -> ReLU"),
    "sep_tconv": ChainOp(("filters", "kernel", "stride", "dilation"),
                         "depthwise temporal conv 1 x kernel (dilated) -> pointwise 1x1 -> BN -> ReLU"),
    "attention": ChainOp((), "pre-norm single-head self-attention over time with a residual, channels unchanged"),
}
# The ops a chain space searches when searchSpace.chain.operations is not given (the 2-D ones).
DEFAULT_CHAIN_OPS = ("conv", "dw_conv", "max_pool", "avg_pool", "identity")
# The rest of searchSpace.chain's defaults (kubenas.space.chain reads them; so does a
# one-shot supernet's space, kubenas.experiment.oneshot).
DEFAULT_CHAIN_LAYERS = 6
DEFAULT_CHAIN_FILTERS = (16, 32, 64)
DEFAULT_CHAIN_KERNEL_SIZES = (3, 5)
DEFAULT_CHAIN_STRIDES = (1, 2)
DEFAULT_CHAIN_DILATIONS = (1,)
# Chain ops a one-shot supernet shares weights over (kubenas_trainer.models.supernet.ChainSupernet):
# attention normalises over all channels, so a narrower layer before it is not a slice of a wider one.
CHAIN_SUPERNET_OPS = ("conv", "dw_conv", "max_pool", "avg_pool", "identity", "tconv", "sep_tconv")


def chain_space_block(block: dict | None) -> dict:
    """``searchSpace.chain`` with its defaults filled, in the supernet's form: ``layers``,
    ``operations``, ``filters``, ``kernelSizes``, ``strides``, ``dilations`` (validated by
    kubenas.space.chain)."""
    block = dict(block or {})
    return {"layers": int(block.get("layers", DEFAULT_CHAIN_LAYERS)),
            "operations": list(block.get("operations") or DEFAULT_CHAIN_OPS),
            "filters": list(block.get("filters") or DEFAULT_CHAIN_FILTERS),
            "kernelSizes": list(block.get("kernelSizes") or DEFAULT_CHAIN_KERNEL_SIZES),
            "strides": list(block.get("strides") or DEFAULT_CHAIN_STRIDES),
            "dilations": list(block.get("dilations") or DEFAULT_CHAIN_DILATIONS)}
KERNEL_SIZES = (1, 3, 5, 7)
STRIDES = (1, 2)
DILATIONS = (1, 2, 4, 8)
MAX_FILTERS = 4096
MAX_CHAIN_LAYERS = 64

# Cell edge ops: shape-preserving, channels in = channels out.
CELL_OPS: dict[str, str] = {
    "none": "the edge carries nothing (dropped from the network)",
    "skip_connect": "identity",
    "conv_1x1": "ReLU -> conv 1x1 -> BN",
    "conv_3x3": "ReLU -> conv 3x3 -> BN",
    "sep_conv_3x3": "two ReLU -> depthwise 3x3 -> pointwise -> BN blocks (DARTS)",
    "dil_conv_3x3": "ReLU -> depthwise 3x3 dilation 2 -> pointwise -> BN (DARTS)",
    "avg_pool_3x3": "avg pool 3x3, stride 1",
    "max_pool_3x3": "max pool 3x3, stride 1",
}
MIN_CELL_NODES, MAX_CELL_NODES = 2, 8
MAX_STAGES = 5
MAX_CELLS_PER_STAGE = 20
MAX_CELL_CHANNELS = 1024

