"""The trainer's cluster reporter, without a cluster."""
from __future__ import annotations

import json

import pytest

from kubenas.contract.result import MESSAGE_LIMIT, TERMINATION_MESSAGE_BYTES, termination_message

from kubenas_trainer.reporting.cluster import RETRIES, cluster_namespace, main_from_cluster


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
    assert data["status"] == "Failed" and "reward" not in data and len(data["message"]) == MESSAGE_LIMIT
    assert len(msg.encode()) <= TERMINATION_MESSAGE_BYTES


def test_missing_trial_env_is_an_invalid_trial(tmp_path):
    log = tmp_path / "log"
    assert main_from_cluster(env={}, termination_log=str(log)) == 2
    assert json.loads(log.read_text())["reason"] == "InvalidTrial"


def test_a_progress_write_refused_after_the_trial_ended_stops_training():
    """Once the operator has ended the trial (EarlyStopped), admission refuses every status
    write of the trainer's token (deploy/admission.yaml): the next epoch's history write
    answers 403, and the trainer stops instead of training on; it writes nothing after."""
    from kubernetes.client.exceptions import ApiException

    from kubenas_trainer.reporting.cluster import KubernetesReporter

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


def test_a_final_write_whose_answer_was_lost_is_not_an_error():
    """The final result applied, its answer lost, the retry refused (403: the trial has
    ended, so its status is the operator's): the result is there, nothing more to write."""
    from kubernetes.client.exceptions import ApiException

    from kubenas_trainer.reporting.cluster import KubernetesReporter

    class Api:
        phase = "Running"

        def get_namespaced_custom_object(self, *args, **kwargs):
            return {"metadata": {"resourceVersion": "7"}, "status": {"phase": self.phase}}

        def patch_namespaced_custom_object_status(self, *args, **kwargs):
            self.phase = "Succeeded"  # applied ...
            raise ApiException(status=403, reason="Forbidden")  # ... as the retry of a lost answer sees it

    reporter = KubernetesReporter("ns", "t-0", api_client=object(), retries=0)
    reporter.api = Api()
    reporter.final({"status": "Succeeded", "reward": 0.6})  # no exception


class FlakyApi:
    """CustomObjectsApi's two calls the reporter makes, failing as scripted: each entry of
    ``faults`` is raised by the next call (None: the call works)."""

    def __init__(self, faults, phase=None):
        self.faults = list(faults)
        self.calls = []
        self.status = {"phase": phase} if phase else {}

    def _next(self, what):
        self.calls.append(what)
        fault = self.faults.pop(0) if self.faults else None
        if fault is not None:
            raise fault

    def get_namespaced_custom_object(self, *args, _request_timeout=None):
        self._next("get")
        return {"metadata": {"resourceVersion": "1"}, "spec": {"index": 0}, "status": self.status}

    def patch_namespaced_custom_object_status(self, *args, _request_timeout=None):
        self._next("patch")
        self.status.update(args[-1]["status"])
        return {"status": self.status}


def api_error(status, retry_after=None):
    from kubernetes.client.exceptions import ApiException

    err = ApiException(status=status, reason="ServiceUnavailable" if status == 503 else "Forbidden")
    err.headers = {"Retry-After": retry_after} if retry_after else {}
    return err


def reporter(api, monkeypatch, waits):
    from kubenas_trainer.reporting import cluster as k8s_report

    monkeypatch.setattr(k8s_report.time, "sleep", waits.append)
    r = k8s_report.KubernetesReporter("ns", "t-0", api_client=object(), retry_delay=1.0)
    r.api = api
    return r


def test_transient_errors_are_retried_with_a_bounded_backoff_and_the_servers_retry_after(monkeypatch):
    waits = []
    api = FlakyApi([api_error(503), api_error(429, retry_after="4"), ConnectionResetError(), api_error(503, "99")])
    assert reporter(api, monkeypatch, waits).get()["spec"] == {"index": 0}
    assert waits == [1.0, 4.0, 4.0, 15.0]  # doubling; Retry-After when longer; never above 15 s


def test_a_non_transient_error_is_not_retried(monkeypatch):
    waits = []
    with pytest.raises(Exception, match="Forbidden"):
        reporter(FlakyApi([api_error(403)]), monkeypatch, waits).get()
    assert waits == []


def test_a_start_that_cannot_be_reported_does_not_stop_the_trial_but_a_refusal_does(monkeypatch):
    waits = []
    api = FlakyApi([None] + [api_error(503)] * (RETRIES + 1))  # the read works, every write try fails
    reporter(api, monkeypatch, waits).start()
    assert api.calls == ["get"] + ["patch"] * (RETRIES + 1) and len(waits) == RETRIES
    with pytest.raises(Exception, match="Forbidden"):
        reporter(FlakyApi([None, api_error(403)]), monkeypatch, []).start()


def test_an_exception_of_the_trainer_still_ends_as_a_result_in_the_termination_log(tmp_path, monkeypatch):
    api = FlakyApi([])
    monkeypatch.setattr("kubernetes.client.CustomObjectsApi", lambda api_client: api)

    def broken(trial, **kw):
        raise KeyError("boom")

    log = tmp_path / "log"
    code = main_from_cluster(env={"POD_NAMESPACE": "ns", "KUBENAS_TRIAL": "t-0"}, api_client=object(),
                             termination_log=str(log), run=broken)
    short = json.loads(log.read_text())
    assert code == 1 and (short["reason"], api.status["reason"]) == ("InternalError", "InternalError")
    assert short["message"].startswith("KeyError: 'boom' (test_k8s_report.py:")
