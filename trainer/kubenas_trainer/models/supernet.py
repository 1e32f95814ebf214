"""Weight sharing: the supernets of the cell and chain spaces, their training by uniform
path sampling and the inherited-weight scoring of candidates (single-path one-shot, Guo
et al. 2020).

A supernet is a module with ``select(architecture)`` (the candidate that runs next),
``sample(rng)`` (a uniformly drawn candidate of its space) and ``extract(architecture,
standalone)`` (that candidate's weights copied into its stand-alone network, whose
forward then equals the supernet's with it selected: the weight-sharing invariant,
tests/trainer/test_supernet.py). ``build_supernet`` makes the one of a space.

The supernet has the skeleton of ``models.CellNet`` (stem, stages of cells with the
residual reduction between them, BN-ReLU, the task's head), but every edge of every
cell holds every op of the space. A *path* is one op per edge: a cell genotype's
``edges``. ``model.path = edges`` selects it, and ``model(x)`` then runs exactly the
stand-alone network of that genotype (the same live edges, ``genotype.live_edges``,
summed in the same order): ``extract`` copies a path's weights into a ``CellNet`` whose
forward equals the supernet's (the weight-sharing invariant, tests/trainer/test_supernet.py).
Because the path is an attribute, the task's ``train_step`` and ``evaluate`` run the
supernet unchanged: a supernet is a body the task wraps (``TrialTask.build_supernet``).

``train_supernet``: each training batch samples a path uniformly (every edge's op
independently uniform, as SPOS), one optimizer step per batch, a checkpoint after every
epoch that a restarted trial resumes from. ``score_candidates``: for each candidate,
select its path, recalibrate batch-norm statistics on a few fixed training batches
(the running statistics of the whole network reset and re-estimated as a cumulative
average, SPOS section 3.3), then the task's validation metrics; one score per candidate.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import random
import time
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from kubenas.contract import SUCCEEDED
from kubenas.contract import oneshot as oneshot_contract
from kubenas.contract.genotype import live_edges
from kubenas.contract.result import failed_result, trial_result

from kubenas_trainer.models.ops import ResidualReduction, cell_op, init_weights

HeadFactory = Callable[[int], nn.Module]


class SuperNode(nn.Module):
    """Node ``k`` of a supernet cell: an edge from each earlier node, each holding every op."""

    def __init__(self, sources: int, operations: Sequence[str], channels: int):
        super().__init__()
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: cell_op(op, channels) for op in operations if op != "none"})
            for _ in range(sources))


class SuperCell(nn.Module):
    def __init__(self, nodes: int, operations: Sequence[str], channels: int):
        super().__init__()
        self.nodes = nn.ModuleList(SuperNode(i, operations, channels) for i in range(1, nodes))

    def forward(self, x: torch.Tensor, live: list) -> torch.Tensor:
        states = [x]
        for node, edges in zip(self.nodes, live):
            total = None
            for j, op in edges:
                y = node.edges[j][op](states[j])
                total = y if total is None else total + y
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


class CellSupernet(nn.Module):
    """Every op on every edge of the cell space ``space`` (``nodes``, ``operations``,
    ``channels``, ``stages``, ``cellsPerStage``); ``path`` (a genotype's ``edges``) picks
    the network that runs."""

    def __init__(self, space: dict, in_channels: int, head: HeadFactory):
        super().__init__()
        self.space = dict(space)
        self.num_nodes = int(space["nodes"])
        self.operations = list(space["operations"])
        c = int(space["channels"])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        blocks: list[nn.Module] = []
        for stage in range(int(space["stages"])):
            if stage > 0:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks.extend(SuperCell(self.num_nodes, self.operations, c) for _ in range(int(space["cellsPerStage"])))
        self.cells = nn.ModuleList(blocks)
        self.last_act = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.head = head(c)
        self._live: list | None = None
        self._path: tuple | None = None
        init_weights(self)

    @property
    def path(self) -> tuple | None:
        return self._path

    @path.setter
    def path(self, edges) -> None:
        edges = tuple(tuple(row) for row in edges)
        if len(edges) != self.num_nodes - 1 or any(len(row) != i + 1 for i, row in enumerate(edges)):
            raise ValueError(f"path: a {self.num_nodes}-node cell has edges rows of lengths 1..{self.num_nodes - 1}")
        for row in edges:
            for op in row:
                if op not in self.operations:
                    raise ValueError(f"path: op {op!r} is not one of the supernet's operations {self.operations}")
        self._path = edges
        self._live = live_edges(self.num_nodes, [list(r) for r in edges])

    def sample_path(self, rng: random.Random) -> tuple:
        """A uniformly random path: each edge's op drawn independently and uniformly."""
        return tuple(tuple(rng.choice(self.operations) for _ in range(i)) for i in range(1, self.num_nodes))

    def select(self, architecture: dict) -> None:
        self.path = architecture["edges"]

    def sample(self, rng: random.Random) -> dict:
        return {"type": "cell", "nodes": self.num_nodes, "edges": [list(row) for row in self.sample_path(rng)]}

    def extract(self, architecture: dict, standalone: nn.Module) -> nn.Module:
        return _extract_cell(self, architecture, standalone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._live is None:
            raise RuntimeError("CellSupernet: set .path (a cell genotype's edges) before the forward pass")
        x = self.stem(x)
        for block in self.cells:
            x = block(x, self._live) if isinstance(block, SuperCell) else block(x)
        return self.head(self.last_act(x))


def extract(supernet: nn.Module, architecture: dict, standalone: nn.Module) -> nn.Module:
    """Copy the weights ``architecture`` uses in ``supernet`` into ``standalone``, its
    stand-alone network (``build_model``'s, or a task's network around one)."""
    return supernet.extract(architecture, standalone)


def _extract_cell(supernet: CellSupernet, architecture: dict, standalone: nn.Module) -> nn.Module:
    """Copy the weights of ``architecture``'s path into ``standalone`` (a ``CellNet`` of
    the same genotype, or a task's network around one, built by ``build_model``): its
    ``cells.B.nodes.K.ops.I`` is the I-th live edge (source j, op) of node K+1, which is
    the supernet's ``cells.B.nodes.K.edges.j.op``; every other key is the same."""
    live = live_edges(int(architecture["nodes"]), architecture["edges"])
    source = supernet.state_dict()
    target = standalone.state_dict()
    prefix = next((k[: -len("stem.0.weight")] for k in target if k.endswith("stem.0.weight")), "")
    copied = {}
    for key in target:
        rest = key[len(prefix):]
        parts = rest.split(".")
        if parts[0] == "cells" and len(parts) > 4 and parts[2] == "nodes" and parts[4] == "ops":
            b, k, i = parts[1], int(parts[3]), int(parts[5])
            j, op = live[k][i]
            src = ".".join(["cells", b, "nodes", str(k), "edges", str(j), op, *parts[6:]])
        else:
            src = rest
        copied[key] = source[src].clone()
    standalone.load_state_dict(copied)
    return standalone


class ChainSupernet(nn.Module):
    """Every candidate of the chain space ``space`` (``chain_space_block``'s form: layers,
    operations, filters, kernelSizes, strides, dilations) in one network, as SPOS's choice
    blocks with channel search: at each layer one block per weighted op and kernel (and
    dilation, for the temporal ops), built at the widest ``filters`` and stride 1; a
    candidate's layer runs its block at its stride, and its ``filters`` are the block's
    first output channels (the rest are zeroed after the block's ReLU, so the next layer,
    and the head, see exactly the candidate's channels). Pooling and identity hold no
    weights. The input is zero-padded to the supernet's width, so a layer's weights for
    the candidate are the first rows and columns of the block's (``extract``)."""

    @staticmethod
    def _weighted(op: str) -> bool:
        """An op with weights: it takes ``filters`` (kubenas.contract.ops.CHAIN_OPS)."""
        from kubenas.contract.ops import CHAIN_OPS

        return CHAIN_OPS[op].takes("filters")

    @staticmethod
    def _temporal(op: str) -> bool:
        """A temporal op (1 x k along time): it takes a ``dilation``."""
        from kubenas.contract.ops import CHAIN_OPS

        return CHAIN_OPS[op].takes("dilation")

    def __init__(self, space: dict, in_channels: int, head: HeadFactory):
        super().__init__()
        from kubenas.contract.ops import CHAIN_SUPERNET_OPS

        self.space = dict(space)
        self.operations = list(space["operations"])
        unsupported = [op for op in self.operations if op not in CHAIN_SUPERNET_OPS]
        if unsupported:
            raise ValueError(f"space.operations: {', '.join(unsupported)} has no weight-sharing supernet "
                             f"(supernet ops: {', '.join(CHAIN_SUPERNET_OPS)})")
        self.choices_of = {"filters": list(space["filters"]), "kernel": list(space["kernelSizes"]),
                           "stride": list(space["strides"]), "dilation": list(space.get("dilations") or [1])}
        self.in_channels = int(in_channels)
        self.width = max(self.in_channels, *self.choices_of["filters"])
        self.blocks = nn.ModuleList(self._layer_blocks() for _ in range(int(space["layers"])))
        self.head = head(self.width)
        self._path: list | None = None
        init_weights(self)

    def _layer_blocks(self) -> nn.ModuleDict:
        from kubenas_trainer.models.ops import chain_op

        blocks = nn.ModuleDict()
        for op in self.operations:
            if not self._weighted(op):
                continue
            for kernel in self.choices_of["kernel"]:
                for dilation in self.choices_of["dilation"] if self._temporal(op) else [1]:
                    layer = {"op": op, "filters": self.width, "kernel": kernel, "stride": 1, "dilation": dilation}
                    blocks[self._key(layer)] = chain_op(layer, self.width)[0]
        return blocks

    def _key(self, layer: dict) -> str:
        dilation = f"_d{layer.get('dilation', 1)}" if self._temporal(layer["op"]) else ""
        return f"{layer['op']}_k{layer['kernel']}{dilation}"

    @property
    def path(self) -> list | None:
        return self._path

    def select(self, architecture: dict) -> None:
        from kubenas.contract.ops import CHAIN_OPS

        layers = list(architecture["layers"])
        if len(layers) != len(self.blocks):
            raise ValueError(f"architecture.layers: the supernet has {len(self.blocks)} layers, got {len(layers)}")
        for i, layer in enumerate(layers):
            if layer.get("op") not in self.operations:
                raise ValueError(f"architecture.layers[{i}].op: {layer.get('op')!r} is not one of the supernet's "
                                 f"operations {self.operations}")
            for field in ("filters", "kernel", "stride", "dilation"):
                if CHAIN_OPS[layer["op"]].takes(field) and layer.get(field, 1) not in self.choices_of[field]:
                    raise ValueError(f"architecture.layers[{i}].{field}: {layer.get(field)!r} is not one of the "
                                     f"supernet's {self.choices_of[field]}")
        self._path = layers

    def sample(self, rng: random.Random) -> dict:
        """A uniformly random candidate: each layer's op, then each field it takes."""
        from kubenas.contract.ops import CHAIN_OPS

        layers = []
        for _ in self.blocks:
            op = rng.choice(self.operations)
            layer = {"op": op}
            for field in ("filters", "kernel", "stride", "dilation"):
                if CHAIN_OPS[op].takes(field):
                    layer[field] = rng.choice(self.choices_of[field])
            layers.append(layer)
        return {"type": "chain", "layers": layers}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._path is None:
            raise RuntimeError("ChainSupernet: select(architecture) before the forward pass")
        if x.shape[1] < self.width:
            x = torch.cat([x, x.new_zeros(x.shape[0], self.width - x.shape[1], *x.shape[2:])], 1)
        for blocks, layer in zip(self.blocks, self._path):
            x = self._layer(blocks, layer, x)
        return self.head(x)

    def _layer(self, blocks: nn.ModuleDict, layer: dict, x: torch.Tensor) -> torch.Tensor:
        from kubenas_trainer.models.ops import avg_pool, max_pool

        op = layer["op"]
        if op == "identity":
            return x
        if op in ("max_pool", "avg_pool"):
            return (max_pool if op == "max_pool" else avg_pool)(layer["kernel"], layer["stride"])(x)
        block = blocks[self._key(layer)]
        first = block[0]
        stride = (1, layer["stride"]) if self._temporal(op) else layer["stride"]
        y = F.conv2d(x, first.weight, None, stride, first.padding, first.dilation, first.groups)
        for module in list(block)[1:]:
            y = module(y)
        keep = torch.zeros(self.width, device=y.device, dtype=y.dtype)
        keep[: layer["filters"]] = 1
        return y * keep.view(1, -1, 1, 1)

    def extract(self, architecture: dict, standalone: nn.Module) -> nn.Module:
        """``standalone``'s ``features.L.*`` is layer L's block for the candidate's op and
        kernel (``blocks.L.<key>.*``), its ``head.*`` the supernet's head; each tensor the
        leading part of the supernet's (first output channels, first input channels)."""
        layers = list(architecture["layers"])
        source = self.state_dict()
        copied = {}
        for key, value in standalone.state_dict().items():
            parts = key.split(".")
            if parts[0] == "features":
                src = ".".join(["blocks", parts[1], self._key(layers[int(parts[1])]), *parts[2:]])
            else:
                src = key
            tensor = source[src]
            copied[key] = tensor[tuple(slice(0, n) for n in value.shape)].clone() if value.dim() else tensor.clone()
        standalone.load_state_dict(copied)
        return standalone


def build_supernet(space: dict, in_channels: int, head: HeadFactory) -> nn.Module:
    """The supernet of a one-shot trial's ``space`` (``type`` cell or chain; a space without
    ``type`` is a cell's, as trials made before chain supernets carry it)."""
    kind = space.get("type", "cell")
    block = {k: v for k, v in space.items() if k != "type"}
    if kind == "cell":
        return CellSupernet(block, in_channels, head)
    if kind == "chain":
        return ChainSupernet(block, in_channels, head)
    raise ValueError(f"space.type: {kind!r} has no weight-sharing supernet (cell, chain)")


# --------------------------------------------------------------------------- training


def _set_lr(optimizer: torch.optim.Optimizer, base: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base * factor


def memory_format(training: dict, device: torch.device) -> torch.memory_format:
    """``channelsLast`` on CUDA, as the training loop does."""
    return torch.channels_last if device.type == "cuda" and training.get("channelsLast") else torch.contiguous_format


def train_supernet(task, supernet: CellSupernet, training: dict, *, epochs: int, seed: int,
                   checkpoint_path: str | os.PathLike | None = None,
                   on_epoch: Callable[[int, dict], None] | None = None) -> dict:
    """Train ``supernet`` for ``epochs`` epochs on the task's training split, one uniform
    path per batch, with the trial's optimizer settings, its ``schedule`` and
    ``warmupEpochs`` over these ``epochs`` (the training loop's ``_lr_lambda``),
    ``gradientClipNorm``, and on CUDA ``mixedPrecision`` (bfloat16 where supported, else
    float16 with a gradient scaler) and ``channelsLast``. After each epoch the state
    (weights, optimizer, scaler, epoch, path RNG, shuffle generator) goes to
    ``checkpoint_path`` (atomically); if it exists, training resumes after its epoch,
    exactly as an uninterrupted run. Returns ``{"epochs", "resumedFromEpoch",
    "trainSeconds", "trainLoss"}``. The trial's deadline is its process's (the runner or
    the Job stops it; the checkpoint stays). Under torchrun (a trial of several processes,
    docs/distributed.md) each rank trains its part of every global batch under DDP on the
    same path, rank 0 reads the checkpoint and broadcasts it, and alone writes it and
    calls ``on_epoch``."""
    from kubenas_trainer.training import distributed as ddp
    from kubenas_trainer.training.loop import _lr_lambda, _make_optimizer

    device = next(supernet.parameters()).device
    ranks = ddp.Ranks.from_env()  # under torchrun (docs/distributed.md): every rank samples the same paths
    if ranks is not None:
        device = ddp.start(ranks, device)
        supernet.to(device)
        ddp.check_batch_size(ranks, training)
    main = ranks is None or ranks.main
    cuda = device.type == "cuda"
    gen = torch.Generator().manual_seed(seed)
    loaders = task.loaders(training, device, gen, memory_format(training, device))
    train = loaders.train if ranks is None else ddp.shard(loaders.train, ranks, "the supernet")
    optimizer = _make_optimizer(supernet, training)
    amp_dtype, scaler = _mixed_precision(training, cuda)
    clip = float(training.get("gradientClipNorm") or 0.0)
    base_lr = training["learningRate"]
    rng = random.Random(seed)
    start = _resume(checkpoint_path, main, ranks, device, supernet, optimizer, scaler, rng, gen)
    forward = supernet if ranks is None else ddp.wrap(supernet, ranks, device, find_unused_parameters=True)
    per_epoch = len(train)
    factor = _lr_lambda(training.get("schedule", "cosine"), max(1, epochs * per_epoch),
                        int(round(float(training.get("warmupEpochs") or 0.0) * per_epoch)))
    t0 = time.monotonic()
    loss_sum, count = 0.0, 0
    for epoch in range(start + 1, epochs + 1):
        supernet.train()
        loss_sum, count = 0.0, 0
        for b, batch in enumerate(train):
            _set_lr(optimizer, base_lr, factor((epoch - 1) * per_epoch + b))
            supernet.select(supernet.sample(rng))
            out = _step(task, supernet, forward, batch, training, optimizer, scaler, amp_dtype, clip)
            loss_sum += float(out.loss.detach()) * out.count
            count += out.count
        if ranks is not None:  # the epoch's loss over every rank's part
            total = ddp.sum_across({"loss": loss_sum, "count": count}, device)
            loss_sum, count = total["loss"], int(total["count"])
        if checkpoint_path and main:
            _save(checkpoint_path, {"model": supernet.state_dict(), "optimizer": optimizer.state_dict(),
                                    "epoch": epoch, "scaler": scaler.state_dict() if scaler is not None else None,
                                    "pathRng": rng.getstate(), "shuffleGen": gen.get_state()})
        if on_epoch is not None and main:  # after the checkpoint: a callback may keep it elsewhere
            on_epoch(epoch, {"trainLoss": loss_sum / max(1, count)})
    return {"epochs": epochs, "resumedFromEpoch": start, "trainSeconds": round(time.monotonic() - t0, 3),
            "trainLoss": loss_sum / max(1, count) if count else None}


def _mixed_precision(training: dict, cuda: bool):
    """The autocast dtype (None: full precision) and the gradient scaler (float16 only)."""
    amp_dtype = None
    if cuda and training.get("mixedPrecision"):
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return amp_dtype, (torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None)


def _resume(checkpoint_path, main: bool, ranks, device, supernet: nn.Module, optimizer, scaler,
            rng: random.Random, gen: torch.Generator) -> int:
    """Load the checkpoint into the supernet, optimizer, scaler and both RNGs (rank 0 reads
    it; the other ranks get what it read); the epoch it ends, 0 without one."""
    from kubenas_trainer.training import distributed as ddp

    state = None
    if checkpoint_path and os.path.exists(checkpoint_path) and main:
        state = torch.load(checkpoint_path, map_location=device if ranks is None else "cpu", weights_only=True)
    if ranks is not None:  # the other ranks resume from what rank 0 read
        state = ddp.from_main(ranks, state)
    if state is None:
        return 0
    supernet.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rng.setstate(state["pathRng"])
    gen.set_state(state["shuffleGen"])
    return int(state["epoch"])


def _step(task, supernet: nn.Module, forward: nn.Module, batch, training: dict, optimizer, scaler, amp_dtype,
          clip: float):
    """One optimizer step on the current path (autocast, scaler and clipping as set)."""
    with torch.autocast("cuda", dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
        out = task.train_step(forward, batch, training)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(out.loss).backward()
        if clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(supernet.parameters(), clip)
        scaler.step(optimizer)
        scaler.update()
    else:
        out.loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(supernet.parameters(), clip)
        optimizer.step()
    return out


def _save(checkpoint_path, state: dict) -> None:
    """Write the checkpoint atomically (a killed pod leaves the previous one whole)."""
    tmp = f"{checkpoint_path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, checkpoint_path)


def recalibrate_bn(model: nn.Module, batches: Sequence, forward: Callable[[nn.Module, object], None]) -> None:
    """Reset every batch-norm's running statistics and re-estimate them (cumulative
    average, ``momentum=None``) from ``batches`` with the current path, in train mode
    without gradients; the model is left in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for batch in batches:
            forward(model, batch)
    for m, momentum in zip(bns, saved):
        m.momentum = momentum
    model.eval()


def score_candidates(task, supernet: CellSupernet, architectures: Sequence[dict], *, calibration: Sequence,
                     training: dict) -> list[dict]:
    """The task's validation metrics of each architecture with inherited weights: its
    path selected, batch-norm recalibrated on ``calibration`` (the same fixed training
    batches for every candidate), then ``task.evaluate`` on the validation split."""
    device = next(supernet.parameters()).device
    val = task.loaders(training, device, torch.Generator().manual_seed(0), torch.contiguous_format).val

    def forward(model, batch):
        task.train_step(model, batch, training)

    scores = []
    for arch in architectures:
        supernet.select(arch)
        recalibrate_bn(supernet, calibration, forward)
        scores.append(task.evaluate(supernet, val))
    return scores


def calibration_batches(task, training: dict, count: int, seed: int, device=None) -> list:
    """``count`` training batches drawn once (seeded), reused for every candidate."""
    gen = torch.Generator().manual_seed(seed)
    loader = task.loaders(training, device or torch.device("cpu"), gen, torch.contiguous_format).train
    out = []
    for batch in loader:
        if len(out) >= count:
            break
        out.append(batch)
    return out


# --------------------------------------------------------------------------- one trial of a phase

SUPERNET_KIND, SCORE_KIND = oneshot_contract.SUPERNET, oneshot_contract.SCORE
HEALTH_PATHS = 8  # uniformly sampled paths the supernet trial scores after training: its reward


def run_oneshot_trial(trial: dict, checkpoint_path: str | os.PathLike, *, store: str | None = None,
                      on_epoch: Callable[[dict], object] | None = None) -> dict:
    """``_run_oneshot`` with its failures as a Failed result (the reason and message of
    ``errors.TrialFailure``; a bad ``oneshot`` block is InvalidTrial naming the field).
    ``store``: where the supernet's checkpoint is kept beyond this process (a path or an
    fsspec URL in spec.artifacts; None: ``checkpoint_path`` itself is kept)."""
    from kubenas_trainer import errors

    try:
        return _run_oneshot(trial, checkpoint_path, store, on_epoch)
    except errors.TrialFailure as exc:
        return failed_result(exc.reason, exc.message)


def _fetch(store: str, local: str | os.PathLike) -> bool:
    """Copy the kept checkpoint ``store`` to ``local``; False when there is none yet."""
    from kubenas_trainer.training.checkpoint import _read_bytes

    try:
        data = _read_bytes(store)
    except FileNotFoundError:
        return False
    tmp = f"{local}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, local)
    return True


def _keep(local: str | os.PathLike, store: str) -> None:
    """Write ``local`` to ``store`` (a path: atomically; a URL: with fsspec, whose stores
    replace an object whole)."""
    if "://" in store:
        import fsspec

        with open(local, "rb") as src, fsspec.open(store, "wb") as dst:
            dst.write(src.read())
        return
    os.makedirs(os.path.dirname(store) or ".", exist_ok=True)
    tmp = f"{store}.tmp"
    with open(local, "rb") as src, open(tmp, "wb") as dst:
        dst.write(src.read())
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, store)


def _load_supernet(source: str, device) -> dict:
    from kubenas_trainer.errors import InvalidTrial
    from kubenas_trainer.training.checkpoint import _read_bytes

    try:
        data = _read_bytes(source)
    except FileNotFoundError:
        raise InvalidTrial(f"oneshot.supernetCheckpoint: no supernet checkpoint at {source} to score with; "
                           "the supernet trial writes it there (spec.artifacts)") from None
    return torch.load(io.BytesIO(data), map_location=device, weights_only=True)["model"]


def _run_oneshot(trial: dict, checkpoint_path: str | os.PathLike, store: str | None, on_epoch) -> dict:
    """One trial of a one-shot experiment (kubenas.experiment.oneshot), on the task
    interface. ``trial`` is an ordinary trial (its ``architecture`` any genotype of the
    space, used for the settings' validation) plus ``oneshot``: ``{"kind": "supernet",
    "space": <the space: type cell or chain, and its block>, "epochs": N}`` trains the supernet into ``checkpoint_path``
    (resuming from it, or from ``store`` where it is kept, and keeping it there after every
    epoch); its reward is the mean objective of :data:`HEALTH_PATHS` uniformly sampled
    paths scored as candidates are (how well the supernet's weights serve a path).
    ``{"kind": "score", "space": ..., "candidates": [genotype, ...],
    "bnRecalibrationBatches": k, "supernetCheckpoint": path or URL}`` scores the candidates
    with the supernet trial's weights: ``scores`` holds the objective metric of each
    candidate, in order, and ``reward`` the best of them. Neither reward is a candidate's
    result: the experiment ranks retrained trials only (kubenas.experiment.record)."""
    from kubenas_trainer.errors import InvalidTrial
    from kubenas_trainer.settings import resolve_trial
    from kubenas_trainer.tasks import open_task
    from kubenas_trainer.training.loop import _select_device

    spec = trial.get("oneshot") or {}
    kind = spec.get("kind")
    if kind not in (SUPERNET_KIND, SCORE_KIND):
        raise InvalidTrial(f"oneshot.kind: must be {SUPERNET_KIND} or {SCORE_KIND}, got {kind!r}")
    if not isinstance(spec.get("space"), dict):
        raise InvalidTrial("oneshot.space: required, the space's type and block (a cell's nodes, operations, "
                           "channels, stages, cellsPerStage; a chain's layers, operations, filters, kernelSizes, "
                           "strides, dilations)")
    cfg = resolve_trial(trial)
    t = cfg.training
    torch.manual_seed(t["seed"])
    device = _select_device(t["device"])
    task = open_task(cfg.task, cfg.dataset, t["seed"], device)
    try:
        net = task.build_supernet(spec["space"], cfg.model.get("supernet"))
    except (KeyError, ValueError) as exc:
        raise InvalidTrial(f"oneshot.space: {exc}") from None
    net = net.to(device, memory_format=memory_format(t, device))
    pick = max if cfg.goal == "maximize" else min
    if kind == SUPERNET_KIND:
        if store is not None and not os.path.exists(checkpoint_path):
            _fetch(store, checkpoint_path)  # a pod killed mid-training left it there

        def epoch_done(epoch: int, values: dict) -> None:
            if store is not None:
                _keep(checkpoint_path, store)
            if on_epoch is not None:  # progress (a reporter's history line); a supernet is not stopped early
                on_epoch({"epoch": epoch, **values})

        info = train_supernet(task, net, t, epochs=int(spec["epochs"]), seed=t["seed"],
                              checkpoint_path=checkpoint_path, on_epoch=epoch_done)
        rng = random.Random(f"health/{t['seed']}")
        paths = [net.sample(rng) for _ in range(HEALTH_PATHS)]
        calibration = calibration_batches(task, t, int(spec.get("bnRecalibrationBatches", 4)), seed=t["seed"],
                                          device=device)
        health = [s[cfg.metric] for s in score_candidates(task, net, paths, calibration=calibration, training=t)]
        return trial_result(SUCCEEDED, reward=sum(health) / len(health),
                            metrics={**{k: v for k, v in info.items() if v is not None}, "pathsScored": len(health)},
                            device=device.type, checkpoint=str(checkpoint_path))
    source = spec.get("supernetCheckpoint") or str(checkpoint_path)
    net.load_state_dict(_load_supernet(source, device))
    calibration = calibration_batches(task, t, int(spec.get("bnRecalibrationBatches", 4)), seed=t["seed"],
                                      device=device)
    t0 = time.monotonic()
    scores = [s[cfg.metric] for s in score_candidates(task, net, spec.get("candidates") or [],
                                                        calibration=calibration, training=t)]
    finite = [v for v in scores if isinstance(v, float) and math.isfinite(v)]
    return trial_result(SUCCEEDED, reward=pick(finite) if finite else None, scores=scores,
                        metrics={"candidates": len(scores), "scoreSeconds": round(time.monotonic() - t0, 3)},
                        device=device.type)
