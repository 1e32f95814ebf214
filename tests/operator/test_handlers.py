"""The kopf handlers: what reaches a reconciler, and with which cached experiment.

kopf lists every trial and Job again whenever a watch ends; at 10,000 trials a handler
that read the API for each of them would stall the operator (bench/RESULTS.md). These
tests call the handlers as kopf does and record what they pass on.
"""
from __future__ import annotations

import pytest

from kubenas.operator import handlers
from kubenas.operator.book import Book

FINISHED = [{"type": "Finished", "status": "True", "reason": "Succeeded"}]
EXPERIMENT = {"metadata": {"name": "exp", "namespace": "ns"}, "status": {"phase": "Running"}}


def trial(phase=None, conditions=None, name="exp-0"):
    status = {} if phase is None else {"phase": phase, "conditions": conditions or []}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"experiment": "exp", "index": 0},
            "status": status}


def job(condition=None, name="exp-0"):
    body = {"metadata": {"name": name, "namespace": "ns", "labels": {"kubenas.io/experiment": "exp"},
                         "ownerReferences": [{"kind": "NASTrial", "name": name}]},
            "status": {"active": 1}}
    if condition:
        body["status"] = {"conditions": [{"type": condition, "status": "True"}]}
    return body


class RecordingReconciler:
    def __init__(self):
        self.calls = []

    def trial(self, namespace, name, peers=None, body=None, experiment=None, job=None):
        self.calls.append({"name": name, "body": body, "experiment": experiment, "peers": peers, "job": job})


class FakeApp:
    def __init__(self):
        self.reconciler = RecordingReconciler()
        self.marked = []
        self.book = Book()
        self.book.put_experiment(EXPERIMENT)
        self.book.put_trial(trial("Running", name="exp-9"))

    def mark(self, namespace, experiment):
        self.marked.append((namespace, experiment))


@pytest.fixture()
def app():
    return FakeApp()


def send_trial(app, event_type, body):
    handlers.trial_event(type=event_type, namespace="ns", name=body["metadata"]["name"], spec=body["spec"],
                         body=body, memo={"app": app})


def send_job(app, event_type, body):
    handlers.job_event(type=event_type, namespace="ns", body=body, memo={"app": app})


@pytest.mark.parametrize("event_type", [None, "MODIFIED"])
@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_settled_trials_cost_nothing(app, event_type, phase):
    send_trial(app, event_type, trial(phase, FINISHED))
    assert app.reconciler.calls == []
    assert app.marked == [("ns", "exp")]  # the status fold still sees it
    assert {s.name: s.phase for s in app.book.summaries("ns", "exp")}["exp-0"] == phase


def test_early_stopped_trial_is_reconciled_on_a_change_not_on_a_relisting(app):
    send_trial(app, None, trial("EarlyStopped", FINISHED))
    assert app.reconciler.calls == []
    send_trial(app, "MODIFIED", trial("EarlyStopped", FINISHED))
    assert [c["name"] for c in app.reconciler.calls] == ["exp-0"]


@pytest.mark.parametrize("body", [trial(), trial("Running"), trial("Succeeded")], ids=["new", "running", "unacked"])
def test_unsettled_trials_are_reconciled_with_the_watched_experiment(app, body):
    send_trial(app, None, body)
    (call,) = app.reconciler.calls
    assert call["body"] == body and call["experiment"] is EXPERIMENT
    assert sorted(p.name for p in call["peers"]) == ["exp-0", "exp-9"]  # the book, with this trial in it


def test_deleted_trial_is_not_reconciled_and_leaves_the_book(app):
    send_trial(app, "DELETED", trial("Running", name="exp-9"))
    assert app.reconciler.calls == []
    assert app.book.summaries("ns", "exp") == []


@pytest.mark.parametrize("condition", ["Complete", "Failed"])
def test_finished_job_on_relisting_costs_nothing(app, condition):
    send_job(app, None, job(condition))
    assert app.reconciler.calls == []


