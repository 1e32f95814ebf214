"""A Pareto search through the whole loop (emulated API server, operator, controller,
scripted trainer): the controller's evolution learns objective vectors from the trials'
measured costs, and the operator lists the front in status.paretoFront."""
from __future__ import annotations

import pytest

from .cluster import digits_experiment, final_rewards, running, wait_for

# The scripted trainer reports parameters = 1000 + index; rewards 0.6 + 0.03 * index by
# default. Trials 2 and 4 score lower: 1 (cheaper, better) and 0 (cheaper, as good) dominate them.
LOW = {2: 0.55, 4: 0.6}

script = final_rewards(LOW)


async def test_the_operator_lists_the_front_and_the_controller_learns_vectors(emulator):
    async with running(emulator, script=script) as cluster:
        exp = digits_experiment("pareto", maxTrials=6, parallelTrials=1)
        exp["spec"]["objective"]["pareto"] = ["parameters"]
        exp["spec"]["strategy"] = {"type": "evolution", "seed": 1, "evolution": {"populationSize": 3, "sampleSize": 2}}
        await cluster.create_experiment(exp)
        await wait_for(lambda: cluster.status("pareto").get("phase") == "Succeeded",
                       60, "Succeeded")
        status = cluster.experiment("pareto")["status"]
        front = [(t["name"], t["metrics"]["parameters"]) for t in status["paretoFront"]]
        assert front == [("pareto-5", 1005), ("pareto-3", 1003), ("pareto-1", 1001), ("pareto-0", 1000)]
        assert status["bestTrial"]["name"] == "pareto-5"
        # The controller's evolution (its last incarnation) learned objective vectors from
        # the trials' measured costs; aging keeps the 3 latest it took in (its last pass may
        # end before the last trial when the finished experiment removes it).
        population = cluster.controller_incarnations[-1].strategy.population
        indices = [index for index, _, _ in population]
        assert len(indices) == 3 and indices == list(range(indices[0], indices[0] + 3))
        for index, _, fitness in population:
            assert fitness == pytest.approx((LOW.get(index, 0.6 + 0.03 * index), -(1000.0 + index)))
