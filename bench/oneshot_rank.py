"""How well a weight-sharing supernet ranks the architectures of a cell table.

Trains one supernet of the table's cell space (its .meta.json's ``searchSpace``; by
default the 4096-architecture table of bench/generate_table.py) on the table's digits
split (``dataset``) with the table's optimizer settings (``training``: Adam, lr 0.01,
weight decay 5e-4, batch 128, cosine), uniform path sampling per batch
(single-path one-shot), for ``--epochs`` epochs; then scores every architecture of
the table with inherited weights (batch-norm recalibrated on ``--calibration`` fixed
training batches) on the validation split, and compares with the table's stand-alone
``valAccuracy``: Kendall tau, Spearman rho, and the recall of the table's top-10 within
the supernet's top-50 (ties in the table broken by encoding). Architectures with the
same live edges (the table's ``trainedAs``) are the same network, so each class is
scored once and the score copied to its members, as the table itself was built.

    nice -n 10 .venv/bin/python bench/oneshot_rank.py --epochs 100 [--subset 512]

``--scores-out FILE`` also writes the inherited-weight score of every scored row,
``{"scores": {encoding: accuracy}, ...}`` with the supernet's seed, epochs, steps and
measured seconds (bench/budgeted.py's one-shot searcher reads it, issue 26).
"""
from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULT_TABLE = HERE / "data" / "cell4x4_digits.csv"


def ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return r


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--calibration", type=int, default=4, help="training batches for BN recalibration")
    parser.add_argument("--subset", type=int, default=0, help="score a uniformly random subset of this many rows")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE, help="a cell table with its .meta.json")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "oneshot_rank.json")
    parser.add_argument("--scores-out", type=Path, default=None,
                        help="also write {encoding: inherited-weight accuracy} of every scored row here")
    args = parser.parse_args()

    import torch
    from scipy.stats import kendalltau, spearmanr

    torch.set_num_threads(1)
    from kubenas.space import SearchSpace
    from kubenas_trainer.settings import resolve_trial
    from kubenas_trainer.models.supernet import calibration_batches, score_candidates, train_supernet
    from kubenas_trainer.tasks import open_task

    meta = json.loads(args.table.with_suffix(".meta.json").read_text())
    SPACE, DATASET, TRAINING = meta["searchSpace"], meta["dataset"], meta["training"]
    space = SearchSpace.from_spec(SPACE)
    rows = list(csv.DictReader(args.table.open()))
    rows = [r for r in rows if r["status"] == "Succeeded"]
    if args.subset:
        rows = random.Random(f"oneshot/{args.seed}").sample(rows, args.subset)
    torch.manual_seed(args.seed)
    training = {**TRAINING, "seed": args.seed}
    representative = space.decode([len(SPACE["cell"]["operations"]) - 1] * len(space.decisions()))["architecture"]
    cfg = resolve_trial({"architecture": representative, "dataset": DATASET, "training": training})
    task = open_task(cfg.task, cfg.dataset, cfg.training["seed"], torch.device("cpu"))
    supernet = task.build_supernet(SPACE["cell"])
    t0 = time.monotonic()
    info = train_supernet(task, supernet, cfg.training, epochs=args.epochs, seed=args.seed)
    train_seconds = time.monotonic() - t0
    steps_per_epoch = len(task.loaders(cfg.training, torch.device("cpu"), torch.Generator().manual_seed(0),
                                      torch.contiguous_format).train)
    print(f"supernet trained: {args.epochs} epochs, {train_seconds:.1f} s, last train loss {info['trainLoss']:.3f}",
          flush=True)
    calibration = calibration_batches(task, cfg.training, args.calibration, seed=args.seed)
    classes: dict[str, dict] = {}
    for r in rows:
        classes.setdefault(r["trainedAs"], space.decode([int(c) for c in r["trainedAs"]])["architecture"])
    t1 = time.monotonic()
    keys = list(classes)
    scores = score_candidates(task, supernet, [classes[k] for k in keys], calibration=calibration,
                              training=cfg.training)
    score_seconds = time.monotonic() - t1
    by_class = {k: s["accuracy"] for k, s in zip(keys, scores)}
    table = [float(r["valAccuracy"]) for r in rows]
    oneshot = [by_class[r["trainedAs"]] for r in rows]
    tau = kendalltau(table, oneshot).statistic
    rho = spearmanr(table, oneshot).statistic
    top_table = sorted(range(len(rows)), key=lambda i: (-table[i], rows[i]["encoding"]))[:10]
    top_shot = set(sorted(range(len(rows)), key=lambda i: (-oneshot[i], rows[i]["encoding"]))[:50])
    recall = sum(i in top_shot for i in top_table) / 10
    best_pick = max(range(len(rows)), key=lambda i: (oneshot[i], -int(rows[i]["encoding"])))
    result = {
        "table": args.table.name, "architectures": len(rows), "classesScored": len(keys), "subset": args.subset or None,
        "supernetEpochs": args.epochs, "calibrationBatches": args.calibration, "seed": args.seed,
        "kendallTau": round(tau, 4), "spearmanRho": round(rho, 4), "top10RecallInTop50": recall,
        "supernetTrainSeconds": round(train_seconds, 1), "scoringSeconds": round(score_seconds, 1),
        "secondsPerCandidate": round(score_seconds / len(keys), 4),
        "pick": {"encoding": rows[best_pick]["encoding"], "tableValAccuracy": table[best_pick],
                 "tableRank": 1 + sum(t > table[best_pick] for t in table), "tableBest": max(table)},
        "machine": f"{platform.node()} {platform.machine()}, torch {torch.__version__}, 1 thread",
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    print(json.dumps(result, indent=2), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.scores_out is not None:
        dump = {key: result[key] for key in ("table", "seed", "supernetEpochs", "calibrationBatches", "architectures",
                                             "classesScored", "supernetTrainSeconds", "scoringSeconds",
                                             "secondsPerCandidate", "kendallTau", "machine", "date")}
        dump["supernetSteps"] = args.epochs * steps_per_epoch
        dump["scores"] = {r["encoding"]: round(s, 6) for r, s in zip(rows, oneshot)}
        args.scores_out.parent.mkdir(parents=True, exist_ok=True)
        args.scores_out.write_text(json.dumps(dump, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