@pytest.mark.parametrize("event_type,condition", [(None, None), ("MODIFIED", "Complete"), ("MODIFIED", "Failed"),
                                                  ("ADDED", None), ("DELETED", None)])
def test_job_changes_and_active_jobs_are_reconciled(app, event_type, condition):
    send_job(app, event_type, job(condition))
    (call,) = app.reconciler.calls
    # exp-0 was never watched: the reconcile reads it
    assert call["name"] == "exp-0" and call["body"] is None and call["experiment"] is EXPERIMENT
    assert call["job"] == (None if event_type == "DELETED" else job(condition))


@pytest.mark.parametrize("condition", [None, "Complete", "Failed"])
def test_a_job_event_reconciles_the_watched_trial_with_the_delivered_job(app, condition):
    """The observe phase reuses the watches: no trial GET per Job event (4.3 per trial on
    a real API server before), and the trial event that follows sees the watched Job."""
    watched = trial("Running", name="exp-9")
    send_job(app, "MODIFIED", job(condition, name="exp-9"))
    (call,) = app.reconciler.calls
    assert call["body"] == watched and call["job"] == job(condition, name="exp-9")
    send_trial(app, "MODIFIED", watched)
    assert app.reconciler.calls[-1]["job"] == job(condition, name="exp-9")


def test_a_deleted_job_reconciles_its_trial_from_a_fresh_read(app):
    """The watched trial may predate the stop that deleted the Job: deciding from it could
    create the Job again."""
    send_job(app, "MODIFIED", job(name="exp-9"))
    send_job(app, "DELETED", job(name="exp-9"))
    call = app.reconciler.calls[-1]
    assert call["body"] is None and call["job"] is None
    assert app.book.watched_job("ns", "exp-9") is None


@pytest.mark.parametrize("phase,reconciled", [("Succeeded", False), ("Failed", False), ("EarlyStopped", True)])
def test_a_job_event_of_a_trial_whose_end_is_recorded(app, phase, reconciled):
    """Its end is recorded: nothing its Job does changes the trial (no read), unless it was
    stopped early and its Job may still run."""
    send_trial(app, "MODIFIED", trial(phase, FINISHED, name="exp-9"))
    app.reconciler.calls.clear()
    send_job(app, "MODIFIED", job("Complete", name="exp-9"))
    assert bool(app.reconciler.calls) == reconciled
    assert app.book.watched_trial("ns", "exp-9") is None and app.book.watched_job("ns", "exp-9") is None


def test_the_book_keeps_watched_bodies_of_trials_in_flight_only():
    book = Book()
    book.put_experiment(EXPERIMENT)
    book.put_trial(trial("Running"))
    book.put_job("exp-0", job())
    assert book.watched_trial("ns", "exp-0") == trial("Running") and book.watched_job("ns", "exp-0") == job()
    book.put_job("exp-7", job(name="exp-7"))  # a Job of a trial not watched (or already settled): not kept
    assert book.watched_job("ns", "exp-7") is None
    book.put_trial(trial("Succeeded"))  # terminal, not yet acknowledged: still in flight for the operator
    assert book.watched_trial("ns", "exp-0") is not None
    book.put_trial(trial("Succeeded", FINISHED))
    assert book.watched_trial("ns", "exp-0") is None and book.watched_job("ns", "exp-0") is None


def test_job_without_a_trial_owner_is_ignored(app):
    body = job()
    body["metadata"]["ownerReferences"] = []
    send_job(app, "ADDED", body)
    assert app.reconciler.calls == []


def test_book_lists_in_pages_at_start_and_forgets_deleted_experiments():
    class PagedKube:
        def iter_custom(self, plural, namespace=None):
            assert namespace is None  # the whole cluster
            if plural == "nasexperiments":
                return iter([EXPERIMENT])
            return iter([trial("Succeeded", FINISHED, name=f"exp-{i}") for i in range(3)])

    book = Book()
    book.fill(PagedKube(), "nasexperiments", "nastrials")
    assert book.trial_count() == 3 and book.experiment("ns", "exp") is EXPERIMENT
    assert all(s.acknowledged for s in book.summaries("ns", "exp"))
    assert book.experiment("ns", "missing") is None and book.summaries("ns", "missing") == []
    book.drop_experiment("ns", "exp")
    assert book.trial_count() == 0 and book.experiment_keys() == []


