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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from kubenas.contract.genotype import GenotypeError, describe_genotype
from kubenas.contract.result import TrialResult, failed_result, trial_result
from kubenas.contract.reward import compute_reward

from kubenas_trainer.training import checkpoint as ckpt
from kubenas_trainer.training import distributed as ddp
from kubenas_trainer.training import launch
from kubenas_trainer import errors
from kubenas_trainer.errors import DataError, Diverged, InvalidArchitecture, InvalidTrial, TrialFailure, TrialTimeout
from kubenas_trainer.tasks.interface import Loaders, TrialTask
from kubenas_trainer.training.measure import count_macs, count_parameters, measure_latency
from kubenas_trainer.settings import TrialConfig, resolve_trial
from kubenas_trainer.tasks import open_task

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


def _atomic_save(obj, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def run_trial(trial: dict, *, on_epoch: OnEpoch | None = None, model_path=None, weights_path=None,
              checkpoint_path=None, deadline: float | None = None) -> TrialResult:
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
        ddp.stop()
        if torch.get_num_threads() != threads_before:
            torch.set_num_threads(threads_before)
        if state["device"].startswith("cuda"):
            gc.collect()
            torch.cuda.empty_cache()
    metrics["wallSeconds"] = round(time.monotonic() - start, 3)
    return launch.settle(failed_result(reason, message, metrics=metrics, history=history, device=state["device"]))


def _check_latency_limit(trial: dict, model, task: TrialTask, device, metrics: dict, clock) -> None:
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
        latency = _latency(model, task, device, clock)
    metrics["latencyMs"] = round(latency, 4)
    if latency > limit:
        raise errors.ConstraintViolated(f"latencyMs {latency:.4g} > constraints.maxLatencyMs {limit:g} on "
                                        f"{device.type}: not trained")


def _latency(model, task: TrialTask, device, clock) -> float:
    return measure_latency(model, task.input_shape, device, check=clock.check, example=task.example(1, device))


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


# --------------------------------------------------------------------------- the loop
# It knows no task: everything task-specific goes through ``TrialTask`` (interface.py).


@dataclass
class _Training:
    """One trial's training state, built by ``_prepare``."""
    cfg: TrialConfig
    task: TrialTask
    model: nn.Module
    device: torch.device
    loaders: Loaders
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    autocast: Callable
    shuffle_gen: torch.Generator
    clock: _Clock
    ranks: ddp.Ranks | None = None  # a distributed trial's ranks (training/distributed.py); None: one process
    forward: nn.Module | None = None  # what train_step runs: the model under DDP, else the model

    @property
    def reports(self) -> bool:
        """Whether this process validates, reports and writes outputs: rank 0, or the only process."""
        return self.ranks is None or self.ranks.main

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def parts(self) -> dict:
        """What a checkpoint captures and restores."""
        return dict(model=self.model, optimizer=self.optimizer, scheduler=self.scheduler, scaler=self.scaler,
                    shuffle_gen=self.shuffle_gen, cuda=self.cuda)


def _run(trial, on_epoch, model_path, weights_path, checkpoint_path, clock: _Clock, history: list, metrics: dict,
         state: dict) -> TrialResult:
    cfg: TrialConfig = resolve_trial(trial)
    if cfg.checkpoint["save"] and not checkpoint_path:
        raise InvalidTrial("checkpoint.save: this trainer was given no place for checkpoint.pt; run it with "
                           "--out (kubenas-train), or set save: false")
    if model_path and "onnx" in cfg.export["formats"]:
        _require_onnx()  # before training, not after it
    if cfg.timeout_seconds:
        clock = _Clock(clock.start, clock.deadline, cfg.timeout_seconds)
    clock.check()
    device, shuffle_gen = _start(cfg.training, state)
    ranks = ddp.Ranks.from_env()
    if ranks is not None:
        device = ddp.start(ranks, device)
        ddp.check_batch_size(ranks, cfg.training)
        metrics["processes"] = ranks.world_size
    clock.where = "while loading the dataset"
    task = open_task(cfg.task, cfg.dataset, cfg.training["seed"], device)
    clock.check()
    tr = _prepare(trial, cfg, task, device, shuffle_gen, metrics, clock, ranks)
    ident = ckpt.identity(cfg, len(tr.loaders.train))
    clock.where = "while reading the checkpoint"
    resumed, notes = _resume(cfg, ident, tr.parts(), history)
    metrics["resumedFromEpoch"] = resumed
    clock.check()

    status, trained, train_seconds, seen = _epochs(tr, resumed, history, on_epoch)
    metrics["epochsTrained"] = trained
    if not tr.reports:  # another rank: rank 0 measures, saves and reports
        return trial_result(status, metrics=metrics, history=history, device=state["device"])
    last = history[-1]
    saved_to = None
    if cfg.checkpoint["save"]:  # the state after the last epoch, before anything else touches an RNG
        clock.where = "while saving the checkpoint"
        ckpt.save(ckpt.capture(ident=ident, epoch=last["epoch"], history=history, **tr.parts()), checkpoint_path)
        saved_to = str(checkpoint_path)
    reward = _final_metrics(tr, last, metrics, seen, train_seconds)
    clock.where = "while saving the model"
    _save(tr, reward, weights_path, model_path)
    if status != errors.SUCCEEDED:
        notes.append(f"stopped early after epoch {last['epoch']} of {cfg.training['epochs']}")
    metrics["wallSeconds"] = round(time.monotonic() - clock.start, 3)
    return trial_result(status, reward=reward, message="; ".join(notes), metrics=metrics, history=history,
                        device=state["device"], split=task.split, **({"checkpoint": saved_to} if saved_to else {}))


def _start(t: dict, state: dict) -> tuple[torch.device, torch.Generator]:
    """Threads, device and seeds: the training device and the shuffle generator."""
    threads = t["numThreads"] or min(torch.get_num_threads(), cgroup_cpu_limit() or torch.get_num_threads())
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    device = _select_device(t["device"])
    state["device"] = device.type
    return device, _seed_everything(t["seed"], t["deterministic"], device.type == "cuda")


def _build(task: TrialTask, cfg: TrialConfig, metrics: dict) -> nn.Module:
    """The task's network around the searched body, with its parameters and MACs counted."""
    try:
        model = task.build_model(cfg.architecture, cfg.model.get("builder"))
    except GenotypeError as exc:
        raise InvalidArchitecture(str(exc)) from None
    except ValueError as exc:
        raise DataError(f"dataset {task.data_name}: {exc}") from None
    metrics["parameters"] = count_parameters(model)
    try:
        metrics["macs"] = count_macs(model, task.input_shape, example=task.example(1))
    except RuntimeError as exc:
        if _is_oom(exc):
            raise
        raise InvalidArchitecture(f"architecture: the model does not run on inputs of shape "
                                  f"{task.input_shape}: {str(exc).splitlines()[0]}") from None
    return model


def _prepare(trial: dict, cfg: TrialConfig, task: TrialTask, device: torch.device, shuffle_gen: torch.Generator,
             metrics: dict, clock: _Clock, ranks: ddp.Ranks | None = None) -> _Training:
    """Build the model on the device (refused over its latency limit), the loaders, the
    optimizer, the learning-rate schedule and mixed precision."""
    t = cfg.training
    cuda = device.type == "cuda"
    clock.where = "while building the model"
    model = _build(task, cfg, metrics)
    clock.check()
    memory_format = torch.channels_last if cuda and t["channelsLast"] else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    _check_latency_limit(trial, model, task, device, metrics, clock)
    amp_dtype = None
    if cuda and t["mixedPrecision"]:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    autocast = (lambda: torch.autocast("cuda", dtype=amp_dtype)) if amp_dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    loaders = task.loaders(t, device, shuffle_gen, memory_format)
    if ranks is not None:  # each rank trains on its part of every global batch; DDP averages the gradients
        loaders = loaders._replace(train=ddp.shard(loaders.train, ranks, f"task {cfg.task}"))
    steps_per_epoch = len(loaders.train)
    optimizer = _make_optimizer(model, t)
    # The schedule runs over scheduleEpochs (default epochs): a trial may train its first epochs.
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(
        t["schedule"], t["scheduleEpochs"] * steps_per_epoch, int(round(t["warmupEpochs"] * steps_per_epoch))))
    return _Training(cfg, task, model, device, loaders, optimizer, scheduler, scaler, autocast, shuffle_gen, clock,
                     ranks, ddp.wrap(model, ranks, device) if ranks is not None else model)


