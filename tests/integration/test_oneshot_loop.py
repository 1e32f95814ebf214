"""A one-shot experiment (spec.oneShot) through the whole loop (emulated API server,
operator, controller, scripted trainer): one supernet trial, the strategy's candidates
scored in batches by score trials whose scores are NASTrial status, the best retrained;
the controller is killed while the candidates are being scored and its successor
rebuilds the strategy from the NASTrials (no checkpoint), losing and repeating no
candidate."""
from __future__ import annotations

import asyncio
import random

from kubenas.api.defaults import with_defaults
from kubenas.contract.genotype import genotype_hash
from kubenas.experiment import from_trial_object
from kubenas.experiment.plan import plan_for
from kubenas.space import SearchSpace
from kubenas.strategies import make_strategy, rebuild

from .cluster import NS, FakeCluster, Script, digits_experiment, wait_for

CANDIDATES, PER_TRIAL, TOP_K = 12, 3, 2


def inherited_score(architecture: dict) -> float:
    """A candidate's score with inherited weights: a function of its network alone."""
    return round(random.Random(genotype_hash(architecture, {})).uniform(0.2, 0.9), 6)


def script(index: int) -> Script:
    def extra(trial):
        field = trial.get("oneshot") or {}
        if field.get("kind") == "score":
            return {"scores": [inherited_score(a) for a in field["candidates"]]}
        return {}
    # score trials take a while, so that the controller is killed while they run
    return Script(values=[0.5, 0.6, 0.7 + 0.01 * index], epoch_seconds=0.3, extra=extra)


def oneshot_experiment(name: str) -> dict:
    exp = digits_experiment(name, maxTrials=1 + CANDIDATES // PER_TRIAL + TOP_K, parallelTrials=2)
    spec = exp["spec"]
    spec["searchSpace"] = {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1",
                                                                             "conv_3x3"],
                                                    "channels": 8, "cellsPerStage": 1, "stages": 1}}
    spec["strategy"] = {"type": "evolution", "seed": 5, "evolution": {"populationSize": 4, "sampleSize": 2}}
    spec["oneShot"] = {"supernetEpochs": 3, "candidates": CANDIDATES, "candidatesPerTrial": PER_TRIAL,
                       "topK": TOP_K}
    spec["artifacts"] = {"url": "s3://models/nas", "credentialsSecret": "s3-creds"}
    return exp


async def test_a_one_shot_experiment_survives_a_controller_restart_mid_scoring(emulator):
    cluster = FakeCluster(emulator, emulator.conf, script=script)
    await cluster.start()
    try:
        await cluster.create_experiment(oneshot_experiment("shot"))

        def scored() -> int:
            return sum(1 for t in cluster.trials("shot") if (t["spec"].get("oneshot") or {}).get("kind") == "score"
                       and (t.get("status") or {}).get("phase") == "Succeeded")

        await wait_for(lambda: scored() >= 1, 60, "a score trial to succeed")
        assert scored() < CANDIDATES // PER_TRIAL  # mid-phase
        await asyncio.to_thread(cluster.kill_controller, NS, "shot")  # its successor is started by the loop
        await wait_for(lambda: len(cluster.controller_incarnations) >= 2, 10, "a new controller pod")
        await wait_for(lambda: ((cluster.experiment("shot") or {}).get("status") or {}).get("phase") == "Succeeded",
                       120, "Succeeded")

        trials = sorted(cluster.trials("shot"), key=lambda t: t["spec"]["index"])
        kinds = [t["spec"]["oneshot"]["kind"] for t in trials]
        assert kinds == ["supernet"] + ["score"] * (CANDIDATES // PER_TRIAL) + ["retrain"] * TOP_K
        assert all(t["status"]["phase"] == "Succeeded" for t in trials)
        uid = cluster.experiment("shot")["metadata"]["uid"]
        scores: dict[int, float] = {}
        for t in trials[1:1 + CANDIDATES // PER_TRIAL]:  # every candidate scored once, none lost
            field = t["spec"]["oneshot"]
            assert field["supernetCheckpoint"] == f"s3://models/nas/shot_{uid}/shot-0/checkpoint.pt"
            assert len(t["status"]["scores"]) == len(field["indices"]) == PER_TRIAL
            for i, arch, score in zip(field["indices"], field["candidates"], t["status"]["scores"]):
                assert i not in scores and score == inherited_score(arch)
                scores[i] = score
        assert sorted(scores) == list(range(CANDIDATES))
        # The top-k by score retrained, as ordinary trials of the same networks.
        best = sorted(scores, key=lambda c: (-scores[c], c))[:TOP_K]
        retrained = trials[-TOP_K:]
        assert [t["spec"]["oneshot"]["candidate"] for t in retrained] == best
        by_index = {i: a for t in trials[1:-TOP_K]
                    for i, a in zip(t["spec"]["oneshot"]["indices"], t["spec"]["oneshot"]["candidates"])}
        assert [t["spec"]["architecture"] for t in retrained] == [by_index[c] for c in best]
        # The experiment's best is a retrained trial, not the supernet or a score trial.
        status = cluster.experiment("shot")["status"]
        assert status["bestTrial"]["name"] in {t["metadata"]["name"] for t in retrained}
        # The restarted controller's strategy observed every candidate's score under the
        # candidate's index; a strategy rebuilt from the NASTrials alone (no checkpoint) knows
        # the same, with the same scores.
        live = cluster.controller_incarnations[-1].strategy
        assert live._observed == set(range(CANDIDATES))
        spec = with_defaults(oneshot_experiment("shot")["spec"])
        plan = plan_for(spec)
        fresh = make_strategy(spec["strategy"], SearchSpace.from_spec(spec["searchSpace"]), "maximize")
        records = [(from_trial_object(t), t) for t in trials]
        rebuild(fresh, [p for r, t in records for p in plan.proposals(r, t["spec"])],
                [o for r, t in records for o in plan.observations(r, t["spec"], t["status"].get("metrics"))])
        assert fresh._observed == live._observed
        assert sorted(o[2] for r, t in records for o in plan.observations(r, t["spec"], None)) == \
            sorted(scores.values())
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors
