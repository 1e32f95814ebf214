"""The real trainer in cluster mode (`kubenas-train --from-cluster`) against the
emulated API server: reads its NASTrial, trains on digits, reports into status."""
from __future__ import annotations

import asyncio
import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from kubernetes import client as k8s  # noqa: E402

from kubenas.api.trials import build_trial_spec  # noqa: E402
from kubenas.api.defaults import with_defaults  # noqa: E402

from .cluster import NS, digits_experiment  # noqa: E402


async def test_real_trainer_reports_into_trial_status(emulator, tmp_path):
    from kubenas_trainer.reporting.cluster import main_from_cluster

    spec = with_defaults(digits_experiment()["spec"])
    spec["trial"]["training"].update(epochs=2, batchSize=128, device="cpu")
    spec["trial"]["dataset"]["limit"] = 400
    candidate = {"architecture": {"type": "chain", "layers": [
        {"op": "conv", "filters": 8, "kernel": 3, "stride": 1}, {"op": "max_pool", "kernel": 3, "stride": 2}]},
        "hyperparameters": {"learningRate": 0.05}}
    trial = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial",
             "metadata": {"name": "real-0", "namespace": NS},
             "spec": build_trial_spec("real", spec, 0, candidate)}
    admin = k8s.ApiClient(emulator.conf)
    custom = k8s.CustomObjectsApi(admin)
    await asyncio.to_thread(custom.create_namespaced_custom_object, "kubenas.io", "v1alpha1", NS, "nastrials", trial)

    api = k8s.ApiClient(emulator.conf)
    api.user_agent = "kubenas-trainer/test"
    log = tmp_path / "termination-log"
    code = await asyncio.to_thread(
        main_from_cluster, env={"POD_NAMESPACE": NS, "KUBENAS_TRIAL": "real-0",
                                "KUBENAS_REPORT_INTERVAL_SECONDS": "0"},
        api_client=api, termination_log=str(log))
    assert code == 0
    stored = [o.raw for (res, _, name), o in emulator.objects.items() if res.plural == "nastrials"][0]
    status = stored["status"]
    assert status["phase"] == "Succeeded", status
    assert 0 < status["reward"] <= 1
    assert len(status["history"]) == 2 and status["history"][0]["epoch"] == 1
    assert status["metrics"]["parameters"] > 0 and status["startTime"] and status["completionTime"]
    short = json.loads(log.read_text())
    assert short["status"] == "Succeeded" and short["reward"] == status["reward"]
