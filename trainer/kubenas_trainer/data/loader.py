"""Mini-batches from an in-memory split, normalised on the training device.

The datasets kubenas trains on are small (digits, MNIST, CIFAR-10 are at most 150 MB
as uint8), so a per-sample ``DataLoader`` with worker processes would cost more than
it saves. Batches are gathered with one index operation, moved to the device (the
whole split lives on the GPU when it fits in ``device_budget_bytes``; otherwise
batches come from pinned host memory with non-blocking copies) and normalised there
as ``x * a + b`` in float32.
"""
from __future__ import annotations

from typing import Iterator

import torch

from kubenas_trainer.data import Dataset, Split


class BatchLoader:
    def __init__(self, split: Split, dataset: Dataset, batch_size: int, device: torch.device, *,
                 shuffle: bool, generator: torch.Generator | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format,
                 max_batches: int | None = None, device_budget_bytes: int = 1 << 30, transform=None):
        self.n = len(split)
        self.batch_size = batch_size
        self.device = device
        self.shuffle = shuffle
        self.generator = generator
        self.memory_format = memory_format
        self.max_batches = max_batches
        x, y = split.x, split.y
        if device.type == "cuda":
            if x.numel() * x.element_size() <= device_budget_bytes:
                x, y = x.to(device), y.to(device)
            else:
                x, y = x.pin_memory(), y.pin_memory()
        self.x, self.y = x, y
        affine = dataset.affine(device)
        self.a, self.b = affine if affine is not None else (None, None)
        # A task's training transform (audio augmentation): raw batch -> model input, before normalisation.
        self.transform = transform
        self.rank, self.world = 0, 1  # shard(): this process' part of each batch of a distributed trial

    def shard(self, rank: int, world: int) -> "BatchLoader":
        """Yield only rank ``rank``'s slice (``batch_size / world`` examples) of every batch,
        the batches themselves unchanged (the shuffle generator is seeded alike on every
        rank, so all draw the same permutation); ``batch_size`` must be a multiple of
        ``world``. A trailing batch is cut to a multiple of ``world`` and kept while each
        rank gets at least 2 of it (batch norm cannot train on one)."""
        if self.batch_size % world:
            raise ValueError(f"batch size {self.batch_size} is not a multiple of {world} processes")
        self.rank, self.world = rank, world
        return self

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        if self.world > 1:
            count = full + (1 if rest // self.world >= 2 else 0)
            return min(count, self.max_batches) if self.max_batches else count
        # In training, a trailing batch of one is dropped: batch norm cannot train on it.
        count = full + (1 if rest > 1 or (rest == 1 and not self.shuffle) or full == 0 else 0)
        return min(count, self.max_batches) if self.max_batches else count

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bs = self.batch_size
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator)
            if self.x.device != order.device:
                order = order.to(self.x.device)
        for i in range(len(self)):
            lo, hi = i * bs, min((i + 1) * bs, self.n)
            if self.world > 1:  # this rank's equal part of the (trailing batch cut to a multiple of world)
                part = (hi - lo) // self.world
                lo, hi = lo + self.rank * part, lo + (self.rank + 1) * part
            if self.shuffle:
                idx = order[lo:hi]
                xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
            else:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            if xb.device != self.device:
                xb = xb.to(self.device, non_blocking=True)
                yb = yb.to(self.device, non_blocking=True)
            if self.transform is not None:
                xb = self.transform(xb)
            if self.a is not None:  # token ids are not normalised
                xb = torch.addcmul(self.b, xb.float(), self.a)  # (x * scale - mean) / std
            if xb.dim() == 4 and self.memory_format is not torch.contiguous_format:
                xb = xb.contiguous(memory_format=self.memory_format)
            yield xb, yb
