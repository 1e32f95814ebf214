"""Paired regret differences between searchers of one or more `search_efficiency.py --peers` runs.

    .venv/bin/python bench/pairwise.py bench/results/default100_cell4x4.json --rows evolution tpe \
        --columns optuna-tpe optuna-tpe+cache regevo local-search rf-surrogate random evolution

prints, per compute fraction, the mean of (row - column) over the run's seeds with the bench's 95 %
bootstrap CI (negative: the row searcher has the lower regret). Several runs on the same seeds (a
comparison split for CPU time) are merged per table: a searcher in more than one of them (random,
which every run has) must have the same per-seed regrets in each, or the pairing would not hold.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from search_efficiency import COMPUTE_FRACTIONS, bootstrap_interval


def merged(paths: list[Path]) -> dict:
    """{table: {"compute", "target", "perSeed"}} over the runs; ValueError if they disagree."""
    tables: dict = {}
    for path in paths:
        for table, data in json.loads(path.read_text())["tables"].items():
            into = tables.setdefault(table, {"compute": data["compute"], "target": data["target"], "perSeed": {}})
            for label, columns in data["perSeed"].items():
                if label in into["perSeed"] and into["perSeed"][label] != columns:
                    raise ValueError(f"{path}: {table} {label} differs from an earlier run's: not the same seeds?")
                into["perSeed"][label] = columns
    return tables


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="--peers runs' .json (the same seeds)")
    parser.add_argument("--rows", nargs="+", required=True)
    parser.add_argument("--columns", nargs="+", required=True)
    args = parser.parse_args()
    for table, data in merged(args.results).items():
        per_seed = data["perSeed"]
        print(f"{table}: compute {data['compute']:.0f} s, target (random@200) {data['target']:.2f}")
        columns = next(iter(per_seed.values()))  # a run before 10 % was a column has 25/50/100 only
        fractions = [f"{int(100 * f)} % compute" for f in COMPUTE_FRACTIONS if f"{int(100 * f)} % compute" in columns]
        print("  row - column: " + " | ".join(fractions))
        for row in args.rows:
            for column in args.columns:
                if column == row or row not in per_seed or column not in per_seed:
                    continue
                cells = []
                for fraction in fractions:
                    diffs = [a - b for a, b in zip(per_seed[row][fraction], per_seed[column][fraction])]
                    low, high = bootstrap_interval(diffs)
                    cells.append(f"{sum(diffs) / len(diffs):+.2f} ({low:+.2f}, {high:+.2f})")
                print(f"  {row} - {column}: " + " | ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
