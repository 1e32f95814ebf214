#!/usr/bin/env python
"""Generate the exhaustive tabular benchmark: every architecture of a small cell space,
trained on digits with one fixed protocol (NAS-Bench-201 in miniature).

    .venv/bin/python bench/generate_table.py            # resumable; ~1 h on one core
    .venv/bin/python bench/generate_table.py --check    # how far it got, no training

Space (``SPACE`` below): a 4-node cell (6 edges), ops none / skip_connect / conv_1x1 /
conv_3x3, skeleton channels 8, stages 2, cellsPerStage 1: 4^6 = 4096 architectures.

Protocol (``TRAINING`` below): the real trainer (``kubenas_trainer.training.loop.run_trial``,
in-process, one thread, no latency measurement) on scikit-learn digits at full 8x8
size, the trainer's own splits (1150 train / 287 validation / 360 test), Adam lr 0.01,
batch 128, 10 epochs, cosine schedule, weight decay 5e-4, seed 0. Reward = validation
accuracy after the last epoch; test accuracy is recorded but never used by a search.

Equivalent architectures are trained once. The trainer builds only the *live* edges of a
cell (``kubenas_trainer.models.live_edges``: ``none`` edges and edges into nodes that
cannot reach the output are dropped), so two genotypes with the same live edges build the
same modules in the same order, draw the same initial weights under the same seed, and
train identically. 4096 genotypes form 2980 such classes; each class is trained once
and its result written for every member (column ``trainedAs`` names the member that
was trained). The table still has all 4096 rows: a strategy proposes genotypes, and
dead edges are part of the space it searches, as in NAS-Bench-201.

Output: ``bench/data/cell4x4_digits.csv`` (one row per architecture, appended as
classes finish, so an interrupted run resumes where it stopped) and
``bench/data/cell4x4_digits.meta.json`` (space, protocol, trainer file hashes).
Classes are trained in a seeded random order so that a partial table is a random sample.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
NAME = "cell4x4_digits"
SPACE = {
    "type": "cell",
    "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3"],
             "channels": 8, "stages": 2, "cellsPerStage": 1},
}
DATASET = {"name": "digits", "validationFraction": 0.2, "seed": 0}
TRAINING = {"epochs": 10, "batchSize": 128, "optimizer": "adam", "learningRate": 0.01, "weightDecay": 5e-4,
            "schedule": "cosine", "seed": 0, "device": "cpu", "numThreads": 1, "measureLatency": False,
            "deterministic": True}
COLUMNS = ["encoding", "hash", "trainedAs", "valAccuracy", "valLoss", "testAccuracy", "parameters", "macs",
           "trainSeconds", "status"]
TRAINER_FILES = ("models.py", "ops.py", "train.py", "data.py", "loader.py", "settings.py")


def encoding_string(encoding) -> str:
    """Op indices, one digit per edge, edges row by row (the space's decision order)."""
    return "".join(str(i) for i in encoding)


def trainer_fingerprint() -> dict:
    import kubenas_trainer.training.loop

    root = Path(kubenas_trainer.training.loop.__file__).parent
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest()[:16] for name in TRAINER_FILES}


def equivalence_classes(space):
    """[(key, [encodings...])] grouping genotypes whose trainer-built network is identical."""
    from kubenas_trainer.models import live_edges

    classes: dict[str, list] = {}
    for encoding in space.iter_encodings():
        genotype = space.decode(encoding)["architecture"]
        key = json.dumps(live_edges(genotype["nodes"], genotype["edges"]))
        classes.setdefault(key, []).append(encoding)
    return list(classes.items())


