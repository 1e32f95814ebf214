"""Killing the operator or the controller mid-experiment: no duplicates, nothing lost."""
from __future__ import annotations

import asyncio
from collections import Counter

from .cluster import Script, digits_experiment, running, wait_for


def slow(index):
    return Script(values=[0.3 + 0.01 * index, 0.5, 0.6 + 0.02 * index], epoch_seconds=0.15)


def created_names(emulator, plural):
    """Names of the objects successfully POSTed (the emulator answers 409 to repeats)."""
    return [o["metadata"]["name"] for (res, _ns, _n), o in emulator.objects.items() if res.plural == plural]


async def test_operator_restart_mid_experiment(emulator):
    async with running(emulator, script=slow) as cluster:
        await cluster.create_experiment(digits_experiment("op", maxTrials=6, parallelTrials=2))
        await wait_for(lambda: len(cluster.objects("jobs")) >= 2, 20, "first Jobs")
        await cluster.stop_operator()
        # Meanwhile: trainers finish and report, the controller creates the next trials.
        await wait_for(lambda: len(cluster.trials("op")) >= 3, 20, "trials created while the operator is down")
        await asyncio.sleep(0.5)
        await cluster.start_operator()
        await wait_for(lambda: cluster.status("op").get("phase") == "Succeeded", 60, "Succeeded")
        st = cluster.status("op")
        assert st["trials"]["succeeded"] == 6 and st["trials"]["created"] == 6
        jobs = created_names(emulator, "jobs")
        assert sorted(jobs) == [f"op-{i}" for i in range(6)]  # one Job per trial, never two
        assert all(t["status"].get("reward") is not None for t in cluster.trials("op"))
        job_posts = [c for c in emulator.calls if c[1] == "POST" and c[2].endswith("/jobs")]
        assert len(job_posts) >= 6


async def test_controller_restart_restores_strategy(emulator):
    async with running(emulator, script=slow) as cluster:
        body = digits_experiment("ctl", maxTrials=6, parallelTrials=2)
        body["spec"]["strategy"] = {"type": "evolution", "seed": 1,
                                    "evolution": {"populationSize": 2, "sampleSize": 2}}
        await cluster.create_experiment(body)
        await wait_for(lambda: sum(1 for t in cluster.trials("ctl")
                                   if (t.get("status") or {}).get("phase") == "Succeeded") >= 2,
                       30, "two finished trials")
        first = cluster.controller_incarnations[0]
        saved = first.strategy.state_dict()
        await asyncio.to_thread(cluster.kill_controller, "research", "ctl")
        await wait_for(lambda: len(cluster.controller_incarnations) >= 2, 10, "a new controller pod")
        second = cluster.controller_incarnations[1]
        await wait_for(lambda: second.strategy is not None, 10, "the new controller's strategy")
        assert second.restored  # from the checkpoint ConfigMap
        # The checkpoint may be older than the first controller's last pass (it is written
        # at most every checkpoint_seconds, and once more on stop, which can land after the
        # new pod has read it); the trials bring the rest.
        await wait_for(lambda: set(saved["observed"]) <= set(second.strategy.state_dict()["observed"]), 10,
                       "the new controller to know every trial the first had observed")
        await wait_for(lambda: cluster.status("ctl").get("phase") == "Succeeded", 60, "Succeeded")
        names = created_names(emulator, "nastrials")
        assert sorted(names) == [f"ctl-{i}" for i in range(6)]
        assert Counter(names).most_common(1)[0][1] == 1
        assert cluster.status("ctl")["trials"]["succeeded"] == 6