def test_watch_seconds_from_the_environment_are_whole_seconds(monkeypatch):
    import pytest

    from kubenas.operator.main import options_from_env

    monkeypatch.setenv("KUBENAS_WATCH_SECONDS", "600.0")
    assert options_from_env().watch_seconds == 600 and isinstance(options_from_env().watch_seconds, int)
    monkeypatch.setenv("KUBENAS_WATCH_SECONDS", "ten")
    with pytest.raises(SystemExit, match="KUBENAS_WATCH_SECONDS='ten' is not a number"):
        options_from_env()


def test_a_trial_its_experiment_did_not_make_is_not_counted_and_gets_no_job():
    """Only the experiment's controller makes its trials (they carry its owner reference
    with its uid); a trial that merely names the experiment counts for nothing and runs
    nothing, even where no admission policy stops its creation."""
    from unittest import mock

    from kubenas.cluster.objects import owned_by, owner_reference
    from kubenas.contract.reasons import NOT_OWNED
    from kubenas.operator.reconcile import Reconciler

    exp = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
           "metadata": {"name": "exp", "namespace": "ns", "uid": "u-1",
},
           "status": {"phase": "Running", "acceptedSpec": "{}"}}
    ours = {"metadata": {"name": "exp-0", "namespace": "ns", "resourceVersion": "1",
                         "ownerReferences": [owner_reference(exp)]},
            "spec": {"experiment": "exp", "index": 0}, "status": {}}
    forged = {"metadata": {"name": "exp-7", "namespace": "ns", "resourceVersion": "1",
                           "ownerReferences": [{**owner_reference(exp), "uid": "someone-else"}]},
              "spec": {"experiment": "exp", "index": 7}, "status": {"phase": "Succeeded", "reward": 1.0}}
    assert owned_by(ours, exp) and not owned_by(forged, exp)
    book = Book()
    book.put_experiment(exp)
    book.put_trial(ours)
    book.put_trial(forged)
    assert [s.name for s in book.summaries("ns", "exp")] == ["exp-0"]

    kube = mock.Mock()
    kube.patch_custom_status.return_value = {}
    r = Reconciler(kube)
    with mock.patch("kubenas.operator.reconcile.accepted_spec", return_value={"budget": {}}):
        r.trial("ns", "exp-7", [], body={**forged, "status": {}}, experiment=exp)
    kube.create.assert_not_called()
    (_, _, _, patch), _ = kube.patch_custom_status.call_args
    assert patch["status"]["phase"] == "Failed" and patch["status"]["reason"] == NOT_OWNED


