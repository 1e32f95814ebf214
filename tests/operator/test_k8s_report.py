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


def test_a_progress_write_refused_after_the_trial_ended_stops_training():
    """Once the operator has ended the trial (EarlyStopped), admission refuses every status
    write of the trainer's token (deploy/admission.yaml): the next epoch's history write
    answers 403, and the trainer stops instead of training on; it writes nothing after."""
    from kubernetes.client.exceptions import ApiException

    from kubenas_trainer.k8s_report import KubernetesReporter

    class Api:
        def __init__(self):
            self.phase, self.patches = "Running", []

        def get_namespaced_custom_object(self, *args, **kwargs):
            return {"metadata": {"resourceVersion": "7"}, "status": {"phase": self.phase}}

        def patch_namespaced_custom_object_status(self, *args, **kwargs):
            if self.phase != "Running":
                raise ApiException(status=403, reason="Forbidden")
            self.patches.append(args[-1])
            return {"status": {"phase": self.phase}}

    reporter = KubernetesReporter("ns", "t-0", api_client=object(), min_interval=0)
    reporter.api = api = Api()
    assert reporter.epoch({"epoch": 1, "accuracy": 0.5}) is None and len(api.patches) == 1
    api.phase = "EarlyStopped"
    assert reporter.epoch({"epoch": 2, "accuracy": 0.6}) == "stop"
    reporter.final({"status": "Succeeded", "reward": 0.6})  # already ended: not written
    assert len(api.patches) == 1
    # A 403 while the trial still runs is a real failure to report, not a stop.
    api.phase, reporter.stop_requested = "Running", False
    api.patch_namespaced_custom_object_status = lambda *a, **k: (_ for _ in ()).throw(ApiException(status=403))
    assert reporter.epoch({"epoch": 3, "accuracy": 0.7}) is None and not reporter.stop_requested
