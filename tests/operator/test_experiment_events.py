"""Experiment watch events: which are reconciled at once, which are folded later.

kopf hands an object's events to its handler one at a time. A handler that read and
wrote the experiment for every event of a running experiment made an event of each
write, and at a few trials/s the experiment's queue in kopf grew without end (each
queued event a full body: ~2 KiB of operator memory per trial, bench/RESULTS.md,
"Scale"). Status-only news of a running experiment is now folded by the resync loop,
debounced; everything else is still reconciled at once.
"""
from __future__ import annotations

import pytest

from kubenas.operator import handlers
from kubenas.operator.book import Book


def experiment(phase="Running", generation=1, observed=1, name="exp"):
    status = {} if phase is None else {"phase": phase, "observedGeneration": observed}
    return {"metadata": {"name": name, "namespace": "ns", "generation": generation}, "spec": {}, "status": status}


class RecordingReconciler:
    def __init__(self):
        self.calls = []

    def experiment(self, namespace, name, summaries):
        self.calls.append((namespace, name))

    def forget(self, kind, namespace, name):
        pass


class FakeApp:
    def __init__(self):
        self.reconciler = RecordingReconciler()
        self.book = Book()
        self.marked = []

    def mark(self, namespace, name):
        self.marked.append((namespace, name))


def send(app, body, event_type="MODIFIED"):
    handlers.experiment_event(type=event_type, namespace="ns", name=body["metadata"]["name"], body=body,
                              memo={"app": app})


@pytest.mark.parametrize("body, at_once", [
    (experiment(), False),                                   # status news of a running experiment
    (experiment(None, observed=None), True),                  # new: judged at once
    (experiment("Pending"), True),                           # waiting for room, or being judged
    (experiment(generation=2, observed=1), True),            # its spec changed
    (experiment(observed=None), True),                       # no observedGeneration: nothing known
    (experiment("Succeeded"), True), (experiment("Failed"), True), (experiment("Stopped"), True),
], ids=["running", "new", "pending", "spec-changed", "unobserved", "succeeded", "failed", "stopped"])
def test_which_events_are_reconciled_at_once(body, at_once):
    assert handlers.experiment_needs_reconcile(body) is at_once


def test_status_news_of_a_running_experiment_is_folded_once_later_not_reconciled_per_event():
    app = FakeApp()
    for observed_trials in range(50):  # the operator's own status writes, as the watch returns them
        body = experiment()
        body["status"]["trials"] = {"succeeded": observed_trials}
        send(app, body)
    assert app.reconciler.calls == []                   # no read and no write per event
    assert set(app.marked) == {("ns", "exp")}            # the resync loop folds it (a set: once)
    assert app.book.experiment("ns", "exp")["status"]["trials"] == {"succeeded": 49}  # the Book has the latest


@pytest.mark.parametrize("body", [experiment(None, observed=None), experiment(generation=3, observed=2),
                                  experiment("Succeeded")], ids=["new", "spec-changed", "ended"])
def test_new_changed_and_ended_experiments_are_reconciled_at_once(body):
    app = FakeApp()
    send(app, body)
    assert app.reconciler.calls == [("ns", "exp")]


def test_a_deleted_experiment_leaves_the_book_without_a_reconcile():
    app = FakeApp()
    send(app, experiment())
    send(app, experiment(), event_type="DELETED")
    assert app.reconciler.calls == []
    assert app.book.experiment("ns", "exp") is None


def test_the_job_watch_asks_the_api_server_for_trainer_jobs_only():
    import kopf
    from kopf._cogs.structs.references import Resource

    settings = kopf.OperatorSettings()
    handlers.select_on_the_server(settings)

    def selector(group, version, plural, kind):
        resource = Resource(group=group, version=version, plural=plural, kind=kind, namespaced=True)
        return sorted(settings.watching.label_selectors.collect(resource))

    assert selector("batch", "v1", "jobs", "Job") == [
        "app.kubernetes.io/component=trainer,app.kubernetes.io/managed-by=kubenas-operator"]
    # the same labels the Job handler filters on, so no trainer Job is left out
    assert selector("batch", "v1", "jobs", "Job") == [handlers.label_selector(handlers.TRAINER_JOBS["labels"])]
    assert selector("kubenas.io", "v1alpha1", "nastrials", "NASTrial") == []  # trials and experiments: all
