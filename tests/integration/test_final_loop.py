"""spec.final on a cluster (emulated API server, operator, controller, scripted trainer):
after maxTrials the controller retrains the top candidates with other training seeds as
NASTrials marked reevaluationOf, its strategy never sees them, and the operator ends the
experiment once they have all finished, with the best mean's candidate as bestTrial."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from kubenas.contract.genotype import genotype_hash
from kubenas.experiment import row_from_trial_object
from kubenas.local.runner import LocalRunner

from .cluster import FakeCluster, Script, digits_experiment, final_rewards, wait_for

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


# Search trials (training seed 10) score 0.6 + 0.03 * index at once; a re-evaluation (seed
# 11, 12) scores 0.1 every epoch, slowly: the median rule, were it applied, would stop it.
REEVALUATION_PROGRAM = [sys.executable, "-c", """
import os, time
from kubenas import report
index, seed = int(os.environ["KUBENAS_TRIAL_INDEX"]), int(os.environ["KUBENAS_SEED"])
for epoch in range(1, 4):
    report.report(epoch=epoch, accuracy=0.6 + 0.03 * index if seed == 10 else 0.1)
    if seed != 10:
        time.sleep(1.0)
"""]


def _final_median_experiment() -> dict:
    exp = digits_experiment("fm", maxTrials=4, parallelTrials=2)
    exp["spec"]["final"] = {"topK": 2, "seeds": 3}
    exp["spec"]["earlyStopping"] = {"type": "median", "minTrials": 2, "startEpoch": 2}
    exp["spec"]["trial"]["training"]["seed"] = 10
    exp["spec"]["trial"]["command"] = REEVALUATION_PROGRAM
    return exp


def _reevaluations(rows: list[dict]) -> dict:
    """(candidate hash, seed) of every re-evaluation -> its phase, from trials.jsonl-shaped rows."""
    by_name = {r["name"]: r for r in rows}
    return {(genotype_hash(r["architecture"], r["hyperparameters"]), by_name[r["reevaluationOf"]]["name"],
             r["seed"]): r["status"] for r in rows if r.get("reevaluationOf")}


async def test_final_with_median_stopping_reevaluates_alike_locally_and_in_a_cluster(emulator, tmp_path):
    """The same spec.final + median-stopping file: the local runner and the cluster retrain
    the same candidates over the same seeds, and neither stops a re-evaluation early (the
    experiment plan says a re-evaluation may not stop; the operator once stopped them)."""
    local = await asyncio.to_thread(LocalRunner(_final_median_experiment(), str(tmp_path / "run")).run)
    assert local.phase == "Succeeded", local.message
    local_runs = _reevaluations(local.records)

    cluster = FakeCluster(emulator, emulator.conf, script=lambda i: Script(command=REEVALUATION_PROGRAM))
    await cluster.start()
    try:
        await cluster.create_experiment(_final_median_experiment())
        await wait_for(lambda: ((cluster.experiment("fm") or {}).get("status") or {}).get("phase")
                       in ("Succeeded", "Failed"), 90, "the experiment to end")
        status = cluster.experiment("fm")["status"]
        assert status["phase"] == "Succeeded", status
        rows = []
        for trial in cluster.trials("fm"):
            row = row_from_trial_object(trial)
            if trial["spec"].get("reevaluationOf"):
                row["seed"] = trial["spec"]["training"]["seed"]
            rows.append(row)
        cluster_runs = _reevaluations(rows)
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors

    # fm-3 and fm-2 (the top two), each with seeds 11 and 12, all run to the end.
    assert sorted((of, seed) for _, of, seed in local_runs) == [("fm-2", 11), ("fm-2", 12), ("fm-3", 11),
                                                                ("fm-3", 12)]
    assert set(cluster_runs) == set(local_runs)
    assert set(local_runs.values()) == set(cluster_runs.values()) == {"Succeeded"}


# A candidate's accuracy: its quality (from its architecture and hyperparameters) shows
# with the epochs it trained; another seed shifts it a little. No checkpoint is read: a
# promotion trains again from scratch, which changes none of the decisions.
FIDELITY_PROGRAM = [sys.executable, "-c", """
import json, os, random, zlib
from kubenas import report
trial = json.load(open(os.environ["KUBENAS_TRIAL_FILE"]))
key = json.dumps([trial["architecture"], trial["hyperparameters"]], sort_keys=True).encode()
quality, noise = random.Random(zlib.crc32(key)).random(), random.Random(zlib.crc32(key) + 1).random()
epochs, seed = int(os.environ["KUBENAS_EPOCHS"]), int(os.environ["KUBENAS_SEED"])
for epoch in range(1, epochs + 1):
    share = epoch / 9
    report.report(epoch=epoch, accuracy=round(0.1 + 0.8 * (quality * share + (1 - share) * noise) + 0.002 * (seed - 10), 6))