def _epochs(tr: _Training, resumed: int, history: list, on_epoch: OnEpoch | None) -> tuple[str, int, float, int]:
    """Train from the epoch after ``resumed`` to ``training.epochs``, validating after each
    and asking ``on_epoch`` whether to go on: (status, epochs trained, training seconds,
    examples trained on)."""
    status, train_seconds, seen_total, trained = errors.SUCCEEDED, 0.0, 0, 0
    tr.model.train()
    for epoch in range(resumed + 1, tr.cfg.training["epochs"] + 1):
        epoch_start = time.monotonic()
        if tr.ranks is not None:
            ddp.seed_epoch(tr.ranks, tr.cfg.training["seed"], epoch)
        train_record, seen = _train_epoch(tr, epoch)
        if tr.cuda:
            torch.cuda.synchronize(tr.device)
        train_seconds += time.monotonic() - epoch_start
        seen_total += seen
        trained += 1
        stop = False
        if tr.reports:
            tr.clock.where = f"while validating epoch {epoch}"
            values = _evaluate(tr, tr.loaders.val)
            for name, value in values.items():
                if not math.isfinite(value):
                    raise Diverged(f"validation {name} is {value} after epoch {epoch}")
            record = {"epoch": epoch, **values, **train_record, "learningRate": tr.optimizer.param_groups[0]["lr"],
                      "seconds": round(time.monotonic() - epoch_start, 4)}
            history.append(record)
            stop = on_epoch is not None and _ask(on_epoch, record, epoch) == "stop"
        if tr.ranks is not None:  # every rank stops after the epoch rank 0 stops after
            stop = ddp.from_main(tr.ranks, stop)
        if stop:
            status = errors.EARLY_STOPPED
            break
    return status, trained, train_seconds, seen_total


