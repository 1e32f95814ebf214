"""A repeated candidate is not trained twice in a cluster either (emulated API server,
operator, controller, scripted trainer): once the strategy has proposed every network of
a small space, its repeats get no Job; the operator gives each its twin's result
(status.duplicateOf, reason Duplicate), and the experiment ends as usual."""
from __future__ import annotations

from kubenas.contract.genotype import genotype_hash

from .cluster import digits_experiment, running, wait_for


async def test_repeats_get_their_twins_result_and_no_job(emulator):
    async with running(emulator) as cluster:
        exp = digits_experiment("twins", maxTrials=5, parallelTrials=1)  # one at a time: every twin is done
        exp["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 1, "operations": ["conv", "identity"],
                                                                 "filters": [8], "kernelSizes": [3],
                                                                 "strides": [1]}}
        await cluster.create_experiment(exp)
        await wait_for(lambda: cluster.status("twins").get("phase")
                       in ("Succeeded", "Failed"), 90, "the experiment to end")
        status = cluster.experiment("twins")["status"]
        assert status["phase"] == "Succeeded" and status["trials"]["succeeded"] == 5, status

        trials = {t["metadata"]["name"]: t for t in cluster.trials("twins")}
        trained = {n for n, t in trials.items() if not t["status"].get("duplicateOf")}
        assert trained == {"twins-0", "twins-1"}  # the space's two networks
        assert set(cluster.pods) == trained  # a Job (and a pod) for those only
        by_hash = {genotype_hash(trials[n]["spec"]["architecture"], {}): n for n in trained}
        for name in sorted(set(trials) - trained):
            t = trials[name]
            twin = by_hash[genotype_hash(t["spec"]["architecture"], {})]
            assert t["status"]["duplicateOf"] == twin and t["status"]["reason"] == "Duplicate"
            assert t["status"]["reward"] == trials[twin]["status"]["reward"]
            assert t["status"]["history"] == trials[twin]["status"]["history"]
            assert "jobName" not in t["status"]
        events = [e for e in cluster.events() if e.get("reason") == "Duplicate"]
        assert len(events) == 3
