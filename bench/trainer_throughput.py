#!/usr/bin/env python
"""Training throughput of the kubenas trainer loop vs a plain hand-written PyTorch loop.

Both train the same model (same genotype, same seed, same initial weights) on the same
training split with the same optimizer settings and batch size, and only training time
is counted (no validation): the trainer's figure is its own ``trainImagesPerSecond``
metric (epochs' training phases only), the plain loop is timed the same way. Runs
alternate (plain, trainer, plain, trainer, ...) after one warm-up each. On a shared
machine other processes slow some runs down a lot, so the best run of each side (the
least disturbed) is the headline, ``ratioBest = trainer / plain`` and overhead =
1 - ratioBest; medians are reported too.

    .venv/bin/python bench/trainer_throughput.py --threads 1 --repeats 9   # both workloads
    .venv/bin/python bench/trainer_throughput.py --workload digits

Workloads:
  digits   scikit-learn digits (1x8x8, 1150 train images), the 3-conv chain genotype of
           the accuracy test, batch 64: tiny images, so per-batch overhead shows most.
  cifar    synthetic CIFAR-shaped data (3x32x32, 2000 train images, random labels, via
           the npz dataset), a 3-node cell genotype, batch 128.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kubenas_trainer.data import load_dataset
from kubenas_trainer.models import build_model
from kubenas_trainer.training.loop import run_trial

WORKLOADS = {
    "digits": {
        "architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 32, "kernel": 3, "stride": 1},
                                                     {"op": "conv", "filters": 64, "kernel": 3, "stride": 2},
                                                     {"op": "conv", "filters": 64, "kernel": 3, "stride": 1}]},
        "batchSize": 64, "epochs": 4,
    },
    "cifar": {
        "architecture": {"type": "cell", "nodes": 3, "edges": [["conv_3x3"], ["skip_connect", "conv_1x1"]],
                         "channels": 8, "cellsPerStage": 1, "stages": 2},
        "batchSize": 128, "epochs": 1,
    },
}
SETTINGS = {"optimizer": "sgd", "learningRate": 0.05, "momentum": 0.9, "weightDecay": 5e-4, "seed": 0,
            "device": "cpu", "schedule": "cosine", "measureLatency": False}


def dataset_spec(name: str, tmp: Path) -> dict:
    if name == "digits":
        return {"name": "digits"}
    rng = np.random.RandomState(0)
    path = tmp / "cifar-shaped.npz"
    np.savez(path, x_train=rng.randint(0, 256, (2500, 3, 32, 32), dtype=np.uint8), y_train=rng.randint(0, 10, 2500),
             x_test=rng.randint(0, 256, (100, 3, 32, 32), dtype=np.uint8), y_test=rng.randint(0, 10, 100))
    return {"name": "npz", "path": str(path)}


def plain_loop(workload: dict, spec: dict) -> float:
    """Images/s of a minimal loop: pre-normalised tensors, randperm, SGD."""
    data = load_dataset(spec, seed=0)
    x, y = data.normalize(data.train.x).contiguous(), data.train.y
    torch.manual_seed(0)
    model = build_model(workload["architecture"], data.input_shape, data.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=SETTINGS["learningRate"], momentum=SETTINGS["momentum"],
                          weight_decay=SETTINGS["weightDecay"])
    gen = torch.Generator().manual_seed(0)
    bs, seen, elapsed = workload["batchSize"], 0, 0.0
    model.train()
    for _ in range(workload["epochs"]):
        start = time.monotonic()
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), bs):
            idx = order[i:i + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
        elapsed += time.monotonic() - start
    return seen / elapsed


def trainer_loop(workload: dict, spec: dict) -> float:
    trial = {"architecture": workload["architecture"], "dataset": spec,
             "training": {**SETTINGS, "epochs": workload["epochs"], "batchSize": workload["batchSize"]}}
    result = run_trial(trial)
    if result["status"] != "Succeeded":
        raise SystemExit(f"trainer run failed: {result['reason']}: {result['message']}")
    return result["metrics"]["trainImagesPerSecond"]


def bench(name: str, repeats: int, tmp: Path) -> dict:
    workload = WORKLOADS[name]
    spec = dataset_spec(name, tmp)
    plain_loop(workload, spec), trainer_loop(workload, spec)  # warm-up: allocator, oneDNN, data cache
    plain, trainer = [], []
    for _ in range(repeats):
        plain.append(plain_loop(workload, spec))
        trainer.append(trainer_loop(workload, spec))
    best_p, best_t = max(plain), max(trainer)
    med_p, med_t = statistics.median(plain), statistics.median(trainer)
    return {"workload": name, "batchSize": workload["batchSize"], "epochs": workload["epochs"], "repeats": repeats,
            "threads": torch.get_num_threads(),
            "plainBest": round(best_p, 1), "trainerBest": round(best_t, 1), "ratioBest": round(best_t / best_p, 4),
            "plainMedian": round(med_p, 1), "trainerMedian": round(med_t, 1), "ratioMedian": round(med_t / med_p, 4),
            "overheadPercent": round(100 * (1 - best_t / best_p), 2),
            "plainRuns": [round(v) for v in plain], "trainerRuns": [round(v) for v in trainer]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, python {platform.python_version()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            print(json.dumps(bench(name, args.repeats, Path(tmp))))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
