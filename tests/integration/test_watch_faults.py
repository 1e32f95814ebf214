"""The operator survives watches that fail in ways kopf does not retry by itself.

On a real API server a watch with ``timeoutSeconds=600.0`` is a 400 (the emulator is as
strict now), and kopf ends every task on such an error: the operator used to exit and
crash-loop. It now logs, backs off and lists and watches again.
"""
from __future__ import annotations

from kubenas.operator import metrics
from kubenas.operator.main import Backoff

from .cluster import FakeCluster, digits_experiment, wait_for


def restarts() -> float:
    return sum(s.value for m in metrics.WATCH_RESTARTS.collect() for s in m.samples if s.name.endswith("_total"))


async def test_operator_watches_with_integer_timeouts(cluster, emulator):
    await cluster.create_experiment(digits_experiment("ints", maxTrials=2, parallelTrials=2))
    await wait_for(lambda: (cluster.experiment("ints") or {}).get("status", {}).get("phase") == "Succeeded",
                   60, "Succeeded")
    watches = [q for (_ua, _m, _p, q) in emulator.calls if q.get("watch") in ("true", "1")]
    assert watches, "the operator watched nothing"
    assert all(str(int(q["timeoutSeconds"])) == q["timeoutSeconds"] for q in watches if "timeoutSeconds" in q)
    assert not [c for c in emulator.calls if c[1] == "BAD"], "some request had a non-integer number"


async def test_operator_keeps_running_through_failed_watches(emulator):
    emulator.failing_watches = {"nastrials": [400, 403, 500], "jobs": [500]}
    cluster = FakeCluster(emulator, emulator.conf)
    cluster.backoff = Backoff(base=0.05, cap=0.2)
    before = restarts()
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("faults", maxTrials=4, parallelTrials=2))
        await wait_for(lambda: (cluster.experiment("faults") or {}).get("status", {}).get("phase") == "Succeeded",
                       90, "Succeeded despite failing watches")
        assert not emulator.failing_watches["nastrials"] and not emulator.failing_watches["jobs"]
        # kopf retries a 500 itself; a 400 or 403 ends its tasks, and the operator starts them again.
        assert restarts() - before >= 2
        assert not cluster._op_task.done(), "the operator exited"
        st = cluster.experiment("faults")["status"]
        assert st["trials"]["succeeded"] == 4
    finally:
        await cluster.close()


def test_backoff_grows_with_jitter_and_resets_after_a_healthy_run():
    import random

    b = Backoff(base=1.0, cap=8.0, reset_after=60.0, rng=random.Random(7))
    delays = [b.next() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings)), delays
    assert b.next(healthy_for=61.0) <= 1.0
