"""Median early stopping, and spec changes while an experiment runs."""
from __future__ import annotations

from .cluster import Script, digits_experiment, running, wait_for


def trial(cluster, name):
    found = [t for t in cluster.trials() if t["metadata"]["name"] == name]
    return found[0] if found else {}


async def test_median_rule_stops_a_poor_trial(emulator):
    def script(index):
        if index == 2:
            return Script(values=[0.1] * 40, epoch_seconds=0.1)  # hopeless and long
        return Script(values=[0.8, 0.85, 0.9, 0.92])
    async with running(emulator, script=script) as cluster:
        body = digits_experiment("es", maxTrials=4, parallelTrials=1)
        body["spec"]["earlyStopping"] = {"type": "median", "minTrials": 2, "startEpoch": 2}
        await cluster.create_experiment(body)
        await wait_for(lambda: cluster.status("es").get("phase") == "Succeeded", 60, "Succeeded")
        stopped = trial(cluster, "es-2")["status"]
        assert stopped["phase"] == "EarlyStopped" and stopped["reason"] == "EarlyStopped"
        assert "median" in stopped["message"]
        assert len(stopped.get("history") or []) < 40
        assert "es-2" not in {j["metadata"]["name"] for j in cluster.objects("jobs")}  # its Job was deleted
        st = cluster.status("es")
        assert st["trials"]["earlyStopped"] == 1 and st["trials"]["succeeded"] == 3


async def test_raising_max_trials_applies_other_changes_refused(emulator):
    async with running(emulator, script=lambda i: Script(values=[0.5, 0.6], epoch_seconds=0.2)) as cluster:
        await cluster.create_experiment(digits_experiment("chg", maxTrials=2, parallelTrials=1))
        await wait_for(lambda: cluster.status("chg").get("phase") == "Running", 20, "Running")
        await cluster.patch_experiment("chg", {"spec": {"budget": {"maxTrials": 3, "parallelTrials": 2},
                                                        "strategy": {"seed": 99}}})
        await wait_for(lambda: any(c["type"] == "SpecChangeRefused" and c["status"] == "True"
                                   for c in cluster.status("chg").get("conditions", [])), 20, "refusal")
        refused = [c for c in cluster.status("chg")["conditions"] if c["type"] == "SpecChangeRefused"][0]
        assert "spec.strategy.seed" in refused["message"]
        await wait_for(lambda: cluster.status("chg").get("phase") == "Succeeded", 60, "Succeeded")
        assert cluster.status("chg")["trials"]["succeeded"] == 3  # the raised maxTrials took effect
        assert cluster.status("chg")["observedGeneration"] == 2
        assert any(e["reason"] == "BudgetChanged" for e in cluster.events())
