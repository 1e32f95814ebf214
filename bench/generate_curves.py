#!/usr/bin/env python
"""Generate the second tabular benchmark: every architecture of a smaller cell space with
its whole validation curve (accuracy and seconds after each epoch), so that
multi-fidelity search can be measured in training-seconds, not only in trials.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python bench/generate_curves.py   # resumable; ~10 min on one core
    .venv/bin/python bench/generate_curves.py --check

Space (``SPACE``): a 4-node cell, ops none / skip_connect / conv_3x3, skeleton channels 8,
stages 2, cellsPerStage 1: 3^6 = 729 genotypes in 471 equivalence classes (same live
edges, trained once, as in ``generate_table.py``).

Protocol: the first table's (``generate_table.TRAINING``: the real trainer in-process, one
thread, digits, Adam lr 0.01, batch 128, cosine schedule, weight decay 5e-4, seed 0) with
9 epochs, so that the rungs 1, 3, 9 of a reduction factor 3 are epochs of the curve. Epoch
``e`` of a curve is the model after ``e`` epochs of the 9-epoch schedule: what a
multi-fidelity searcher sees when it pauses a trial at a rung and later resumes it from
its checkpoint (not a separately scheduled e-epoch run).

Output: ``bench/data/cell4x3_digits_curves.csv``: the columns of the first table plus
``curve`` (validation accuracy after each epoch, ``;``-separated) and ``epochSeconds``
(training + validation seconds of each epoch); and its ``.meta.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate_table import DATASET, TRAINING, encoding_string, equivalence_classes, read_done, \
    trainer_fingerprint  # noqa: E402

DATA = HERE / "data"
NAME = "cell4x3_digits_curves"
EPOCHS = 9
SPACE = {
    "type": "cell",
    "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_3x3"],
             "channels": 8, "stages": 2, "cellsPerStage": 1},
}
COLUMNS = ["encoding", "hash", "trainedAs", "valAccuracy", "valLoss", "testAccuracy", "parameters", "macs",
           "trainSeconds", "status", "curve", "epochSeconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA / f"{NAME}.csv")
    parser.add_argument("--check", action="store_true", help="report progress only")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from kubenas.space import SearchSpace
    from kubenas_trainer.training.loop import run_trial

    training = {**TRAINING, "epochs": EPOCHS}
    space = SearchSpace.from_spec(SPACE)
    classes = equivalence_classes(space)
    random.Random(f"{NAME}/order").shuffle(classes)
    done = read_done(args.out)
    todo = [(key, members) for key, members in classes if encoding_string(members[0]) not in done]
    print(f"{space.size()} architectures, {len(classes)} classes, {len(todo)} to go", flush=True)
    if args.check:
        return 0
    meta_path = args.out.with_suffix(".meta.json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {
        "name": NAME, "searchSpace": SPACE, "dataset": DATASET, "training": training,
        "reward": "validation accuracy after the last epoch; curve: after each epoch of the same run",
        "encoding": "one digit per edge, edges row by row; digit = index into searchSpace.cell.operations",
        "architectures": space.size(), "classes": len(classes), "trainer": trainer_fingerprint(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), "
                   f"torch {torch.__version__}, 1 thread, nice 10",
        "command": "OMP_NUM_THREADS=1 nice -n 10 python bench/generate_curves.py",
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    new_file = not args.out.exists()
    started = time.monotonic()
    with args.out.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        if new_file:
            writer.writeheader()
        for n, (_, members) in enumerate(todo, 1):
            trial = {"architecture": space.decode(members[0])["architecture"], "dataset": DATASET,
                     "training": training, "objective": {"metric": "accuracy", "goal": "maximize"}}
            t0 = time.monotonic()
            result = run_trial(trial)
            seconds = time.monotonic() - t0
            m, ok = result["metrics"], result["status"] == "Succeeded"
            curve = ";".join(f"{h['accuracy']:.6f}" for h in result["history"])
            epoch_seconds = ";".join(f"{h['seconds']:.3f}" for h in result["history"])
            for encoding in members:
                writer.writerow({
                    "encoding": encoding_string(encoding), "hash": space.candidate_hash(space.decode(encoding)),
                    "trainedAs": encoding_string(members[0]),
                    "valAccuracy": f"{result['reward']:.6f}" if ok else "",
                    "valLoss": f"{m.get('loss'):.5f}" if ok else "",
                    "testAccuracy": f"{m.get('testAccuracy'):.6f}" if ok else "",
                    "parameters": m.get("parameters", ""), "macs": m.get("macs", ""),
                    "trainSeconds": f"{seconds:.2f}",
                    "status": result["status"] if ok else f"{result['status']}:{result['reason']}",
                    "curve": curve, "epochSeconds": epoch_seconds,
                })
            f.flush()
            if n % 25 == 0 or n == len(todo):
                elapsed = time.monotonic() - started
                print(f"{n}/{len(todo)} classes, {elapsed / 60:.1f} min", flush=True)
    meta["finished" if len(read_done(args.out)) == space.size() else "lastWrite"] = time.strftime(
        "%Y-%m-%d %H:%M:%S %Z")
    meta["generationSeconds"] = round(meta.get("generationSeconds", 0) + time.monotonic() - started, 1)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
