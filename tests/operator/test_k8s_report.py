"""The trainer's cluster reporter, without a cluster."""
from __future__ import annotations

import json

from kubenas_trainer.k8s_report import cluster_namespace, main_from_cluster, termination_message


def test_namespace_from_env_or_service_account_file(tmp_path):
    assert cluster_namespace({"POD_NAMESPACE": "a"}) == "a"
    f = tmp_path / "namespace"
    f.write_text("b\n")
    assert cluster_namespace({}, str(f)) == "b"
    assert cluster_namespace({}, str(tmp_path / "missing")) is None


def test_termination_message_is_short_json():
    msg = termination_message({"status": "Failed", "reward": float("nan"), "reason": "Diverged",
                               "message": "x" * 5000})
    data = json.loads(msg)
    assert data["status"] == "Failed" and "reward" not in data and len(data["message"]) == 400
    assert len(msg) < 600


def test_missing_trial_env_is_an_invalid_trial(tmp_path):
    log = tmp_path / "log"
    assert main_from_cluster(env={}, termination_log=str(log)) == 2
    assert json.loads(log.read_text())["reason"] == "InvalidTrial"
