"""The per-experiment Event budget (operator/kubenas/operator/events.py)."""
from unittest import mock

from kubenas.operator.events import EventBudget, with_suppressed


def test_a_burst_then_one_per_interval_and_the_left_out_are_counted():
    now = [0.0]
    budget = EventBudget(burst=3, refill_seconds=10, clock=lambda: now[0])
    key = ("ns", "e")
    assert [budget.take(key) for _ in range(5)] == [0, 0, 0, None, None]
    assert budget.take(("ns", "other")) == 0          # each experiment has its own
    now[0] = 10.0
    assert budget.take(key) == 2 and budget.take(key) is None   # the next one says how many were left out
    now[0] = 1000.0
    assert [budget.take(key) for _ in range(4)] == [1, 0, 0, None]  # refilled up to the burst, no more
    assert with_suppressed("m", 0) == "m"
    assert with_suppressed("m", 2) == "m; 2 similar Events about this experiment's trials were not posted (rate limit)"


def test_the_reconciler_limits_trial_events_not_experiment_events():
    from kubenas.operator.reconcile import Reconciler

    kube = mock.Mock()
    r = Reconciler(kube)
    r.event_budget = EventBudget(burst=2, refill_seconds=3600)
    exp = {"kind": "NASExperiment", "metadata": {"name": "e", "namespace": "ns", "uid": "u"}, "spec": {}}
    trial = {"kind": "NASTrial", "metadata": {"name": "e-1", "namespace": "ns", "uid": "t"},
             "spec": {"experiment": "e", "index": 1}}
    with mock.patch("kubenas.operator.reconcile.post_event") as post:
        for _ in range(5):
            r.event(trial, "Warning", "Failed", "trial e-1 failed", "now")
            r.event(exp, "Warning", "TrialFailed", "trial e-1 Failed", "now")
        for _ in range(3):
            r.event(exp, "Normal", "Started", "running", "now")
    reasons = [c.args[3] for c in post.call_args_list]
    assert reasons == ["Failed", "TrialFailed", "Started", "Started", "Started"]
