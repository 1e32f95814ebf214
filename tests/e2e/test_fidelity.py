"""strategy.fidelity (ASHA) on the real-API-server tier: the controller creates promotions
as NASTrials (through the NASTrial CRD's schema, which must keep their fidelity and
checkpoint fields), the real trainer saves checkpoint.pt to the experiment's volume,
a promotion's trainer continues from it, and the operator ends the experiment when
nothing is left to promote."""
from __future__ import annotations

import json

from tests.e2e.test_artifacts import claim, finish
from tests.e2e.test_cluster import apply, experiment


def test_asha_promotions_continue_from_checkpoints_on_the_volume(local_only, installed, namespace, tmp_path):
    folder = tmp_path / "volume"
    folder.mkdir()
    claim(installed, namespace, "results", folder)
    body = experiment("e2e-asha", maxTrials=3, parallelTrials=2)
    body["spec"]["strategy"]["fidelity"] = {"minResource": 1, "reductionFactor": 3}
    body["spec"]["trial"]["training"]["epochs"] = 3
    body["spec"]["artifacts"] = {"persistentVolumeClaim": {"claimName": "results"}}
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-asha")
    complete = [c for c in exp["status"]["conditions"] if c["type"] == "Complete"][0]
    assert complete["reason"] == "MaxTrialsReached", complete
    assert "3 candidates (budget.maxTrials) by successive halving" in complete["message"], complete

    trials = installed.get_json("nastrials", "-n", namespace)["items"]
    ladder = {(t["spec"]["fidelity"]["candidate"], t["spec"]["fidelity"]["rung"]): t for t in trials}
    assert len(ladder) == len(trials) == 4, sorted(ladder)  # 3 candidates, the best one promoted
    first = {c: t for (c, r), t in ladder.items() if r == 0}
    assert sorted(first) == [0, 1, 2]
    best = max(first, key=lambda c: (first[c]["status"]["reward"], -c))
    promoted = ladder[(best, 1)]
    below = first[best]["metadata"]["name"]
    # The API server kept the fields the trainer needs (a structural schema prunes unknown ones).
    assert promoted["spec"]["training"]["epochs"] == 3 and promoted["spec"]["training"]["scheduleEpochs"] == 3
    assert promoted["spec"]["checkpoint"] == {"save": False,
                                              "resumeFrom": f"/var/lib/kubenas/artifacts/{below}/checkpoint.pt"}
    status = promoted["status"]
    assert status["phase"] == "Succeeded", status
    assert status["metrics"]["resumedFromEpoch"] == 1, status["metrics"]  # continued, not retrained
    assert len(status["history"]) == 3
    assert status["history"][0] == first[best]["status"]["history"][0]
    for c, t in first.items():  # every rung-0 trial left its checkpoint on the volume
        assert t["spec"]["checkpoint"]["save"] is True
        assert (folder / "e2e-asha" / t["metadata"]["name"] / "checkpoint.pt").stat().st_size > 0
    result = json.loads((folder / "e2e-asha" / promoted["metadata"]["name"] / "result.json").read_text())
    assert result["metrics"]["resumedFromEpoch"] == 1
