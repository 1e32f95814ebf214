"""Watches the API server accepts, and the back-off of the operator's restarts.

On a real API server a watch with ``timeoutSeconds=600.0`` is a 400 (the emulator is as
strict now), and kopf ends every task on such an error: the operator used to exit and
crash-loop. It now logs, backs off and lists and watches again; that is shown on the
real API server (tests/e2e/test_resilience.py, a scripted 400 on kopf's first watch):
on the emulator kopf cannot stop its watch tasks to start again.
"""
from __future__ import annotations

from kubenas.operator.main import Backoff

from .cluster import digits_experiment, wait_for


async def test_operator_watches_with_integer_timeouts(cluster, emulator):
    await cluster.create_experiment(digits_experiment("ints", maxTrials=2, parallelTrials=2))
    await wait_for(lambda: (cluster.experiment("ints") or {}).get("status", {}).get("phase") == "Succeeded",
                   60, "Succeeded")
    watches = [q for (_ua, _m, _p, q) in emulator.calls if q.get("watch") in ("true", "1")]
    assert watches, "the operator watched nothing"
    assert all(str(int(q["timeoutSeconds"])) == q["timeoutSeconds"] for q in watches if "timeoutSeconds" in q)
    assert not [c for c in emulator.calls if c[1] == "BAD"], "some request had a non-integer number"


def test_backoff_grows_with_jitter_and_resets_after_a_healthy_run():
    import random

    b = Backoff(base=1.0, cap=8.0, reset_after=60.0, rng=random.Random(7))
    delays = [b.next() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert b.next(healthy_for=61.0) <= 1.0