def _ask(on_epoch: OnEpoch, record: dict, epoch: int):
    try:
        return on_epoch(dict(record))
    except Exception as exc:  # noqa: BLE001
        raise TrialFailure(f"on_epoch callback failed after epoch {epoch}: {type(exc).__name__}: {exc}",
                           errors.INTERNAL_ERROR) from exc


def _train_epoch(tr: _Training, epoch: int) -> tuple[dict, int]:
    """One pass over the training batches: ({trainLoss, the task's running metrics}, examples seen).
    Raises Diverged when the loss stops being finite."""
    t, device, cuda = tr.cfg.training, tr.device, tr.cuda
    steps_per_epoch = len(tr.loaders.train)
    check_every = 25 if cuda else 1  # a finiteness check syncs the GPU: not every batch there
    loss_sum = torch.zeros((), dtype=torch.float64, device=device) if cuda else 0.0
    sums: dict = {}
    seen = 0
    for step, batch in enumerate(tr.loaders.train, 1):
        tr.clock.where = f"in epoch {epoch}, batch {step} of {steps_per_epoch}"
        tr.clock.check()
        with tr.autocast():
            out = tr.task.train_step(tr.model if tr.forward is None else tr.forward, batch, t)
        _optimise(tr, out.loss)
        seen += out.count
        for name, value in out.sums.items():
            sums[name] = sums[name] + value if name in sums else value
        if cuda:  # accumulate on the GPU; a finiteness check syncs, so only every few batches
            loss_sum += out.loss.detach() * out.count
            finite = not (step % check_every == 0 or step == steps_per_epoch) or torch.isfinite(loss_sum).item()
        else:  # on the CPU reading the loss costs nothing
            value = out.loss.item()
            loss_sum += value * out.count
            finite = math.isfinite(value)
        if not finite:
            raise Diverged(f"training loss became {out.loss.item()} in epoch {epoch}, batch {step} "
                           f"(learningRate={t['learningRate']:g}, optimizer={t['optimizer']})")
    if tr.ranks is not None:  # the whole epoch's sums: every rank's part added up
        total = ddp.sum_across({"\0loss": loss_sum, "\0seen": seen, **sums}, device)
        loss_sum, seen = total.pop("\0loss"), int(total.pop("\0seen"))
        sums = total
    running = {name: (value.item() if isinstance(value, torch.Tensor) else value) / seen for name, value in sums.items()}
    return {"trainLoss": float(loss_sum) / seen, **running}, seen


