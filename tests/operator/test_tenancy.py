"""Per-namespace bounds (kubenas.operator.tenancy): the decision, the slots under
concurrent reconciles, what the status says, and what the Book counts. The flood on a
real API server: tests/e2e/test_tenant_bounds.py."""
from __future__ import annotations

import threading

import pytest

from kubenas.api.policy import DEFAULTS, TenancyPolicy
from kubenas.operator import tenancy
from kubenas.operator.book import Book
from kubenas.operator.tenancy import EXPERIMENT, TRIAL, Slots, Wait, room


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.mark.parametrize("holders, name, limit, expected", [
    ((), "a", 1, True),
    (("x",), "a", 1, False),
    (("x",), "a", 2, True),
    (("x", "a"), "a", 2, True),    # it holds one already (a Job deleted by hand, say)
    (("x", "y", "z"), "a", 2, False),
    (("x", "y", "z"), "a", 0, True),  # 0: no bound
])
def test_room(holders, name, limit, expected):
    assert room(holders, name, limit) is expected


def test_policy_keys_default_and_zero_means_no_bound():
    assert TenancyPolicy.default().max_running_experiments == int(DEFAULTS["maxRunningExperimentsPerNamespace"]) > 0
    assert TenancyPolicy.default().max_trials_in_flight == int(DEFAULTS["maxTrialsInFlightPerNamespace"]) > 0
    policy = TenancyPolicy.from_data({"maxRunningExperimentsPerNamespace": "0", "maxTrialsInFlightPerNamespace": ""})
    assert (policy.max_running_experiments, policy.max_trials_in_flight) == (0, 0)
    assert tenancy.bound(TenancyPolicy.from_data({"maxTrialsInFlightPerNamespace": "7"}), TRIAL) == 7
    # A typo does not lift the bound: the shipped default holds.
    assert TenancyPolicy.from_data({"maxRunningExperimentsPerNamespace": "ten"}).max_running_experiments == \
        int(DEFAULTS["maxRunningExperimentsPerNamespace"])


def test_slots_count_grants_the_watch_has_not_shown_yet():
    observed: dict = {}
    clock = Clock()
    slots = Slots(lambda kind, ns: observed.get((kind, ns), set()), clock=clock, grant_seconds=60)
    assert slots.take(TRIAL, "alice", "t0", 2) is None
    assert slots.take(TRIAL, "alice", "t1", 2) is None
    wait = slots.take(TRIAL, "alice", "t2", 2)  # the watch shows neither t0 nor t1 yet
    assert wait == Wait(TRIAL, 2, 2) and "maxTrialsInFlightPerNamespace" in wait.message
    assert slots.take(TRIAL, "bob", "b0", 2) is None  # another namespace: its own slots
    assert slots.take(EXPERIMENT, "alice", "e0", 2) is None  # and its own kind
    observed[(TRIAL, "alice")] = {"t0", "t1"}  # now the watch shows them: counted once
    assert slots.take(TRIAL, "alice", "t2", 2) is not None
    observed[(TRIAL, "alice")] = {"t1"}  # t0 finished: room for one
    assert slots.take(TRIAL, "alice", "t2", 2) is None
    assert slots.take(TRIAL, "alice", "t3", 2) is not None
    assert slots.take(TRIAL, "alice", "t2", 2) is None  # asking again keeps its slot


def test_a_grant_the_watch_never_shows_is_forgotten():
    clock = Clock()
    slots = Slots(lambda kind, ns: set(), clock=clock, grant_seconds=60)
    assert slots.take(TRIAL, "alice", "t0", 1) is None  # its Job was refused, say
    assert slots.take(TRIAL, "alice", "t1", 1) is not None
    clock.now += 60
    assert slots.take(TRIAL, "alice", "t1", 1) is None
    slots.release(TRIAL, "alice", "t1")
    assert slots.take(TRIAL, "alice", "t2", 1) is None


