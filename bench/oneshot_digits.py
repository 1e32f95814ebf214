"""The one-shot digits example against regularized evolution at equal training-seconds.

For each seed, runs ``deploy/examples/oneshot-digits.yaml`` with ``kubenas run`` (its
strategy seed and training seed set to the seed) and an evolution search of the same
space with the same training settings (one trial per candidate, ``--evolution-trials``
of them). Each method is charged the seconds its trials ran (start to completion of each
trial process: data loading, training, validation, and for one-shot the supernet's
training and the candidates' scoring), summed over its trials. Evolution's pick is the
best validation accuracy among its trials in completion order whose summed seconds stay
within the one-shot run's; one-shot's pick is its best retrained trial. Both picks are
compared on ``testAccuracy``: the digits test split (360 images), which no search reads.

    nice -n 10 .venv/bin/python bench/oneshot_digits.py --seeds 700 701 702
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLE = ROOT / "deploy" / "examples" / "oneshot-digits.yaml"


def run(experiment: dict, folder: Path) -> list[dict]:
    path = folder / f"{experiment['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(experiment))
    run_dir = folder / experiment["metadata"]["name"]
    subprocess.run([sys.executable, "-m", "kubenas.cli", "run", str(path), "--run-dir", str(run_dir),
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    rows = [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda r: r["completionTime"])


def seconds(row: dict) -> float:
    return (datetime.fromisoformat(row["completionTime"]) - datetime.fromisoformat(row["startTime"])).total_seconds()


def experiments(seed: int, evolution_trials: int) -> tuple[dict, dict]:
    base = yaml.safe_load(EXAMPLE.read_text())
    base["spec"].pop("artifacts", None)
    base["spec"]["trial"]["training"]["seed"] = seed
    oneshot = copy.deepcopy(base)
    oneshot["metadata"]["name"] = f"oneshot-{seed}"
    oneshot["spec"]["strategy"]["seed"] = seed
    evolution = copy.deepcopy(base)
    evolution["metadata"]["name"] = f"evolution-{seed}"
    del evolution["spec"]["oneShot"]
    evolution["spec"]["strategy"] = {"type": "evolution", "seed": seed,
                                     "evolution": {"populationSize": 4, "sampleSize": 2}}
    evolution["spec"]["budget"]["maxTrials"] = evolution_trials
    return oneshot, evolution


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[700, 701, 702])
    parser.add_argument("--evolution-trials", type=int, default=12)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "oneshot_digits.json")
    args = parser.parse_args()
    per_seed = []
    for seed in args.seeds:
        oneshot, evolution = experiments(seed, args.evolution_trials)
        with tempfile.TemporaryDirectory(prefix="kubenas-oneshot-bench-") as tmp:
            t0 = time.monotonic()
            shot_rows = run(oneshot, Path(tmp))
            shot_wall = time.monotonic() - t0
            t0 = time.monotonic()
            evo_rows = run(evolution, Path(tmp))
            evo_wall = time.monotonic() - t0
        budget = sum(seconds(r) for r in shot_rows)
        retrained = [r for r in shot_rows if r["oneshot"]["kind"] == "retrain" and r["status"] == "Succeeded"]
        shot_pick = max(retrained, key=lambda r: (r["reward"], -r["index"]))
        spent, within = 0.0, []
        for row in evo_rows:
            spent += seconds(row)
            if spent > budget:
                break
            within.append(row)
        succeeded = [r for r in within if r["status"] == "Succeeded"]
        evo_pick = max(succeeded, key=lambda r: (r["reward"], -r["index"])) if succeeded else None
        kind_seconds: dict[str, float] = {}
        for r in shot_rows:
            kind_seconds[r["oneshot"]["kind"]] = round(kind_seconds.get(r["oneshot"]["kind"], 0.0) + seconds(r), 1)
        entry = {
            "seed": seed,
            "oneshot": {"trialSeconds": round(budget, 1), "bySeconds": kind_seconds, "wallSeconds": round(shot_wall, 1),
                        "pick": shot_pick["name"], "valAccuracy": shot_pick["reward"],
                        "testAccuracy": shot_pick["metrics"]["testAccuracy"]},
            "evolution": {"trialsWithinBudget": len(within), "trialSecondsWithinBudget": round(
                sum(seconds(r) for r in within), 1), "trialsRun": len(evo_rows), "wallSeconds": round(evo_wall, 1),
                "pick": evo_pick and evo_pick["name"], "valAccuracy": evo_pick and evo_pick["reward"],
                "testAccuracy": evo_pick and evo_pick["metrics"]["testAccuracy"]},
        }
        print(json.dumps(entry), flush=True)
        per_seed.append(entry)
    import torch

    result = {"seeds": args.seeds, "runs": per_seed,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                         f"load average {os.getloadavg()[0]:.1f} at the end",
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
