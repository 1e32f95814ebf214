#!/usr/bin/env python
"""Multi-fidelity settings on the curves table, for tuning seeds only (bench/RESULTS.md, issue 14 round 2).

Mean regret (points) at 25 / 30 / 50 / 100 % of random search's 200-trial training compute, the
compute fraction where the mean first reaches random's 200-trial regret, and the fraction of seeds
that hold the optimum at 30 % and 100 %. Each config is JSON: ``strategy`` (a kubenas strategy
type), ``full: 1`` for full-fidelity search, else ``strategy.fidelity`` keys.

    .venv/bin/python bench/fidelity_sweep.py 0 20 '{"strategy": "random"}' '{"strategy": "tpe", "type": "hyperband"}'
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from budgeted import run_asha, run_strategy  # noqa: E402
from search_efficiency import CURVES_TABLE  # noqa: E402
from tabular import Table  # noqa: E402


def main(argv: list[str]) -> int:
    logging.disable(logging.WARNING)  # repeats after a small space is spent are expected
    table = Table.load(CURVES_TABLE)
    seeds = range(int(argv[0]), int(argv[1]))
    randoms = [run_strategy(table, "random", {"type": "random", "seed": s}, 200, 0.0) for s in seeds]
    compute = sum(r.points[199][1] for r in randoms) / len(randoms)

    def regret(value):
        return 100 * table.regret(table._sorted_rewards[0] if value is None else value)

    target = sum(regret(r.after_trials(200)) for r in randoms) / len(randoms)
    print(f"seeds {seeds.start}-{seeds.stop - 1}: compute {compute:.1f} s, target (random@200) {target:.3f}")
    for text in argv[2:]:
        config = json.loads(text)
        kind, full = config.pop("strategy"), config.pop("full", False)
        started = time.monotonic()
        if full:
            traces = [run_strategy(table, kind, {"type": kind, "seed": s}, 200, compute) for s in seeds]
        else:
            traces = [run_asha(table, kind, {"type": kind, "seed": s}, config, compute) for s in seeds]
        curve = [sum(regret(t.after_seconds(compute * k / 100)) for t in traces) / len(traces)
                 for k in range(1, 101)]
        reach = next((k + 1 for k, r in enumerate(curve) if r <= target + 1e-9), None)
        optimum = [sum(t.after_seconds(f * compute) == table.optimum for t in traces) / len(traces)
                   for f in (0.3, 1.0)]
        print(f"{kind} {'full' if full else config}: 25% {curve[24]:.3f} 30% {curve[29]:.3f} "
              f"50% {curve[49]:.3f} 100% {curve[99]:.3f}; reaches target at "
              f"{f'{reach} %' if reach else 'never'}; P(optimum) at 30 / 100 %: {optimum} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
