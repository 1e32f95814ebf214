"""The training state of a trial, saved so that another trial continues it (``trial.checkpoint``).

``capture`` takes everything the next epoch depends on: the model, optimizer,
learning-rate schedule and gradient scaler states, the shuffle generator and the
torch, CUDA, numpy and Python random states, the epoch reached and the history so far,
plus an ``identity``: what must be equal for the continuation to be the same training
(architecture, task, dataset, model builder, every training setting that shapes the
trajectory, and the batches per epoch). ``restore`` puts it back, so on the same
device and settings training N epochs straight and training k, saving, then resuming
to N give the same history and weights (tests/trainer/test_checkpoint.py).

``read`` returns None with the reason when there is nothing readable at the location
(the trial then trains from scratch); ``mismatch`` names the first identity field that
differs (the trial then fails: never continue a different network).
"""
from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT = 1
# Training settings that say where and how fast a trial runs, not what it trains:
# a checkpoint resumes whatever they are. epochs is how far this trial trains.
RUN_ONLY = ("epochs", "device", "numThreads", "evalBatchSize", "measureLatency", "deterministic", "channelsLast")


def identity(cfg, steps_per_epoch: int) -> dict:
    """What a checkpoint and the trial resuming it must agree on, by field name."""
    ident = {"architecture": cfg.architecture, "task": cfg.task, "dataset": cfg.dataset,
             "model": cfg.model, "stepsPerEpoch": steps_per_epoch}
    ident.update({f"training.{name}": value for name, value in cfg.training.items() if name not in RUN_ONLY})
    return ident


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def mismatch(saved: dict, current: dict) -> tuple[str, object, object] | None:
    """(field, the checkpoint's value, this trial's) of the first differing field, or None."""
    for name in sorted(set(saved) | set(current)):
        if _canonical(saved.get(name)) != _canonical(current.get(name)):
            return name, saved.get(name), current.get(name)
    return None


def _rng_states(shuffle_gen: torch.Generator, cuda: bool) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"shuffle": shuffle_gen.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if cuda else [],
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "hasGauss": int(has_gauss), "cachedGaussian": float(cached)},
            "python": random.getstate()}


def capture(*, ident: dict, epoch: int, history: list, model, optimizer, scheduler, scaler,
            shuffle_gen: torch.Generator, cuda: bool) -> dict:
    """The training state after ``epoch`` (tensors on the CPU)."""
    return {"format": FORMAT, "identity": ident, "epoch": epoch, "history": [dict(h) for h in history],
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": _rng_states(shuffle_gen, cuda)}


def restore(state: dict, *, model, optimizer, scheduler, scaler, shuffle_gen: torch.Generator, cuda: bool) -> None:
    """Put ``capture``'s state back into freshly built objects of the same trial."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])  # moves its tensors to the parameters' device
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    rng = state["rng"]
    shuffle_gen.set_state(rng["shuffle"])
    torch.set_rng_state(rng["torch"])
    if cuda and rng["cuda"]:
        torch.cuda.set_rng_state_all(rng["cuda"])
    np_state = rng["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["hasGauss"], np_state["cachedGaussian"]))
    random.setstate(rng["python"])


def save(state: dict, path: str | os.PathLike) -> None:
    """Write atomically: a reader sees the previous file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _read_bytes(location: str) -> bytes:
    if "://" in location:
        import fsspec

        with fsspec.open(location, "rb") as f:
            return f.read()
    with open(location, "rb") as f:
        return f.read()


def read(location: str) -> tuple[dict | None, str]:
    """(the checkpoint's state, "") or (None, why it cannot be read)."""
    try:
        data = _read_bytes(location)
    except FileNotFoundError:
        return None, "not found"
    except Exception as exc:  # noqa: BLE001 - any store or file error: the trial restarts
        return None, f"cannot be read ({type(exc).__name__}: {str(exc)[:200]})"
    try:
        # weights_only: tensors and plain containers only, so a checkpoint runs no code.
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated or not a torch file
        return None, f"is not a readable checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    if not isinstance(state, dict) or state.get("format") != FORMAT or "identity" not in state:
        return None, f"is not a kubenas checkpoint of format {FORMAT}"
    return state, ""