def test_a_job_the_api_server_refuses_for_good_ends_the_trial_with_its_reason():
    """400/422 on creating the Job (an invalid pod template, a name too long): the trial
    ends Failed with the API server's message and an Event, instead of a silent retry
    loop; a 403 (an exhausted ResourceQuota, say) stays a retry."""
    import json as _json
    from unittest import mock

    import pytest
    from kubernetes.client.exceptions import ApiException

    from kubenas.cluster.objects import owner_reference
    from kubenas.contract.reasons import JOB_REFUSED
    from kubenas.operator.reconcile import Reconciler

    exp = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
           "metadata": {"name": "exp", "namespace": "ns", "uid": "u-1"}, "status": {"phase": "Running"}}
    body = {"metadata": {"name": "exp-0", "namespace": "ns", "resourceVersion": "1",
                         "ownerReferences": [owner_reference(exp)]},
            "spec": {"experiment": "exp", "index": 0}, "status": {}}

    def refused(status):
        err = ApiException(status=status, reason="Unprocessable Entity" if status == 422 else "Forbidden")
        err.body = _json.dumps({"kind": "Status", "message": 'Job.batch "exp-0" is invalid: spec.template.spec.'
                                                             'volumes[0].name: Invalid value: "Data_1"'})
        return err

    for status, ends in ((422, True), (400, True), (403, False)):
        kube = mock.Mock()
        kube.get.return_value = None
        kube.create.side_effect = refused(status)
        kube.patch_custom_status.return_value = {}
        r = Reconciler(kube)
        with mock.patch("kubenas.operator.reconcile.accepted_spec", return_value={"budget": {}}), \
                mock.patch("kubenas.operator.reconcile.job_for_trial", return_value={}):
            if not ends:
                with pytest.raises(ApiException):
                    r.trial("ns", "exp-0", [], body=body, experiment=exp)
                kube.patch_custom_status.assert_not_called()
                continue
            r.trial("ns", "exp-0", [], body=body, experiment=exp)
        (_, _, _, patch), _ = kube.patch_custom_status.call_args
        assert patch["status"]["phase"] == "Failed" and patch["status"]["reason"] == JOB_REFUSED
        assert "volumes[0].name" in patch["status"]["message"], patch
        events = [c.args for c in kube.core.create_namespaced_event.call_args_list]
        assert any(e[1]["reason"] == JOB_REFUSED for e in events), events


def test_liveness_fails_when_the_resync_loop_stops_making_progress():
    """kopf answers /healthz with 500 when a probe raises: the progress probe raises once
    the loop has been silent for longer than a pass may take (two resync periods plus
    two slowest API calls), so the kubelet restarts a wedged operator."""
    import time as _time
    from types import SimpleNamespace

    import pytest

    from kubenas.cluster.kube import REQUEST_TIMEOUT
    from kubenas.operator.handlers import App, Options, Stalled, progress_probe

    app = SimpleNamespace(options=Options(resync_seconds=30), progress_at=_time.monotonic())
    app.stalled_for = lambda now=None: App.stalled_for(app, now)
    assert progress_probe(memo={"app": app}) >= 0
    allowed = 2 * (30 + REQUEST_TIMEOUT[0] + REQUEST_TIMEOUT[1])
    assert app.stalled_for(app.progress_at + allowed) == 0
    app.progress_at -= allowed + 5
    with pytest.raises(Stalled, match="no progress for 5 s"):
        progress_probe(memo={"app": app})
    assert progress_probe(memo={}) == 0  # not started yet: nothing to judge


def _forbidden(causes):
    import json

    from kubernetes.client.exceptions import ApiException

    err = ApiException(status=403, reason="Forbidden")
    err.body = json.dumps({"kind": "Status", "reason": "Forbidden", "message": "unable to create new content in "
                           "namespace ns because it is being terminated",
                           "details": {"name": "exp-controller", "kind": "deployments", "causes": causes}})
    return err


def test_a_create_in_a_terminating_namespace_is_no_reconcile_error(caplog):
    """A namespace being deleted refuses new objects (lifecycle admission, cause
    NamespaceTerminating): the pass says so at INFO, with no traceback or error count;
    any other 403 is still an error."""
    from kubenas.operator import metrics

    def refused(err):
        raise err

    before = metrics.RECONCILE_ERRORS.labels("experiment")._value.get()
    with caplog.at_level("INFO", logger="kubenas"):
        handlers._guard("experiment", refused, _forbidden([{"reason": "NamespaceTerminating",
                                                           "message": "namespace ns is being terminated"}]))
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("namespace is being deleted" in r.getMessage() for r in caplog.records)
    assert metrics.RECONCILE_ERRORS.labels("experiment")._value.get() == before
    caplog.clear()
    with caplog.at_level("INFO", logger="kubenas"):
        handlers._guard("experiment", refused, _forbidden([]))
    assert [r for r in caplog.records if r.levelname == "ERROR"]