def read_done(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {row["encoding"]: row for row in csv.DictReader(f)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA / f"{NAME}.csv")
    parser.add_argument("--check", action="store_true", help="report progress only")
    parser.add_argument("--limit", type=int, default=None, help="train at most this many classes, then stop")
    parser.add_argument("--noise", type=int, default=0, metavar="N",
                        help="instead: retrain N random classes with seeds 1 and 2 (seed-to-seed noise of the "
                             "protocol), writing <out stem>.noise.csv")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from kubenas.space import SearchSpace
    from kubenas_trainer.training.loop import run_trial

    space = SearchSpace.from_spec(SPACE)
    classes = equivalence_classes(space)
    random.Random(f"{NAME}/order").shuffle(classes)
    done = read_done(args.out)
    todo = [(key, members) for key, members in classes if encoding_string(members[0]) not in done]
    print(f"{space.size()} architectures, {len(classes)} classes, {len(classes) - len(todo)} classes done, "
          f"{len(todo)} to go", flush=True)
    if args.check:
        return 0
    if args.noise:
        return seed_noise(space, classes, args.out.with_suffix(".noise.csv"), args.noise, run_trial)

    meta_path = args.out.with_suffix(".meta.json")
    fingerprint = trainer_fingerprint()
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("trainer") != fingerprint:
            print(f"WARNING: trainer files changed since generation started: {meta.get('trainer')} -> "
                  f"{fingerprint}; rows written so far used the old trainer", file=sys.stderr, flush=True)
            meta.setdefault("trainerChanges", []).append(fingerprint)
    else:
        meta = {"name": NAME, "searchSpace": SPACE, "dataset": DATASET, "training": TRAINING,
                "reward": "validation accuracy after the last epoch",
                "encoding": "one digit per edge, edges row by row (edges[0][0], edges[1][0], edges[1][1], ...); "
                            "digit = index into searchSpace.cell.operations",
                "architectures": space.size(), "classes": len(classes), "trainer": fingerprint,
                "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                           f"{os.cpu_count()} CPUs, torch {torch.__version__}, 1 thread",
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")  # a partial table is usable too
    new_file = not args.out.exists()
    started = time.monotonic()
    with args.out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for n, (key, members) in enumerate(todo[: args.limit] if args.limit else todo, 1):
            representative = space.decode(members[0])
            trial = {"architecture": representative["architecture"], "dataset": DATASET, "training": TRAINING,
                     "objective": {"metric": "accuracy", "goal": "maximize"}}
            t0 = time.monotonic()
            result = run_trial(trial)
            seconds = time.monotonic() - t0
            m = result["metrics"]
            ok = result["status"] == "Succeeded"
            for encoding in members:
                writer.writerow({
                    "encoding": encoding_string(encoding),
                    "hash": space.candidate_hash(space.decode(encoding)),
                    "trainedAs": encoding_string(members[0]),
                    "valAccuracy": f"{result['reward']:.6f}" if ok else "",
                    "valLoss": f"{m.get('loss'):.5f}" if ok else "",
                    "testAccuracy": f"{m.get('testAccuracy'):.6f}" if ok else "",
                    "parameters": m.get("parameters", ""),
                    "macs": m.get("macs", ""),
                    "trainSeconds": f"{seconds:.2f}",
                    "status": result["status"] if ok else f"{result['status']}:{result['reason']}",
                })
            f.flush()
            if n % 25 == 0 or n == len(todo):
                elapsed = time.monotonic() - started
                print(f"{n}/{len(todo)} classes, {elapsed / 60:.1f} min, {elapsed / n:.2f} s/class, "
                      f"eta {(len(todo) - n) * elapsed / n / 60:.1f} min", flush=True)
    meta["finished" if len(read_done(args.out)) == space.size() else "lastWrite"] = time.strftime(
        "%Y-%m-%d %H:%M:%S %Z")
    meta["generationSeconds"] = round(meta.get("generationSeconds", 0) + time.monotonic() - started, 1)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return 0


def seed_noise(space, classes, path: Path, count: int, run_trial) -> int:
    """Retrain a random sample of classes under other seeds: how much of a reward
    difference is architecture and how much is the seed (the table has one seed)."""
    sample = random.Random(f"{NAME}/noise").sample(classes, count)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["encoding", "seed", "valAccuracy", "testAccuracy"])
        for n, (_, members) in enumerate(sample, 1):
            for seed in (1, 2):
                trial = {"architecture": space.decode(members[0])["architecture"], "dataset": DATASET,
                         "training": {**TRAINING, "seed": seed}}
                result = run_trial(trial)
                ok = result["status"] == "Succeeded"
                writer.writerow([encoding_string(members[0]), seed, f"{result['reward']:.6f}" if ok else "",
                                 f"{result['metrics']['testAccuracy']:.6f}" if ok else ""])
            f.flush()
            print(f"noise: {n}/{count}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
