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

    def trial(self, namespace, name, peers=None, body=None, experiment=None):
        self.calls.append({"name": name, "body": body, "experiment": experiment, "peers": peers})


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
    assert call["name"] == "exp-0" and call["body"] is None and call["experiment"] is EXPERIMENT


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
