"""spec.final on a cluster (emulated API server, operator, controller, scripted trainer):
after maxTrials the controller retrains the top candidates with other training seeds as
NASTrials marked reevaluationOf, its strategy never sees them, and the operator ends the
experiment once they have all finished, with the best mean's candidate as bestTrial."""
from __future__ import annotations

import pytest

from .cluster import FakeCluster, digits_experiment, final_rewards, wait_for

# Search trials 0-3 score 0.60, 0.63, 0.66, 0.69 (default_script); the top two are
# final-3 and final-2. final-3's re-evaluations (4, 5) score 0.5, final-2's (6, 7) 0.76.
REEVALUATED = {4: 0.5, 5: 0.5, 6: 0.76, 7: 0.76}

script = final_rewards(REEVALUATED)


async def test_final_reevaluates_the_top_candidates_and_picks_the_best_mean(emulator):
    cluster = FakeCluster(emulator, emulator.conf, script=script)
    await cluster.start()
    try:
        exp = digits_experiment("final", maxTrials=4, parallelTrials=2)
        exp["spec"]["final"] = {"topK": 2, "seeds": 3}
        exp["spec"]["trial"]["training"]["seed"] = 10
        await cluster.create_experiment(exp)
        await wait_for(lambda: ((cluster.experiment("final") or {}).get("status") or {}).get("phase")
                       in ("Succeeded", "Failed"), 90, "the experiment to end")
        status = cluster.experiment("final")["status"]
        assert status["phase"] == "Succeeded", status
        complete = [c for c in status["conditions"] if c["type"] == "Complete"][0]
        assert "re-evaluated with 3 seeds each (4 more trials, spec.final)" in complete["message"]

        trials = {t["metadata"]["name"]: t["spec"] for t in cluster.trials("final")}
        assert sorted(trials) == [f"final-{i}" for i in range(8)]
        for index, (of, seed) in {4: ("final-3", 11), 5: ("final-3", 12), 6: ("final-2", 11),
                                  7: ("final-2", 12)}.items():
            spec = trials[f"final-{index}"]
            assert spec["reevaluationOf"] == of and spec["training"]["seed"] == seed
            assert spec["architecture"] == trials[of]["architecture"]
            assert spec["hyperparameters"] == trials[of]["hyperparameters"]

        best = status["bestTrial"]
        assert best["name"] == "final-2"  # 0.66 once, 0.727 on the mean; final-3: 0.69, then 0.5, 0.5
        assert best["final"]["trials"] == ["final-2", "final-6", "final-7"]
        assert best["final"]["mean"] == pytest.approx((0.66 + 0.76 + 0.76) / 3)
        assert best["final"]["n"] == 3 and best["final"]["std"] > 0
        # The controller's strategy saw the 4 search trials only.
        assert cluster.controller_incarnations[-1].strategy._observed == {0, 1, 2, 3}
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors
