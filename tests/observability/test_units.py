"""Pure parts: the trial state machine's retries and readiness, the metrics' transition tracking."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kubenas.operator import metrics
from kubenas.operator.manifests import job_for_trial
from kubenas.operator.trial_state import next_action as decide

NOW = "2024-05-01T10:00:00Z"


def trial(**status):
    return {"metadata": {"name": "u-1", "namespace": "ns", "resourceVersion": "3",
                         "creationTimestamp": "2024-05-01T09:58:00Z"},
            "spec": {"experiment": "unit", "index": 1}, "status": status}


def job(**status):
    return {"metadata": {"name": "u-1"}, "spec": {"backoffLimit": 3}, "status": status}


def test_a_replaced_pod_is_a_retry_with_an_event_not_a_failure():
    d = decide(trial(phase="Running", jobName="u-1", retries=0, startTime="t"), job(active=1, failed=1), now=NOW)
    assert d.status == {"retries": 1}
    assert d.event[:2] == ("Warning", "Retrying") and "retry 1 of 3" in d.event[2]
    again = decide(trial(phase="Running", jobName="u-1", retries=1, startTime="t"), job(active=1, failed=1), now=NOW)
    assert again.status == {} and again.event is None


def test_a_pod_waiting_for_a_node_keeps_the_trial_pending():
    d = decide(trial(phase="Pending", jobName="u-1", retries=0), job(active=1, ready=0), now=NOW)
    assert d.status == {} and d.event is None
    d = decide(trial(phase="Pending", jobName="u-1", retries=0), job(active=1, ready=1), now=NOW)
    assert d.status == {"phase": "Running", "startTime": NOW}


def test_evictions_count_against_max_retries_and_exit_codes_are_final():
    t = {"metadata": {"name": "u-1", "namespace": "ns", "uid": "x"},
         "spec": {"experiment": "unit", "index": 1}}
    from kubenas.api.defaults import with_defaults
    j = job_for_trial(t, with_defaults({"budget": {"maxRetries": 5}, "trial": {"template": {"queueName": "q"}}}))
    assert j["spec"]["backoffLimit"] == 5 and j["spec"]["suspend"] is True
    rules = j["spec"]["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[1] == {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}


def _value(name, sample, **labels):
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode())}
    return sum(s.value for s in fams[name].samples if s.name == sample
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_trial_transitions_are_counted_once():
    labels = {"namespace": "ns", "experiment": "unit"}
    before = _value("kubenas_trials_finished", "kubenas_trials_finished_total", outcome="Succeeded", **labels)
    waits = _value("kubenas_trial_queue_wait_seconds", "kubenas_trial_queue_wait_seconds_sum", **labels)
    metrics.observe_trial("ns", "u-1", trial(phase="Pending"))
    metrics.observe_trial("ns", "u-1", trial(phase="Running", startTime="2024-05-01T09:59:00Z"))
    metrics.observe_trial("ns", "u-1", trial(phase="Running", startTime="2024-05-01T09:59:00Z", retries=1))
    done = trial(phase="Succeeded", startTime="2024-05-01T09:59:00Z", completionTime="2024-05-01T10:09:00Z",
                 retries=1, conditions=[{"type": "Finished", "status": "True"}])
    metrics.observe_trial("ns", "u-1", done)
    metrics.observe_trial("ns", "u-1", done)
    assert _value("kubenas_trial_queue_wait_seconds", "kubenas_trial_queue_wait_seconds_sum", **labels) - waits == 60
    assert _value("kubenas_trials_finished", "kubenas_trials_finished_total", outcome="Succeeded", **labels) - before == 1
    assert _value("kubenas_trial_retries", "kubenas_trial_retries_total", **labels) >= 1
    # A trial first seen finished (by an earlier operator) is not counted again.
    metrics.observe_trial("ns", "u-2", {**done, "metadata": {"name": "u-2"}})
    assert _value("kubenas_trials_finished", "kubenas_trials_finished_total", outcome="Succeeded", **labels) - before == 1
    metrics.observe_trial("ns", "u-1", None, deleted=True)
    assert ("ns", "u-1") not in metrics.STATE.unfinished


def test_gpus_per_trial():
    assert metrics.gpus_per_trial({"trial": {"template": {"resources": {"limits": {"nvidia.com/gpu": 2}}}}}) == 2
    assert metrics.gpus_per_trial({"trial": {"template": {"resources": {"requests": {"cpu": "4"}}}}}) == 0


def test_a_deleted_experiments_series_go_with_it():
    from prometheus_client import generate_latest

    from kubenas.operator import metrics as m

    m.trial_job_created("ns-del", "gone")
    m.TRIALS_FINISHED.labels("ns-del", "gone", "Succeeded").inc()
    m.TRIAL_DURATION.labels("ns-del", "gone", "Failed").observe(3)
    m.QUEUE_WAIT.labels("ns-del", "gone").observe(1)
    m.trial_job_created("ns-del", "kept")
    assert 'experiment="gone"' in generate_latest(m.REGISTRY).decode()
    m.observe_experiment("ns-del", "gone", {"metadata": {"name": "gone"}}, deleted=True)
    text = generate_latest(m.REGISTRY).decode()
    assert 'experiment="gone"' not in text and 'experiment="kept"' in text
    m.observe_experiment("ns-del", "gone", None, deleted=True)  # twice: nothing left to remove, no error


def test_a_running_experiments_counters_start_at_zero():
    """So rate()/increase() see its first created, finished, failed or retried trial (a
    series that appears at 1 hides that step: tests/observability/alerts_test.yaml)."""
    body = {"metadata": {"name": "fresh"}, "spec": {"objective": {"goal": "maximize"}}, "status": {"phase": "Running"}}
    metrics.observe_experiment("ns-zero", "fresh", body)
    done = {"metadata": {"name": "old"}, "spec": {}, "status": {"phase": "Succeeded"}}
    metrics.observe_experiment("ns-zero", "old", done)
    try:
        found = {(s.name, s.labels.get("experiment"), s.labels.get("outcome")): s.value
                 for f in text_string_to_metric_families(generate_latest(metrics.REGISTRY).decode())
                 for s in f.samples if s.labels.get("namespace") == "ns-zero"}
        for name, outcome in (("kubenas_trials_created_total", None), ("kubenas_trial_retries_total", None),
                              ("kubenas_trial_queue_wait_seconds_count", None),
                              ("kubenas_trials_finished_total", "Succeeded"), ("kubenas_trials_finished_total", "Failed"),
                              ("kubenas_trials_finished_total", "EarlyStopped")):
            assert found[(name, "fresh", outcome)] == 0, (name, outcome)
        # a finished experiment seen at a restart adds no series
        assert not [k for k in found if k[1] == "old" and k[0].endswith(("_total", "_count"))], found
    finally:
        for name in ("fresh", "old"):
            metrics.observe_experiment("ns-zero", name, None, deleted=True)
