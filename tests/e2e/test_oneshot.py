"""spec.oneShot on the real-API-server tier: the NASTrial CRD keeps the one-shot fields
(spec.oneshot, status.scores), the supernet trial's pod is deleted mid-training and its
Job's next pod resumes from the checkpoint the trainer keeps on the experiment's volume
after every epoch, every candidate is scored exactly once, the best-scored is retrained
as an ordinary trial and is the experiment's best."""
from __future__ import annotations

import json

from tests.e2e.test_artifacts import claim, finish
from tests.e2e.test_cluster import apply, experiment
from tests.waiting import wait_until

CANDIDATES, PER_TRIAL = 6, 3


def test_one_shot_succeeds_with_the_supernet_pod_killed_mid_training(local_only, installed, namespace, tmp_path):
    folder = tmp_path / "volume"
    folder.mkdir()
    claim(installed, namespace, "results", folder)
    body = experiment("e2e-shot", maxTrials=1 + CANDIDATES // PER_TRIAL + 1, parallelTrials=2, maxRetries=3)
    body["spec"]["searchSpace"] = {"type": "cell", "cell": {"nodes": 3, "operations": ["none", "skip_connect",
                                                                                       "conv_3x3"],
                                                            "channels": 4, "cellsPerStage": 1, "stages": 1}}
    body["spec"]["strategy"] = {"type": "evolution", "seed": 3, "evolution": {"populationSize": 3, "sampleSize": 2}}
    body["spec"]["oneShot"] = {"supernetEpochs": 60, "candidates": CANDIDATES, "candidatesPerTrial": PER_TRIAL,
                               "topK": 1, "bnRecalibrationBatches": 1}
    body["spec"]["trial"]["dataset"]["limit"] = 300
    body["spec"]["trial"]["training"]["epochs"] = 2
    body["spec"]["artifacts"] = {"persistentVolumeClaim": {"claimName": "results"}}
    apply(installed, namespace, body)

    uid = installed.get_json("nasexperiment", "e2e-shot", "-n", namespace)["metadata"]["uid"]
    kept = folder / f"e2e-shot_{uid}" / "e2e-shot-0" / "checkpoint.pt"
    wait_until(kept.exists, 600, "the supernet's first checkpoint on the volume", interval=1)
    pods = [p for p in installed.pods(namespace, "app.kubernetes.io/component=trainer")
            if p["metadata"]["name"].startswith("e2e-shot-0-") and not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    installed.kubectl("delete", "pod", "-n", namespace, pods[0]["metadata"]["name"], "--wait=false")

    exp = finish(installed, namespace, "e2e-shot")
    trials = sorted(installed.get_json("nastrials", "-n", namespace)["items"], key=lambda t: t["spec"]["index"])
    trials = [t for t in trials if t["spec"]["experiment"] == "e2e-shot"]
    kinds = [t["spec"]["oneshot"]["kind"] for t in trials]
    assert kinds == ["supernet", "score", "score", "retrain"], kinds
    supernet = trials[0]["status"]
    assert supernet["phase"] == "Succeeded", supernet
    assert supernet["metrics"]["resumedFromEpoch"] >= 1, supernet["metrics"]  # resumed, not retrained
    assert supernet["metrics"]["epochs"] == 60
    scores = {}
    for t in trials[1:3]:  # the API server kept the one-shot fields; every candidate scored once
        field = t["spec"]["oneshot"]
        assert field["supernetCheckpoint"] == "/var/lib/kubenas/artifacts/e2e-shot-0/checkpoint.pt"
        assert len(field["candidates"]) == len(field["indices"]) == len(t["status"]["scores"]) == PER_TRIAL
        for i, score in zip(field["indices"], t["status"]["scores"]):
            assert i not in scores
            scores[i] = score
    assert sorted(scores) == list(range(CANDIDATES))
    top = max(scores, key=lambda c: (scores[c], -c))
    retrain = trials[3]
    assert retrain["spec"]["oneshot"] == {"kind": "retrain", "candidate": top}
    assert exp["status"]["bestTrial"]["name"] == retrain["metadata"]["name"]
    result = json.loads((folder / f"e2e-shot_{uid}" / "e2e-shot-0" / "result.json").read_text())
    assert result["status"] == "Succeeded"