def test_no_bound_takes_no_slot():
    slots = Slots(lambda kind, ns: {"a", "b", "c"})
    assert all(slots.take(TRIAL, "alice", f"t{i}", 0) is None for i in range(50))


def test_concurrent_takes_never_exceed_the_bound():
    slots = Slots(lambda kind, ns: set())
    granted, barrier = [], threading.Barrier(16)

    def take(i):
        barrier.wait()
        if slots.take(TRIAL, "alice", f"t{i}", 5) is None:
            granted.append(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 5


def test_waiting_statuses_name_the_key_and_clear_when_started():
    wait = Wait(EXPERIMENT, 3, 3)
    status = tenancy.waiting_experiment([], wait, "2026-01-01T00:00:00Z", 1)
    (condition,) = status["conditions"]
    assert status["phase"] == "Pending" and "maxRunningExperimentsPerNamespace" in status["message"]
    assert (condition["type"], condition["status"], condition["reason"]) == ("Admitted", "False", "NamespaceBound")
    started = tenancy.admitted(status["conditions"], "2026-01-01T00:01:00Z", 1)
    assert [(c["type"], c["status"]) for c in started] == [("Admitted", "True")]
    assert tenancy.admitted([], "2026-01-01T00:01:00Z", 1) == []  # never waited: no condition added

    trial_wait = Wait(TRIAL, 4, 4)
    changes = tenancy.waiting_trial({}, trial_wait)
    assert changes["phase"] == "Pending" and changes["reason"] == "NamespaceBound"
    assert "maxTrialsInFlightPerNamespace" in changes["message"] and "jobName" not in changes
    assert tenancy.waiting_trial(changes, trial_wait) == {}  # says so already: no write
    assert tenancy.no_longer_waiting(changes) == {"reason": None, "message": None}
    assert tenancy.no_longer_waiting({"reason": "PodNotCreated"}) == {}


def _trial(name, phase=None, job=False, experiment="e", namespace="alice"):
    status = {}
    if phase:
        status["phase"] = phase
    if job:
        status["jobName"] = name
    return {"metadata": {"name": name, "namespace": namespace},
            "spec": {"experiment": experiment, "index": int(name.rsplit("-", 1)[-1])}, "status": status}


def test_the_book_counts_trials_that_hold_a_job_and_running_experiments():
    book = Book()
    book.put_trial(_trial("e-0", "Pending", job=True))
    book.put_trial(_trial("e-1", "Running", job=True))
    book.put_trial(_trial("e-2"))                       # no Job yet
    book.put_trial(_trial("e-3", "Pending"))            # waiting for room: no Job
    book.put_trial(_trial("e-4", "Succeeded", job=True))
    book.put_trial(_trial("f-0", "Running", job=True, experiment="f", namespace="bob"))
    assert book.holders(TRIAL, "alice") == {"e-0", "e-1"} and book.holders(TRIAL, "bob") == {"f-0"}
    book.put_trial(_trial("e-0", "Failed", job=True))
    book.drop_trial("alice", "e", "e-1")
    assert book.holders(TRIAL, "alice") == set()
    book.put_trial(_trial("e-5", "Running", job=True))
    book.drop_experiment("alice", "e")
    assert book.holders(TRIAL, "alice") == set()

    for name, phase in (("a", "Running"), ("b", "Pending"), ("c", "Succeeded"), ("d", "Running")):
        book.put_experiment({"metadata": {"name": name, "namespace": "alice"}, "status": {"phase": phase}})
    book.put_experiment({"metadata": {"name": "x", "namespace": "bob"}, "status": {"phase": "Running"}})
    assert book.holders(EXPERIMENT, "alice") == {"a", "d"}


# ------------------------------------------------------------ in the reconciler (mocked API)

def _reconciler(holders: dict, bounds: dict):
    from unittest import mock

    from kubenas.operator.reconcile import Reconciler

    kube = mock.Mock()
    kube.get.side_effect = lambda kind, ns, name, *a, **k: {"data": bounds} if kind == "ConfigMap" else None
    kube.create.return_value = True
    kube.patch_custom_status.return_value = {}
    r = Reconciler(kube, manage_rbac=False)
    r.slots = Slots(lambda kind, ns: holders.get((kind, ns), set()))
    return r, kube


def _status_patches(kube) -> list[dict]:
    return [call.args[3]["status"] for call in kube.patch_custom_status.call_args_list]


def test_an_experiment_beyond_the_bound_waits_unjudged_and_a_refused_one_gives_its_slot_back():
    from datetime import datetime, timezone
    from unittest import mock

    from tests.operator.test_ownership import EXP, accepted_experiment

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    new = {**EXP, "spec": accepted_experiment()["spec"], "status": {}}
    r, kube = _reconciler({(EXPERIMENT, "ns"): {"a", "b"}}, {"maxRunningExperimentsPerNamespace": "2"})
    with mock.patch("kubenas.operator.reconcile.validate_experiment") as validate:
        r._experiment(new, [], now)
        validate.assert_not_called()  # a flood costs no validation
    (status,) = _status_patches(kube)
    assert status["phase"] == "Pending" and "acceptedSpec" not in status
    assert "maxRunningExperimentsPerNamespace" in status["message"]
    kube.create.assert_not_called()  # no controller Deployment

    # Room for one: it is judged; refused, its slot goes back to the next one.
    r, kube = _reconciler({(EXPERIMENT, "ns"): {"a"}}, {"maxRunningExperimentsPerNamespace": "2"})
    invalid = {**new, "spec": {**new["spec"], "budget": {"maxTrials": 0}}}
    r._experiment(invalid, [], now)
    assert _status_patches(kube)[-1]["phase"] == "Failed"
    assert r.slots.take(EXPERIMENT, "ns", "next", 2) is None


def test_a_trial_beyond_the_bound_gets_no_job_and_gets_one_when_room_frees():
    from tests.operator.test_ownership import trial_and_experiment

    trial, exp = trial_and_experiment()
    trial["status"] = {}
    holders = {(TRIAL, "ns"): {"other-0", "other-1"}}
    r, kube = _reconciler(holders, {"maxTrialsInFlightPerNamespace": "2"})
    decision = r.trial("ns", "web-0", [], body=trial, experiment=exp)
    assert not decision.create_job and decision.status["reason"] == "NamespaceBound"
    assert "jobName" not in decision.status and "maxTrialsInFlightPerNamespace" in decision.status["message"]
    assert not [c for c in kube.create.call_args_list if c.args[0] == "Job"]

    holders[(TRIAL, "ns")] = {"other-0"}  # one finished
    trial["status"] = dict(decision.status)
    decision = r.trial("ns", "web-0", [], body=trial, experiment=exp)
    assert decision.create_job and decision.status["jobName"] == "web-0"
    assert decision.status["reason"] is None and decision.status["message"] is None
    assert [c for c in kube.create.call_args_list if c.args[0] == "Job"]


def test_the_book_knows_who_waits_for_room():
    book = Book()
    waiting = {"conditions": [{"type": "Admitted", "status": "False", "reason": "NamespaceBound"}], "phase": "Pending"}
    book.put_experiment({"metadata": {"name": "w2", "namespace": "alice"}, "status": waiting})
    book.put_experiment({"metadata": {"name": "w1", "namespace": "alice"}, "status": waiting})
    book.put_experiment({"metadata": {"name": "r", "namespace": "alice"}, "status": {"phase": "Running", "conditions": [
        {"type": "Admitted", "status": "True"}]}})
    book.put_experiment({"metadata": {"name": "w", "namespace": "bob"}, "status": waiting})
    assert book.waiting_experiments("alice") == ["w1", "w2"]
