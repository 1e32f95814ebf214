"""A multi-fidelity (ASHA, Hyperband) search through the whole loop (emulated API server, operator,
controller, scripted trainer): the controller creates promotions as NASTrials that
continue the rung below's checkpoint in the artifacts, its strategy learns only the
candidates' first results, and the operator ends the experiment when nothing is left
to promote."""
from __future__ import annotations

import random

from kubenas.contract.fidelity import rungs

from .cluster import Script, digits_experiment, running, wait_for

EPOCHS = 9


def accuracy(candidate: int, epoch: int) -> float:
    """Each candidate's learning curve: its quality shows only with more epochs."""
    rng = random.Random(candidate)
    quality, noise = rng.random(), rng.random()
    return round(0.1 + 0.8 * (quality * epoch / EPOCHS + (1 - epoch / EPOCHS) * noise), 6)


def script(index: int) -> Script:
    return Script(curve=lambda trial: [accuracy(trial["fidelity"]["candidate"], e)
                                       for e in range(1, trial["training"]["epochs"] + 1)])


async def test_asha_promotes_through_nastrials_and_ends_when_nothing_is_promotable(emulator):
    async with running(emulator, script=script) as cluster:
        exp = digits_experiment("asha", maxTrials=9, parallelTrials=2)
        exp["spec"]["strategy"]["fidelity"] = {"minResource": 1, "reductionFactor": 3}
        exp["spec"]["trial"]["training"]["epochs"] = EPOCHS
        exp["spec"]["artifacts"] = {"url": "s3://models/nas", "credentialsSecret": "s3-creds"}
        await cluster.create_experiment(exp)
        await wait_for(lambda: cluster.status("asha").get("phase") == "Succeeded",
                       90, "Succeeded")
        status = cluster.experiment("asha")["status"]
        status_uid = cluster.experiment("asha")["metadata"]["uid"]  # the experiment's folder: asha_<uid>
        complete = [c for c in status["conditions"] if c["type"] == "Complete"][0]
        assert complete["reason"] == "MaxTrialsReached"
        assert "9 candidates (budget.maxTrials) by successive halving" in complete["message"]

        trials = sorted(cluster.trials("asha"), key=lambda t: t["spec"]["index"])
        assert [t["spec"]["index"] for t in trials] == list(range(len(trials)))
        by_rung: dict[int, dict[int, dict]] = {}
        for t in trials:
            spec = t["spec"]
            candidate, rung = spec["fidelity"]["candidate"], spec["fidelity"]["rung"]
            by_rung.setdefault(rung, {})[candidate] = t
            assert spec["training"]["epochs"] == rungs(1, EPOCHS, 3)[rung]
            assert spec["training"]["scheduleEpochs"] == EPOCHS
            assert spec["checkpoint"]["save"] is (rung < 2)
            assert t["status"]["phase"] == "Succeeded"
            if rung == 0:
                assert spec["checkpoint"]["resumeFrom"] is None
            else:  # the same candidate, continuing its trial of the rung below from the artifacts
                below = by_rung[rung - 1][candidate]
                assert spec["architecture"] == below["spec"]["architecture"]
                assert spec["hyperparameters"] == below["spec"]["hyperparameters"]
                assert spec["checkpoint"]["resumeFrom"] == \
                    f"s3://models/nas/asha_{status_uid}/{below['metadata']['name']}/checkpoint.pt"
        assert sorted(by_rung[0]) == list(range(9))
        # At least the top third of each rung went on; the best of each rung among them.
        assert len(by_rung[1]) >= 3 and len(by_rung[2]) >= 1
        best0 = max(by_rung[0], key=lambda c: by_rung[0][c]["status"]["reward"])
        best1 = max(by_rung[1], key=lambda c: by_rung[1][c]["status"]["reward"])
        assert best0 in by_rung[1] and best1 in by_rung[2]
        # The controller's strategy saw the 9 candidates' first results, nothing else.
        strategy = cluster.controller_incarnations[-1].strategy
        assert strategy._observed == set(range(9))


async def test_hyperband_starts_each_bracket_at_its_rung_and_promotes_within_it(emulator):
    async with running(emulator, script=script) as cluster:
        exp = digits_experiment("hb", maxTrials=6, parallelTrials=2)
        exp["spec"]["strategy"]["fidelity"] = {"type": "hyperband", "minResource": 1, "reductionFactor": 3}
        exp["spec"]["trial"]["training"]["epochs"] = EPOCHS
        exp["spec"]["artifacts"] = {"url": "s3://models/nas", "credentialsSecret": "s3-creds"}
        await cluster.create_experiment(exp)
        await wait_for(lambda: cluster.status("hb").get("phase") == "Succeeded",
                       90, "Succeeded")
        complete = [c for c in cluster.experiment("hb")["status"]["conditions"] if c["type"] == "Complete"][0]
        assert complete["reason"] == "MaxTrialsReached"
        assert "6 candidates (budget.maxTrials) by Hyperband" in complete["message"]

        trials = sorted(cluster.trials("hb"), key=lambda t: t["spec"]["index"])
        first = {}
        for t in trials:
            spec = t["spec"]
            candidate, rung = spec["fidelity"]["candidate"], spec["fidelity"]["rung"]
            first.setdefault(candidate, (rung, spec))
            assert spec["training"]["epochs"] == rungs(1, EPOCHS, 3)[rung]
            assert spec["checkpoint"]["save"] is (rung < 2)
        # Hyperband's cycle for rungs 1/3/9: brackets 0, 1, 0, 2, 0, 1; a candidate's first
        # trial trains its bracket's rung from scratch.
        assert {c: r for c, (r, _) in first.items()} == {0: 0, 1: 1, 2: 0, 3: 2, 4: 0, 5: 1}
        assert all(spec["checkpoint"]["resumeFrom"] is None for _, spec in first.values())
        # Promotions compare within a bracket: bracket 0 (candidates 0, 2, 4) promotes its
        # best to 3 epochs; bracket 1 (two results at 3 epochs) has too few to promote.
        promotions = [t["spec"]["fidelity"] for t in trials if t["spec"]["checkpoint"]["resumeFrom"]]
        best0 = max((0, 2, 4), key=lambda c: accuracy(c, 1))
        assert promotions == [{"candidate": best0, "rung": 1}]
        strategy = cluster.controller_incarnations[-1].strategy
        assert strategy._observed == set(range(6))
