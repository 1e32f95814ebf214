"""The GPU check (issue 26 item 3): what the trainer does on one CUDA device, in one table.

    python bench/gpu_check.py                      # one GPU, under 8 minutes (CIFAR-10-sized synthetic data)
    python bench/gpu_check.py --device cpu --quick # the same code paths on a small network on a CPU (tests/bench)

Every number comes from the trainer's own entry points (``run_trial``, ``train_supernet``),
never from a hand-written loop:

1. **epoch time**: a NAS-Bench-201-style cell network (16 channels, 3 stages) trained 2
   epochs on 40,000 32x32x3 images (CIFAR-10's training split, synthetic unless
   ``--cifar DIR`` names the real batches), with ``mixedPrecision`` off, on, and on with
   ``channelsLast``: the second epoch's seconds (the first pays cuDNN autotuning) and the
   training images per second;
2. **checkpoint/resume**: 2 epochs straight against 1 epoch, ``checkpoint.save``, then
   ``resumeFrom`` for the second, both ``deterministic: true``: the largest weight
   difference, which must be at most ``RESUME_ATOL`` (1e-5; exact on the CPU), and the
   same validation accuracy;
3. **export**: TorchScript and ONNX exported from the CUDA-trained model, against that
   model's own logits (eager, on the device): TorchScript on the device within
   ``TORCHSCRIPT_ATOL`` (1e-4), ONNX (onnxruntime, CPU) within ``ONNX_ATOL`` (1e-2: the
   device's convolutions may use TF32, whose 10-bit mantissa moves logits by ~1e-3), and
   the same predicted class for at least 99 % of the images;
4. **supernet**: 2 training steps of the cell space's one-shot supernet (uniform paths),
   its loss finite and its seconds.

It prints one table and writes it as JSON (``--json``, default
bench/results/gpu_check-<device>.json) with the device's name, torch's version and the
date. Exit status 0 when every check passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
RESUME_ATOL = 1e-5
TORCHSCRIPT_ATOL = 1e-4
ONNX_ATOL = 1e-2
AGREEMENT = 0.99
CELL = {"type": "cell", "nodes": 4, "channels": 16, "stages": 3, "cellsPerStage": 2,
        "edges": [["conv_3x3"], ["conv_3x3", "skip_connect"], ["conv_1x1", "sep_conv_3x3", "avg_pool_3x3"]]}
SPACE = {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3"],
         "channels": 16, "stages": 3, "cellsPerStage": 2}
# --quick (the CPU test): the same code paths on a network of 8 channels, 2 stages of 1 cell.
QUICK = {"channels": 8, "stages": 2, "cellsPerStage": 1}
CELL_IN_USE = CELL


def synthetic_cifar(path: Path, train: int, test: int, seed: int = 0) -> Path:
    """CIFAR-10-shaped images (uint8, N x 32 x 32 x 3) whose class is a colour and a
    stripe direction under noise: learnable, so accuracy means something."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 10, n)
        base = rng.normal(0, 40, (n, 32, 32, 3)) + 128
        colour = np.array([[np.cos(c), np.sin(c), np.cos(2 * c)] for c in np.arange(10) * 0.6]) * 40
        stripes = np.sin(np.arange(32)[None, :] * (0.3 + 0.1 * (y[:, None] % 5)))  # n x 32
        x = base + colour[y][:, None, None, :] + np.where(y[:, None, None, None] < 5, stripes[:, :, None, None],
                                                          stripes[:, None, :, None]) * 30
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = split(train)
    x_test, y_test = split(test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
             classes=np.array([f"class{i}" for i in range(10)]))
    return path


class Table:
    def __init__(self):
        self.rows: list[dict] = []

    def add(self, check: str, setting: str, value, unit: str, ok: bool | None = None, bound: str = "") -> None:
        self.rows.append({"check": check, "setting": setting, "value": value, "unit": unit, "bound": bound,
                          "ok": ok})

    def text(self) -> str:
        head = ("check", "setting", "value", "unit", "bound", "ok")
        cells = [[r["check"], r["setting"], _fmt(r["value"]), r["unit"], r["bound"],
                  "" if r["ok"] is None else ("yes" if r["ok"] else "NO")] for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        lines = [" | ".join(h.ljust(w) for h, w in zip(head, widths)), "-+-".join("-" * w for w in widths)]
        lines += [" | ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    @property
    def passed(self) -> bool:
        return all(r["ok"] is not False for r in self.rows)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.4g}"
    return str(value)


def _trial(dataset: dict, device: str, epochs: int, batch: int, limit_batches: int | None, **training) -> dict:
    t = {"epochs": epochs, "batchSize": batch, "optimizer": "sgd", "learningRate": 0.05, "device": device,
         "measureLatency": False, **training}
    if limit_batches:
        t["maxTrainBatches"] = limit_batches
    if device == "cpu":  # one thread: on a busy machine a second one stalls every parallel region
        t["numThreads"] = 1
    return {"name": "gpu-check", "architecture": CELL_IN_USE, "dataset": dataset, "training": t}


def _require(result: dict, what: str) -> dict:
    if result["status"] != "Succeeded":
        raise SystemExit(f"gpu_check: {what}: the trial {result['status']} ({result.get('reason')}): "
                         f"{result.get('message')}")
    return result


def epoch_times(table: Table, dataset: dict, device: str, args) -> None:
    from kubenas_trainer.training.loop import run_trial

    settings = [("fp32", {"mixedPrecision": False, "channelsLast": False}),
                ("mixedPrecision", {"mixedPrecision": True, "channelsLast": False}),
                ("mixedPrecision + channelsLast", {"mixedPrecision": True, "channelsLast": True})]
    for name, flags in settings:
        result = _require(run_trial(_trial(dataset, device, 2, args.batch, args.limit_batches, **flags)),
                          f"epoch time ({name})")
        seconds = result["history"][-1]["seconds"]
        table.add("epoch time", name, round(seconds, 3), "s (epoch 2, with validation)")
        table.add("throughput", name, result["metrics"]["trainImagesPerSecond"], "train images/s (both epochs)")
        table.add("accuracy", name, round(result["reward"], 4), "validation, after 2 epochs")


def checkpoint_resume(table: Table, dataset: dict, device: str, args, work: Path) -> None:
    from kubenas_trainer.training.loop import run_trial

    base = _trial(dataset, device, 2, args.batch, args.limit_batches, deterministic=True, mixedPrecision=False)
    straight = _require(run_trial({**base, "checkpoint": {"save": False}}, weights_path=work / "straight.pt"),
                        "2 epochs straight")
    first = _require(run_trial({**base, "training": {**base["training"], "epochs": 1, "scheduleEpochs": 2},
                                "checkpoint": {"save": True}},
                               checkpoint_path=work / "checkpoint.pt"), "epoch 1 with checkpoint.save")
    assert first["checkpoint"]
    resumed = _require(run_trial({**base, "checkpoint": {"resumeFrom": str(work / "checkpoint.pt")}},
                                 weights_path=work / "resumed.pt"), "epoch 2 resumed")
    a = torch.load(work / "straight.pt", weights_only=True)["stateDict"]
    b = torch.load(work / "resumed.pt", weights_only=True)["stateDict"]
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    table.add("checkpoint/resume", "1 epoch + resume vs 2 straight", diff, "max |weight difference|",
              diff <= RESUME_ATOL, f"<= {RESUME_ATOL:g}")
    same = straight["reward"] == resumed["reward"] and resumed["metrics"]["resumedFromEpoch"] == 1
    table.add("checkpoint/resume", "validation accuracy", f"{straight['reward']:.4f} / {resumed['reward']:.4f}",
              "straight / resumed", same, "equal")


def export(table: Table, dataset: dict, device: str, args, work: Path) -> None:
    from kubenas_trainer.models import build_model
    from kubenas_trainer.training.loop import run_trial

    trial = {**_trial(dataset, device, 1, args.batch, args.limit_batches),
             "export": {"formats": ["torchscript", "onnx"]}}
    _require(run_trial(trial, model_path=work / "model.pt", weights_path=work / "weights.pt"), "export")
    saved = torch.load(work / "weights.pt", weights_only=True)
    eager = build_model(saved["architecture"], tuple(saved["inputShape"]), saved["numClasses"])
    eager.load_state_dict(saved["stateDict"])
    dev = torch.device(device)
    eager = eager.to(dev).eval()
    images = torch.rand(256, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor(saved["mean"], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(saved["std"], dtype=torch.float32).view(1, -1, 1, 1)
    with torch.no_grad():
        reference = eager(((images - mean) / std).to(dev)).float().cpu()
        scripted = torch.jit.load(str(work / "model.pt"), map_location=dev)
        ts = scripted(images.to(dev)).float().cpu()
    ts_diff = float((ts - reference).abs().max())
    table.add("export", f"TorchScript on {dev.type} vs the eager model", ts_diff, "max |logit difference|",
              ts_diff <= TORCHSCRIPT_ATOL, f"<= {TORCHSCRIPT_ATOL:g}")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(work / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_logits = torch.from_numpy(session.run(["logits"], {"images": images.numpy()})[0])
    onnx_diff = float((onnx_logits - reference).abs().max())
    agree = float((onnx_logits.argmax(1) == reference.argmax(1)).float().mean())
    table.add("export", f"ONNX (onnxruntime, cpu) vs the eager model on {dev.type}", onnx_diff,
              "max |logit difference|", onnx_diff <= ONNX_ATOL, f"<= {ONNX_ATOL:g}")
    table.add("export", "ONNX: same predicted class", agree, "fraction of 256 images", agree >= AGREEMENT,
              f">= {AGREEMENT:g}")


def supernet(table: Table, dataset: dict, device: str, args) -> None:
    from kubenas_trainer.models.supernet import train_supernet
    from kubenas_trainer.settings import resolve_trial
    from kubenas_trainer.tasks import open_task

    cfg = resolve_trial(_trial(dataset, device, 1, args.batch, 2))
    dev = torch.device(device)
    torch.manual_seed(0)
    task = open_task(cfg.task, cfg.dataset, 0, dev)
    net = task.build_supernet({**SPACE, **(QUICK if args.quick else {})}).to(dev)
    start = time.monotonic()
    info = train_supernet(task, net, cfg.training, epochs=1, seed=0)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    loss = info["trainLoss"]
    table.add("supernet", "2 steps, uniform paths", round(time.monotonic() - start, 3), "s",
              loss is not None and math.isfinite(loss), "finite loss")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--quick", action="store_true", help="a small data set and few batches (the CPU test)")
    p.add_argument("--cifar", type=Path, help="the real CIFAR-10 python batches instead of synthetic images")
    p.add_argument("--json", type=Path, help="where the table goes (default bench/results/gpu_check-<device>.json)")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; run it where a GPU is, or with --device cpu --quick", file=sys.stderr)
        return 2
    if args.device == "cpu":
        torch.set_num_threads(1)
    global CELL_IN_USE
    CELL_IN_USE = {**CELL, **(QUICK if args.quick else {})}
    args.batch = 32 if args.quick else 256
    args.limit_batches = 2 if args.quick else None
    started = time.monotonic()
    table = Table()
    with tempfile.TemporaryDirectory(prefix="kubenas-gpu-check-") as tmp:
        work = Path(tmp)
        if args.cifar:
            dataset = {"name": "cifar10", "path": str(args.cifar)}
        else:
            train, test = (250, 100) if args.quick else (50_000, 10_000)
            dataset = {"name": "npz", "path": str(synthetic_cifar(work / "cifar-sized.npz", train, test))}
        if args.quick:
            dataset["limit"] = 200
        for name, step in (("epoch times", lambda: epoch_times(table, dataset, args.device, args)),
                           ("checkpoint/resume", lambda: checkpoint_resume(table, dataset, args.device, args, work)),
                           ("export", lambda: export(table, dataset, args.device, args, work)),
                           ("supernet", lambda: supernet(table, dataset, args.device, args))):
            begun = time.monotonic()
            step()
            print(f"gpu_check: {name} done in {time.monotonic() - begun:.1f} s", file=sys.stderr, flush=True)
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    report = {"device": device_name, "torch": torch.__version__, "quick": args.quick,
              "data": "cifar10" if args.cifar else "synthetic CIFAR-10-sized",
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "seconds": round(time.monotonic() - started, 1), "passed": table.passed, "rows": table.rows}
    print(f"kubenas GPU check on {device_name} (torch {torch.__version__}, {report['data']}"
          f"{', quick' if args.quick else ''}): {report['seconds']} s")
    if args.device == "cpu":
        print("(mixedPrecision and channelsLast act on CUDA only: on the CPU the three epoch-time runs train alike)")
    print(table.text())
    out = args.json or ROOT / "bench" / "results" / f"gpu_check-{args.device}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if table.passed else 1


if __name__ == "__main__":
    sys.exit(main())
