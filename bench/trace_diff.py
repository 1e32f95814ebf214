#!/usr/bin/env python
"""Compare two tracemalloc snapshots (bench/tracehook): what grew between them, by
traceback and by line.

    .venv/bin/python bench/trace_diff.py runs/trace/1765062000.snap runs/trace/1765062600.snap
"""
from __future__ import annotations

import argparse
import tracemalloc


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--frames", type=int, default=6, help="frames of each traceback to group by")
    args = p.parse_args()
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__),
              tracemalloc.Filter(False, "<frozen importlib._bootstrap>")]
    before = tracemalloc.Snapshot.load(args.before).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(args.after).filter_traces(ignore)
    total = lambda s: sum(t.size for t in s.traces)  # noqa: E731
    print(f"traced: {total(before) / 2**20:.1f} MiB -> {total(after) / 2**20:.1f} MiB")
    print("\nby line:")
    for stat in after.compare_to(before, "lineno")[:args.top]:
        print(f"  {stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks  {stat.traceback[0]}")
    print("\nby traceback:")
    for stat in after.compare_to(before, "traceback")[:args.top]:
        print(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks")
        for line in stat.traceback.format(limit=args.frames)[::-1]:
            print("    " + line)


if __name__ == "__main__":
    main()
