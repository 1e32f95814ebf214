"""Model cost: parameters, multiply-accumulates, inference latency.

MACs are counted per sample with forward hooks on the layers that carry the
multiply-accumulates (the usual convention of MAC counters):

- Conv2d: ``out_elements * (in_channels / groups) * kh * kw`` (bias adds not counted)
- Linear: ``out_elements * in_features``
- the ``attention`` op's two batched products (q k^T and attention x v): ``2 * L^2 * C``
  for L positions of C channels (its projections are Linear layers)

Pooling, batch norm, activations and additions are not counted. Edges a cell never
computes (``none``, or nodes that cannot reach the output) cost nothing.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_shape: tuple[int, ...], example: torch.Tensor | None = None) -> int:
    """Multiply-accumulates of one forward pass of one sample of ``input_shape`` (or of
    ``example``, a batch of one, for inputs that are not float tensors such as token ids)."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() // output.shape[0] * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal total
        total += output.numel() // output.shape[0] * module.in_features

    def attention_hook(module, inputs, output):
        nonlocal total
        _, c, h, w = output.shape
        total += 2 * (h * w) ** 2 * c

    from kubenas_trainer.models.ops import TemporalAttention

    handles = []
    for m in model.modules():
        if isinstance(m, TemporalAttention):
            handles.append(m.register_forward_hook(attention_hook))
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device) if example is None else example.to(device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(model: nn.Module, input_shape: tuple[int, ...], device: torch.device,
                    *, warmup: int = 10, iterations: int = 50, budget_seconds: float = 1.0,
                    memory_format: torch.memory_format = torch.contiguous_format,
                    check=None, example: torch.Tensor | None = None) -> float:
    """Median wall time in milliseconds of one batch-1 forward pass (eval mode, no grad).

    Runs ``warmup`` passes first, then up to ``iterations`` timed passes or until
    ``budget_seconds`` is spent (at least 3). ``check`` (if given) is called between
    passes, e.g. to enforce a deadline.
    """
    was_training = model.training
    model.eval()
    if example is not None:
        x = example.to(device)
    else:
        x = torch.randn(1, *input_shape, device=device).contiguous(memory_format=memory_format)
    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            _sync(device)
            start = time.perf_counter()
            while len(times) < iterations and (len(times) < 3 or time.perf_counter() - start < budget_seconds):
                if check is not None:
                    check()
                t0 = time.perf_counter()
                model(x)
                _sync(device)
                times.append(time.perf_counter() - t0)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000.0
