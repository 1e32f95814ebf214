"""Train one trial: ``run_trial(trial) -> result`` (docs/formats.md).

The same function runs in a trainer pod (through the ``kubenas-train`` CLI) and in the
local runner. It never raises for a trial-level failure: an architecture that does
not build, bad settings, missing data, a diverging loss, out-of-memory or a timeout
all come back as a result with status Failed, a ``reason`` and a ``message``.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import random
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kubenas.contract.genotype import GenotypeError, describe_genotype
from kubenas.contract.reward import compute_reward
from kubenas.contract.settings import EXPORT_SUFFIX

from . import checkpoint as ckpt
from . import errors
from .data import Dataset
from .errors import DataError, Diverged, InvalidArchitecture, InvalidTrial, TrialFailure, TrialTimeout
from .loader import BatchLoader
from .measure import count_macs, count_parameters, measure_latency
from .models import StemmedNet, build_model
from .settings import TrialConfig, resolve_trial
from .tasks import load_task

OnEpoch = Callable[[dict], object]
log = logging.getLogger("kubenas.trainer")


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class _Clock:
    """Deadline bookkeeping; ``check()`` raises TrialTimeout between batches."""

    def __init__(self, start: float, deadline: float | None, timeout_seconds: float | None):
        limits = [d for d in (deadline, start + timeout_seconds if timeout_seconds else None) if d is not None]
        self.start = start
        self.deadline = min(limits) if limits else None
        self.where = "before training"

    def check(self) -> None:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TrialTimeout(f"time limit of {self.deadline - self.start:.1f} s reached {self.where}")


def cgroup_cpu_limit() -> int | None:
    """The container's CPU limit (cgroup v2 ``cpu.max`` or v1 CFS quota), rounded up; None if unlimited.

    torch sizes its thread pool by the host's cores, not by the pod's CPU limit; more
    threads than the quota allows stall at every parallel region.
    """
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def _seed_everything(seed: int, deterministic: bool, cuda: bool) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if cuda:
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if deterministic and cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


def _select_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise errors.Unsatisfiable("training.device: cuda requested but no CUDA device is available here; "
                                   "set training.device: auto (or cpu), or run the trials where there is a GPU")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if schedule == "step":  # x0.1 at 50% and again at 75% of training
            return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
        return 1.0

    return factor


def _make_optimizer(model: nn.Module, t: dict) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if t["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=t["learningRate"], momentum=t["momentum"],
                               nesterov=t["nesterov"], weight_decay=t["weightDecay"])
    cls = torch.optim.AdamW if t["optimizer"] == "adamw" else torch.optim.Adam
    return cls(params, lr=t["learningRate"], weight_decay=t["weightDecay"])


def evaluate(model: nn.Module, loader: BatchLoader, autocast, clock: _Clock | None = None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` over ``loader``."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=loader.device)
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    with torch.inference_mode():
        for xb, yb in loader:
            if clock is not None:
                clock.check()
            with autocast():
                out = model(xb)
            loss_sum += F.cross_entropy(out.float(), yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
    model.train()
    n = loader.n
    return correct.item() / n, loss_sum.item() / n


def _result(status: str, *, reward=None, reason=None, message="", metrics=None, history=None,
            device="cpu") -> dict:
    return {"status": status, "reward": reward, "reason": reason, "message": message,
            "metrics": metrics or {}, "history": history or [], "device": device}


def _atomic_save(obj, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def run_trial(trial: dict, *, on_epoch: OnEpoch | None = None, model_path=None, weights_path=None,
              checkpoint_path=None, deadline: float | None = None) -> dict:
    """Train and evaluate one trial; returns the Trial-result dict of docs/formats.md.

    ``on_epoch(record)`` is called after every epoch with the history record; returning
    ``"stop"`` ends training early (status ``EarlyStopped``, reward = that epoch's
    validation metric). ``model_path`` / ``weights_path``: where to write the TorchScript
    model / the weights when the trial ends with a reward. ``checkpoint_path``: where the
    training state goes after the last epoch trained when ``trial.checkpoint.save``
    (checkpoint.py; needed then). ``trial.checkpoint.resumeFrom`` continues from such a
    file: ``on_epoch`` sees only the epochs trained here, the result's history has all.
    ``deadline`` is an absolute
    ``time.monotonic()`` value; ``trial["timeoutSeconds"]`` also applies.
    """
    start = time.monotonic()
    history: list[dict] = []
    metrics: dict = {}
    state = {"device": "cpu"}
    threads_before = torch.get_num_threads()
    # Only strings survive an exception: its traceback holds the frames (model, optimizer,
    # batches), which must be freed before the GPU cache is emptied.
    try:
        return _run(trial, on_epoch, model_path, weights_path, checkpoint_path, _Clock(start, deadline, None),
                    history, metrics, state)
    except TrialFailure as exc:
        reason, message = exc.reason, exc.message
    except GenotypeError as exc:
        reason, message = errors.INVALID_ARCHITECTURE, str(exc)
    except Exception as exc:  # noqa: BLE001 - the trial fails, the caller does not
        if _is_oom(exc):
            reason = errors.OUT_OF_MEMORY
            message = f"out of memory on {state['device']}: {str(exc).splitlines()[0][:300]}"
        else:
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
            reason, message = errors.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}{where}"
    finally:
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        if state["device"].startswith("cuda"):
            gc.collect()
            torch.cuda.empty_cache()
    metrics["wallSeconds"] = round(time.monotonic() - start, 3)
    return _result(errors.FAILED, reason=reason, message=message, metrics=metrics, history=history,
                   device=state["device"])


def _check_latency_limit(trial: dict, model, data, device, memory_format, metrics: dict, clock) -> None:
    """``constraints.maxLatencyMs``: measured on this device on the built, untrained network
    (latency does not depend on the weights); over the limit, the trial fails
    ConstraintViolated before its first training step. The RNG states are left as they
    were, so a constrained trial trains exactly as an unconstrained one."""
    limit = ((trial.get("constraints") or {}) if isinstance(trial.get("constraints"), dict) else {}).get(
        "maxLatencyMs")
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
        raise errors.InvalidTrial(f"constraints.maxLatencyMs: must be a number of milliseconds > 0, got {limit!r}")
    clock.where = "while measuring latency against constraints.maxLatencyMs"
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        latency = measure_latency(model, data.input_shape, device, memory_format=memory_format,
                                  check=clock.check, example=data.example(1, device))
    metrics["latencyMs"] = round(latency, 4)
    if latency > limit:
        raise errors.ConstraintViolated(f"latencyMs {latency:.4g} > constraints.maxLatencyMs {limit:g} on "
                                        f"{device.type}: not trained")


def _summary(architecture) -> str:
    try:
        return describe_genotype(architecture)
    except (AttributeError, TypeError, KeyError):  # a user builder's decisions: no genotype to describe
        return ""


def _require_onnx() -> None:
    import importlib.util

    if importlib.util.find_spec("onnx") is None:
        raise errors.Unsatisfiable("export.formats: onnx needs the onnx package where the trainer runs; "
                                   "pip install 'kubenas[train]' (or onnx), or remove onnx from export.formats")


def _run(trial, on_epoch, model_path, weights_path, checkpoint_path, clock: _Clock, history: list, metrics: dict,
         state: dict) -> dict:
    cfg: TrialConfig = resolve_trial(trial)
    t = cfg.training
    if cfg.checkpoint["save"] and not checkpoint_path:
        raise InvalidTrial("checkpoint.save: this trainer was given no place for checkpoint.pt; run it with "
                           "--out (kubenas-train), or set save: false")
    if model_path and "onnx" in cfg.export["formats"]:
        _require_onnx()  # before training, not after it
    if cfg.timeout_seconds:
        clock = _Clock(clock.start, clock.deadline, cfg.timeout_seconds)
    clock.check()
    threads = t["numThreads"] or min(torch.get_num_threads(), cgroup_cpu_limit() or torch.get_num_threads())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    device = _select_device(t["device"])
    state["device"] = device.type
    cuda = device.type == "cuda"
    shuffle_gen = _seed_everything(t["seed"], t["deterministic"], cuda)

    clock.where = "while loading the dataset"
    if cfg.dataset.get("loader"):  # the user's data (user_code.py), for the image task's loop
        from .tasks import TaskData
        from .user_code import dataset_from_loader

        task = TaskData(dataset=dataset_from_loader(cfg.dataset, t["seed"]))
    else:
        task = load_task(cfg.task, cfg.dataset, cfg.dataset.get("seed", t["seed"]), device)
    data: Dataset = task.dataset
    clock.check()

    clock.where = "while building the model"
    stem = task.stem()
    try:
        if stem is None:
            body_shape = data.input_shape
        else:
            with torch.no_grad():
                body_shape = tuple(stem(data.example(1)).shape[1:])
        if cfg.model.get("builder"):  # the user's model (user_code.py)
            from .user_code import build_user_model

            body = build_user_model(cfg.model["builder"], cfg.architecture, body_shape, data.num_classes)
        else:
            body = build_model(cfg.architecture, body_shape, data.num_classes)
        model = body if stem is None else StemmedNet(stem, body)
    except GenotypeError as exc:
        raise InvalidArchitecture(str(exc)) from None
    except ValueError as exc:
        raise DataError(f"dataset {data.name}: {exc}") from None
    metrics["parameters"] = count_parameters(model)
    try:
        metrics["macs"] = count_macs(model, data.input_shape, example=data.example(1))
    except RuntimeError as exc:
        if _is_oom(exc):
            raise
        raise InvalidArchitecture(f"architecture: the model does not run on inputs of shape "
                                  f"{data.input_shape}: {str(exc).splitlines()[0]}") from None
    clock.check()

    memory_format = torch.channels_last if cuda and t["channelsLast"] else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    _check_latency_limit(trial, model, data, device, memory_format, metrics, clock)
    amp_dtype = None
    if cuda and t["mixedPrecision"]:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    train_loader = BatchLoader(data.train, data, t["batchSize"], device, shuffle=True, generator=shuffle_gen,
                               memory_format=memory_format, max_batches=t["maxTrainBatches"],
                               transform=task.train_transform(shuffle_gen))
    val_loader = BatchLoader(data.val, data, t["evalBatchSize"], device, shuffle=False, memory_format=memory_format)
    test_loader = BatchLoader(data.test, data, t["evalBatchSize"], device, shuffle=False,
                              memory_format=memory_format)
    steps_per_epoch = len(train_loader)
    optimizer = _make_optimizer(model, t)
    # The schedule runs over scheduleEpochs (default epochs): a trial may train its first epochs.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(
        t["schedule"], t["scheduleEpochs"] * steps_per_epoch, int(round(t["warmupEpochs"] * steps_per_epoch))))
    criterion = nn.CrossEntropyLoss(label_smoothing=t["labelSmoothing"])
    check_every = 25 if cuda else 1  # a finiteness check syncs the GPU: not every batch there

    ident = ckpt.identity(cfg, steps_per_epoch)
    parts = dict(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, shuffle_gen=shuffle_gen,
                 cuda=cuda)
    clock.where = "while reading the checkpoint"
    resumed, notes = _resume(cfg, ident, parts, history)
    metrics["resumedFromEpoch"] = resumed
    clock.check()

    status = errors.SUCCEEDED
    train_seconds, train_images, trained = 0.0, 0, 0
    model.train()
    for epoch in range(resumed + 1, t["epochs"] + 1):
        epoch_start = time.monotonic()
        loss_sum = torch.zeros((), dtype=torch.float64, device=device) if cuda else 0.0
        correct = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        for step, (xb, yb) in enumerate(train_loader, 1):
            clock.where = f"in epoch {epoch}, batch {step} of {steps_per_epoch}"
            clock.check()
            with autocast():
                out = model(xb)
                loss = criterion(out, yb)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if t["gradientClipNorm"]:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), t["gradientClipNorm"])
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                if t["gradientClipNorm"]:
                    nn.utils.clip_grad_norm_(model.parameters(), t["gradientClipNorm"])
                optimizer.step()
            scheduler.step()
            seen += yb.shape[0]
            correct += (out.detach().argmax(1) == yb).sum()
            if cuda:  # accumulate on the GPU; a finiteness check syncs, so only every few batches
                loss_sum += loss.detach() * yb.shape[0]
                finite = not (step % check_every == 0 or step == steps_per_epoch) or torch.isfinite(loss_sum).item()
            else:  # on the CPU reading the loss costs nothing
                value = loss.item()
                loss_sum += value * yb.shape[0]
                finite = math.isfinite(value)
            if not finite:
                raise Diverged(f"training loss became {loss.item()} in epoch {epoch}, batch {step} "
                               f"(learningRate={t['learningRate']:g}, optimizer={t['optimizer']})")
        if cuda:
            torch.cuda.synchronize(device)
        train_seconds += time.monotonic() - epoch_start
        train_images += seen
        trained += 1

        clock.where = f"while validating epoch {epoch}"
        val_acc, val_loss = evaluate(model, val_loader, autocast, clock)
        if not math.isfinite(val_loss):
            raise Diverged(f"validation loss is {val_loss} after epoch {epoch}")
        record = {"epoch": epoch, "accuracy": val_acc, "loss": val_loss, "trainLoss": float(loss_sum) / seen,
                  "trainAccuracy": correct.item() / seen, "learningRate": optimizer.param_groups[0]["lr"],
                  "seconds": round(time.monotonic() - epoch_start, 4)}
        history.append(record)
        if on_epoch is not None:
            try:
                answer = on_epoch(dict(record))
            except Exception as exc:  # noqa: BLE001
                raise TrialFailure(f"on_epoch callback failed after epoch {epoch}: {type(exc).__name__}: {exc}",
                                   errors.INTERNAL_ERROR) from exc
            if answer == "stop":
                status = errors.EARLY_STOPPED
                break

    metrics["epochsTrained"] = trained
    last = history[-1]
    saved_to = None
    if cfg.checkpoint["save"]:  # the state after the last epoch, before anything else touches an RNG
        clock.where = "while saving the checkpoint"
        ckpt.save(ckpt.capture(ident=ident, epoch=last["epoch"], history=history, **parts), checkpoint_path)
        saved_to = str(checkpoint_path)
    if not math.isfinite(last[cfg.metric]):
        raise Diverged(f"validation {cfg.metric} is {last[cfg.metric]}")
    metrics.update(accuracy=last["accuracy"], loss=last["loss"])
    metrics["trainImagesPerSecond"] = round(train_images / train_seconds, 1) if train_seconds > 0 else None

    clock.where = "while evaluating the test split"
    metrics["testAccuracy"], _ = evaluate(model, test_loader, autocast, clock)
    if t["measureLatency"] or any(p["metric"] == "latencyMs" for p in cfg.penalties):
        clock.where = "while measuring latency"
        metrics["latencyMs"] = round(measure_latency(model, data.input_shape, device, memory_format=memory_format,
                                                     check=clock.check, example=data.example(1, device)), 4)
    # The objective metric after the last epoch trained, with the penalties applied.
    try:
        reward = compute_reward(cfg.objective, metrics)
    except ValueError as exc:
        raise Diverged(f"reward: {exc}") from None
    clock.where = "while saving the model"
    if weights_path:
        _atomic_save({"architecture": cfg.architecture, "inputShape": list(data.input_shape),
                      "numClasses": data.num_classes, "classes": data.classes, "scale": data.scale,
                      "mean": data.mean, "std": data.std,
                      "stateDict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, weights_path)
    if model_path:
        from .export import export_onnx, export_torchscript

        meta = {"architecture": cfg.architecture, "summary": _summary(cfg.architecture),
                "classes": data.classes, "numClasses": data.num_classes, "dataset": data.name,
                "objective": {"metric": cfg.metric, "goal": cfg.goal}, "reward": reward, "trial": cfg.name,
                "task": cfg.task, "split": data.info, **task.metadata}
        # model_path names the TorchScript file (model.pt); each format of trial.export is
        # written beside it with its suffix (model.onnx).
        # Both formats export the same module: the task's front end and normalisation built in.
        how = dict(metadata=meta, front=task.front,
                   input_doc=task.input_doc if cfg.task != "image-classification" else None,
                   example=task.export_example(2) if task.export_example else None,
                   normalise=data.input_kind != "tokens", variable_length=task.variable_length)
        if "torchscript" in cfg.export["formats"]:
            export_torchscript(model, model_path, data.input_shape, data.mean, data.std, **how)
        if "onnx" in cfg.export["formats"]:
            export_onnx(model, Path(model_path).with_suffix(EXPORT_SUFFIX["onnx"]), data.input_shape, data.mean,
                        data.std, opset=cfg.export["opset"], **how)
    if status != errors.SUCCEEDED:
        notes.append(f"stopped early after epoch {last['epoch']} of {t['epochs']}")
    metrics["wallSeconds"] = round(time.monotonic() - clock.start, 3)
    result = {**_result(status, reward=reward, message="; ".join(notes), metrics=metrics, history=history,
                        device=state["device"]), "split": data.info}
    return {**result, "checkpoint": saved_to} if saved_to else result


def _resume(cfg: TrialConfig, ident: dict, parts: dict, history: list) -> tuple[int, list[str]]:
    """Continue from ``trial.checkpoint.resumeFrom`` when it can be read: restores the
    training state into ``parts``, puts the checkpoint's epochs into ``history``; returns
    (the epoch it holds, notes for the result's message). (0, [why]) when there is no
    readable checkpoint there: the trial trains from scratch."""
    where = cfg.checkpoint["resumeFrom"]
    if not where:
        return 0, []
    saved, why = ckpt.read(where)
    if saved is None:
        note = f"checkpoint.resumeFrom {where} {why}: trained from scratch"
        log.warning("%s", note)
        return 0, [note]
    diff = ckpt.mismatch(saved["identity"], ident)
    if diff is not None:
        name, theirs, ours = diff
        raise InvalidTrial(f"checkpoint.resumeFrom: {where} was trained with a different {name} "
                           f"({_short(theirs)}; this trial: {_short(ours)}): a checkpoint continues only the same "
                           "network and training; resume from this trial's own checkpoint, or remove resumeFrom "
                           "to train from scratch")
    epochs = cfg.training["epochs"]
    if saved["epoch"] >= epochs:
        raise InvalidTrial(f"checkpoint.resumeFrom: {where} holds epoch {saved['epoch']}, and this trial trains to "
                           f"epoch {epochs} (training.epochs): nothing is left to train; raise training.epochs "
                           f"above {saved['epoch']} (at most scheduleEpochs, {cfg.training['scheduleEpochs']})")
    ckpt.restore(saved, **parts)
    history.extend(dict(h) for h in saved["history"])
    log.info("resumed from %s after epoch %d", where, saved["epoch"])
    return saved["epoch"], []


def _short(value, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