"""]


def _fidelity_final_experiment() -> dict:
    exp = digits_experiment("ff", maxTrials=9, parallelTrials=1)
    exp["spec"]["strategy"]["fidelity"] = {"type": "hyperband", "minResource": 1, "reductionFactor": 3}
    exp["spec"]["final"] = {"topK": 2, "seeds": 2}
    exp["spec"]["trial"]["training"].update(epochs=9, seed=10)
    exp["spec"]["trial"]["command"] = FIDELITY_PROGRAM
    return exp


async def test_final_after_hyperband_reevaluates_alike_locally_and_in_a_cluster(emulator, tmp_path):
    """spec.final composes with strategy.fidelity: after the Hyperband search is spent, the
    two best candidates trained the full 9 epochs are trained again with seed 11, from
    scratch, as trials after the search's last one; the local runner and the cluster make
    the same trials (one at a time, so in the same order) and pick the same best mean."""
    local = await asyncio.to_thread(LocalRunner(_fidelity_final_experiment(), str(tmp_path / "run")).run)
    assert local.phase == "Succeeded", local.message
    local_rows = {r["index"]: r for r in local.records}

    cluster = FakeCluster(emulator, emulator.conf, script=lambda i: Script(command=FIDELITY_PROGRAM))
    await cluster.start()
    try:
        await cluster.create_experiment(_fidelity_final_experiment())
        await wait_for(lambda: ((cluster.experiment("ff") or {}).get("status") or {}).get("phase")
                       in ("Succeeded", "Failed"), 120, "the experiment to end")
        status = cluster.experiment("ff")["status"]
        assert status["phase"] == "Succeeded", status
        trials = {t["spec"]["index"]: t for t in cluster.trials("ff")}
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors

    search = [i for i, t in trials.items() if not t["spec"].get("reevaluationOf")]
    extra = sorted(i for i, t in trials.items() if t["spec"].get("reevaluationOf"))
    assert extra == [max(search) + 1, max(search) + 2]
    full = sorted((i for i in search if trials[i]["spec"]["training"]["epochs"] == 9),
                  key=lambda i: (-trials[i]["status"]["reward"], i))
    for index, original in zip(extra, full[:2]):
        spec = trials[index]["spec"]
        assert spec["reevaluationOf"] == trials[original]["metadata"]["name"]
        assert spec["training"]["seed"] == 11 and spec["training"]["epochs"] == 9
        assert "fidelity" not in spec and not (spec.get("checkpoint") or {}).get("resumeFrom")
        assert spec["architecture"] == trials[original]["spec"]["architecture"]

    # The same trials, rewards and re-evaluations as `kubenas run`.
    assert sorted(local_rows) == sorted(trials)
    for index, trial in trials.items():
        row = local_rows[index]
        assert row["architecture"] == trial["spec"]["architecture"], index
        assert row.get("reevaluationOf") == trial["spec"].get("reevaluationOf"), index
        assert row["reward"] == pytest.approx(trial["status"]["reward"]), index
    best = status["bestTrial"]
    assert best["final"]["n"] == 2 and best["name"] in {trials[i]["metadata"]["name"] for i in full[:2]}
    assert json.loads((tmp_path / "run" / "best.json").read_text())["name"] == best["name"]
