"""DistributedDataParallel for one trial's ranks (docs/distributed.md): what the training
loop and the supernet's training call when the trial runs under torchrun.

* ``Ranks.from_env()``: this process' rank, local rank, world size and backend (torchrun's
  ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``; the launcher's ``KUBENAS_DISTRIBUTED_BACKEND``,
  else nccl on CUDA and gloo on the CPU); None for a single process, whose training is
  exactly what it was.
* ``start``: the process group, and the rank's device (``cuda:LOCAL_RANK``).
* ``wrap``: the model in ``DistributedDataParallel`` (gradients averaged across ranks in
  the backward pass; rank 0's batch-norm buffers broadcast at each forward).
* ``shard``: the training batches split between the ranks: ``training.batchSize`` stays
  the *global* batch (the same hyperparameter whatever the number of processes), each
  rank trains on its ``batchSize / world`` slice of every global batch, drawn from one
  permutation all ranks share (the shuffle generator is seeded alike), so the average of
  the ranks' gradients is the gradient of the global batch.
* ``seed_epoch``: every rank's Python, NumPy and torch generators (dropout, augmentation)
  seeded from (training.seed, rank, epoch) at each epoch's start: different per rank,
  repeatable, and a resumed trial continues exactly.
* ``sum_across``: the epoch's training sums (loss, examples, running metrics) added up
  over the ranks, so rank 0 reports the whole epoch's trainLoss.
* ``from_main``: rank 0's value (the validation metrics and on_epoch's stop answer) on
  every rank, so all ranks stop after the same epoch.

Rank 0 alone validates, measures, reports, checkpoints and exports; the others train and
return (training.launch says how a failure on another rank reaches rank 0's report).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kubenas.contract.distributed import batch_size_issue

from kubenas_trainer.errors import InvalidTrial
from kubenas_trainer.training.launch import BACKEND_ENV

# How long a rank waits for the others at a collective (rank 0 validates alone while the
# others wait at the broadcast that follows): past it, the collective fails the trial.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class Ranks:
    rank: int
    local_rank: int
    world_size: int
    backend: str | None  # None: nccl on CUDA, gloo on the CPU

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env=os.environ) -> "Ranks | None":
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world < 2:
            return None
        return cls(int(env["RANK"]), int(env.get("LOCAL_RANK", env["RANK"])), world, env.get(BACKEND_ENV) or None)


def start(ranks: Ranks, device: torch.device) -> torch.device:
    """Join the process group (once) and return this rank's device: ``cuda:LOCAL_RANK``
    when training on CUDA, else ``device``."""
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        backend = ranks.backend or ("nccl" if device.type == "cuda" else "gloo")
        if backend == "nccl" and device.type != "cuda":
            raise InvalidTrial("trial.distributed.backend: nccl needs CUDA, and this trial trains on the CPU "
                               "(training.device, or no GPU here): use backend gloo")
        tdist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size, timeout=COLLECTIVE_TIMEOUT)
    return device


def stop() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def check_batch_size(ranks: Ranks, training: dict) -> None:
    problem = batch_size_issue(training["batchSize"], ranks.world_size)
    if problem:
        raise InvalidTrial(f"training.batchSize: {problem}")


def wrap(model: nn.Module, ranks: Ranks, device: torch.device, *, find_unused_parameters: bool = False) -> nn.Module:
    """``model`` (already on ``device``) under DDP; rank 0's weights are broadcast to all.
    ``find_unused_parameters``: for a network whose path changes per step (the supernet)."""
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=find_unused_parameters)


def shard(loader, ranks: Ranks, what: str):
    """This rank's part of the training batches (``loader.shard(rank, world)``)."""
    if not hasattr(loader, "shard"):
        raise InvalidTrial(f"trial.distributed: {what}'s training batches cannot be split between processes "
                           "(its loader has no shard); run its trials as one process")
    return loader.shard(ranks.rank, ranks.world_size)


def seed_epoch(ranks: Ranks, seed: int, epoch: int) -> None:
    value = (int(seed) * 1_000_003 + ranks.rank * 7_919 + epoch) % (2**63 - 1)
    random.seed(value)
    np.random.seed(value % 2**32)
    torch.manual_seed(value)


def sum_across(values: dict, device: torch.device) -> dict:
    """``{name: number or tensor}`` summed over all ranks (float64), as floats."""
    if not values:
        return {}
    names = list(values)
    flat = torch.tensor([float(values[n].detach().double().item()) if isinstance(values[n], torch.Tensor)
                         else float(values[n]) for n in names], dtype=torch.float64,
                        device=device if device.type == "cuda" else "cpu")
    tdist.all_reduce(flat)
    return dict(zip(names, flat.tolist()))


def from_main(ranks: Ranks, value):
    """Rank 0's ``value`` (any picklable object) on every rank."""
    box = [value if ranks.main else None]
    tdist.broadcast_object_list(box, src=0)
    return box[0]