def _optimise(tr: _Training, loss: torch.Tensor) -> None:
    """Backward, clip, step (through the gradient scaler under float16 AMP), then the schedule."""
    clip = tr.cfg.training["gradientClipNorm"]
    tr.optimizer.zero_grad(set_to_none=True)
    if tr.scaler is not None:
        tr.scaler.scale(loss).backward()
        if clip:
            tr.scaler.unscale_(tr.optimizer)
            nn.utils.clip_grad_norm_(tr.model.parameters(), clip)
        tr.scaler.step(tr.optimizer)
        tr.scaler.update()
    else:
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(tr.model.parameters(), clip)
        tr.optimizer.step()
    tr.scheduler.step()


def _evaluate(tr: _Training, loader) -> dict[str, float]:
    """The task's metrics over ``loader``, the model in eval mode meanwhile."""
    tr.model.eval()
    try:
        return tr.task.evaluate(tr.model, loader, tr.autocast, tr.clock.check)
    finally:
        tr.model.train()


def _final_metrics(tr: _Training, last: dict, metrics: dict, seen: int, train_seconds: float) -> float:
    """The last epoch's metrics, the test split's, latency where asked: the reward (the
    objective metric after the last epoch trained, with the penalties applied)."""
    cfg, clock = tr.cfg, tr.clock
    if not math.isfinite(last[cfg.metric]):
        raise Diverged(f"validation {cfg.metric} is {last[cfg.metric]}")
    metrics.update({name: last[name] for name in tr.task.metrics})
    metrics["trainImagesPerSecond"] = round(seen / train_seconds, 1) if train_seconds > 0 else None
    clock.where = "while evaluating the test split"
    if tr.task.test_metrics:
        test = _evaluate(tr, tr.loaders.test)
        metrics.update({"test" + name[:1].upper() + name[1:]: test[name] for name in tr.task.test_metrics})
    if cfg.training["measureLatency"] or any(p["metric"] == "latencyMs" for p in cfg.penalties):
        clock.where = "while measuring latency"
        metrics["latencyMs"] = round(_latency(tr.model, tr.task, tr.device, clock), 4)
    try:
        return compute_reward(cfg.objective, metrics)
    except ValueError as exc:
        raise Diverged(f"reward: {exc}") from None


def _save(tr: _Training, reward: float, weights_path, model_path) -> None:
    """The weights file and the exported model, in each format of ``trial.export``."""
    cfg, task = tr.cfg, tr.task
    if weights_path:
        _atomic_save({"architecture": cfg.architecture, **task.saved_fields(),
                      "stateDict": {k: v.detach().cpu() for k, v in tr.model.state_dict().items()}}, weights_path)
    if model_path:
        from kubenas_trainer.training.export import export_model

        meta = {"architecture": cfg.architecture, "summary": _summary(cfg.architecture),
                "objective": {"metric": cfg.metric, "goal": cfg.goal}, "reward": reward, "trial": cfg.name,
                "task": cfg.task, **task.metadata_fields()}
        # model_path names the TorchScript file (model.pt); each format of trial.export is
        # written beside it with its suffix (model.onnx), the task's front end built in.
        export_model(tr.model, model_path, cfg.export["formats"], cfg.export["opset"], task.export_spec(), meta)


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
