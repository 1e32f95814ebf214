"""Object detection: the search's pick against a hand-designed backbone of similar size,
on images the search never read (bench/RESULTS.md).

Both backbones get the same FCOS head, feature pyramid, loss, data and training settings
as deploy/examples/detection-shapes.yaml (``run_trial``), from ``--seeds``
initialisations each; the numbers are COCO mAP@[.5:.95] and mAP@.5 (pycocotools) on the
test split (``test.json``, 60 images the search never read: it ranked trials on
validation images drawn from ``train.json``).

The hand-designed backbone is the plain VGG-style stack a detection engineer would start
from at this size: three 3x3 conv-BN-ReLU layers of stride 2, 16 -> 32 -> 32 filters
(feature levels at strides 2, 4, 8).

    python -m kubenas_trainer.tasks.coco shapes data/shapes --train 160 --test 60
    kubenas run deploy/examples/detection-shapes.yaml --run-dir runs/detection-shapes
    python bench/detection_baseline.py --data data/shapes --run-dir runs/detection-shapes
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HAND = {"type": "chain", "layers": [{"op": "conv", "filters": 16, "kernel": 3, "stride": 2},
                                    {"op": "conv", "filters": 32, "kernel": 3, "stride": 2},
                                    {"op": "conv", "filters": 32, "kernel": 3, "stride": 2}]}


def pick(run_dir: Path) -> dict:
    """The best succeeded trial of the run (highest validation mAP, the reward)."""
    rows = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines() if line.strip()]
    done = [r for r in rows if r.get("reward") is not None]
    return max(done, key=lambda r: r["reward"])


def main(argv=None) -> int:
    from kubenas_trainer.training.loop import run_trial

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    example = yaml.safe_load((ROOT / "deploy/examples/detection-shapes.yaml").read_text())["spec"]["trial"]
    best = pick(Path(args.run_dir))
    results: dict = {}
    for name, arch in (("pick", best["architecture"]), ("hand", HAND)):
        runs = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.monotonic()
            r = run_trial({"architecture": arch, "task": "object-detection",
                           "dataset": {**example["dataset"], "path": args.data},
                           "training": {**example["training"], "seed": seed},
                           "objective": {"metric": "mAP", "goal": "maximize"}})
            assert r["status"] == "Succeeded", r
            m = r["metrics"]
            runs.append({"seed": seed, "valMAP": m["mAP"], "testMAP": m["testMAP"], "parameters": m["parameters"],
                         "macs": m["macs"], "seconds": round(time.monotonic() - start, 1)})
            print(name, runs[-1], flush=True)
        results[name] = {"architecture": arch, "runs": runs,
                         "testMAP_mean": statistics.mean(x["testMAP"] for x in runs),
                         "testMAP_sd": statistics.pstdev(x["testMAP"] for x in runs)}
    for name, r in results.items():
        print(f"{name}: test mAP {r['testMAP_mean']:.4f} +- {r['testMAP_sd']:.4f} over {args.seeds} seeds, "
              f"{r['runs'][0]['parameters']:,} parameters, {r['runs'][0]['macs']:,} MACs")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
