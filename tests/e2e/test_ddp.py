"""A trial of two processes on the real-API-server tier (docs/distributed.md): the trial
Job's pod runs `kubenas-train --from-cluster --nproc-per-node 2 --backend gloo`, which
launches two ranks under torchrun inside the pod (the node stand-in runs the pod as local
processes in a network namespace of its own, where torchrun's standalone rendezvous
listens on the pod's loopback); rank 0 alone writes the NASTrial's status."""
from __future__ import annotations

import yaml

from tests.e2e.test_cluster import apply, ended
from tests.realtier.cluster import REPO


def ddp_experiment(name: str) -> dict:
    body = yaml.safe_load((REPO / "deploy" / "examples" / "digits-evolution.yaml").read_text())
    body["metadata"]["name"] = name
    spec = body["spec"]
    spec["strategy"] = {"type": "random", "seed": 1}
    spec["budget"].update(maxTrials=1, parallelTrials=1)
    spec.pop("earlyStopping", None)
    trial = spec["trial"]
    trial["dataset"] = {"name": "digits", "limit": 300}
    trial["training"] = {"epochs": 2, "batchSize": 32, "numThreads": 1}
    trial["distributed"] = {"nprocPerNode": 2, "backend": "gloo"}
    trial["template"] = {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}}
    return body


def test_a_two_process_ddp_trial_succeeds(installed, namespace):
    apply(installed, namespace, ddp_experiment("ddp"))
    exp = ended(installed, namespace, "ddp", 600)
    [trial] = installed.get_json("nastrials", "-n", namespace)["items"]
    assert exp["status"]["phase"] == "Succeeded", (exp["status"], trial.get("status"))
    status = trial["status"]
    assert status["phase"] == "Succeeded", status
    assert status["metrics"]["processes"] == 2
    assert [h["epoch"] for h in status["history"]] == [1, 2]  # one report an epoch: rank 0's
    assert 0 < status["reward"] <= 1
    [pod] = [p for p in installed.pods(namespace) if p["metadata"]["name"].startswith(trial["metadata"]["name"])]
    assert pod["spec"]["containers"][0]["command"] == ["kubenas-train", "--from-cluster", "--nproc-per-node", "2",
                                                       "--backend", "gloo"]
