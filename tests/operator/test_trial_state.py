"""The trial state machine (pure)."""
from __future__ import annotations

import json

from kubenas.operator.trial_state import next_action as decide
from kubenas.operator.trial_state import pod_failure, termination_detail

NOW = "2024-05-01T10:00:00Z"


def trial(**status):
    return {"metadata": {"name": "e-1", "namespace": "ns", "resourceVersion": "3"},
            "spec": {"experiment": "e", "index": 1}, "status": status}


def job(*conditions, active=0, failed=0, suspend=False, start="2024-05-01T09:59:00Z"):
    return {"metadata": {"name": "e-1"}, "spec": {"activeDeadlineSeconds": 600, "suspend": suspend},
            "status": {"active": active, "failed": failed, "startTime": start,
                       "conditions": [{"type": t, "status": "True", "reason": r, "message": m}
                                      for t, r, m in conditions]}}


def test_no_job_creates_one_and_goes_pending():
    d = decide(trial(), None, now=NOW)
    assert d.create_job and d.status == {"phase": "Pending", "jobName": "e-1", "createdTime": NOW}


def test_a_vanished_job_is_recreated_for_an_unfinished_trial():
    d = decide(trial(phase="Running", jobName="e-1", createdTime="x"), None, now=NOW)
    assert d.create_job and d.status == {}


def test_active_job_makes_running_once():
    d = decide(trial(phase="Pending", jobName="e-1", retries=0), job(active=1), now=NOW)
    assert d.status == {"phase": "Running", "startTime": "2024-05-01T09:59:00Z"}
    assert d.event is None  # no Event for a routine start
    again = decide(trial(phase="Running", jobName="e-1", retries=0, startTime="t"), job(active=1), now=NOW)
    assert again.status == {} and again.event is None


def test_suspended_job_waits_for_kueue():
    d = decide(trial(phase="Pending", jobName="e-1", retries=0), job(suspend=True), now=NOW)
    assert "Kueue" in d.status["message"]


def test_complete_with_reward_succeeds_without_reward_fails():
    ok = decide(trial(phase="Running", reward=0.9), job(("Complete", None, None)), now=NOW)
    assert ok.status["phase"] == "Succeeded"
    bad = decide(trial(phase="Running"), job(("Complete", None, None)), now=NOW)
    assert bad.status["phase"] == "Failed" and bad.status["reason"] == "NoReward"
    assert "nastrials/status" in bad.status["message"]


def test_terminal_phases_are_sticky():
    for phase in ("Succeeded", "Failed"):
        d = decide(trial(phase=phase), job(("Failed", "BackoffLimitExceeded", "")), now=NOW)
        assert d.status == {} and not d.create_job and not d.delete_job
    stopped = decide(trial(phase="EarlyStopped"), job(active=1), now=NOW)
    assert stopped.delete_job and stopped.status == {}


def test_deadline_exceeded():
    d = decide(trial(phase="Running"), job(("Failed", "DeadlineExceeded", "Job was active longer")), now=NOW)
    assert d.status["reason"] == "DeadlineExceeded" and "600s" in d.status["message"]


def pod(phase="Failed", reason=None, exit_code=None, term_reason="Error", message=None, created="2024"):
    status = {"phase": phase}
    if reason:
        status["reason"] = reason
        status["message"] = "The node was low on resource: memory."
    if exit_code is not None:
        status["containerStatuses"] = [{"name": "trainer", "state": {"terminated": {
            "exitCode": exit_code, "reason": term_reason, "message": message}}}]
    return {"metadata": {"creationTimestamp": created}, "status": status}


def test_failure_reasons_from_pods():
    oom = decide(trial(phase="Running"), job(("Failed", "BackoffLimitExceeded", ""), failed=4),
                 [pod(exit_code=137, term_reason="OOMKilled")], now=NOW)
    assert oom.status["reason"] == "OOMKilled" and oom.status["retries"] == 4
    assert "after 4 failed pods" in oom.status["message"]
    evicted = decide(trial(phase="Running"), job(("Failed", "BackoffLimitExceeded", "")), [pod(reason="Evicted")],
                     now=NOW)
    assert evicted.status["reason"] == "Evicted"
    term = json.dumps({"status": "Failed", "reason": "Diverged", "message": "loss is nan"})
    diverged = decide(trial(phase="Running"), job(("Failed", "PodFailurePolicy", "")),
                      [pod(exit_code=3, message=term)], now=NOW)
    assert diverged.status["reason"] == "Diverged" and "loss is nan" in diverged.status["message"]
    unknown = decide(trial(phase="Running"), job(("Failed", "BackoffLimitExceeded", "too many")), [], now=NOW)
    assert unknown.status["reason"] == "BackoffLimitExceeded"


def test_latest_failed_pod_wins():
    reason, _ = pod_failure([pod(exit_code=137, term_reason="OOMKilled", created="2024-01-02"),
                             pod(reason="Evicted", created="2024-01-01")])
    assert reason == "OOMKilled"


def test_experiment_over_stops_unfinished_trials():
    d = decide(trial(phase="Running"), job(active=1), now=NOW, experiment_over=True)
    assert d.status["phase"] == "EarlyStopped" and d.status["reason"] == "ExperimentFinished" and d.delete_job


def test_termination_detail():
    assert termination_detail('{"status":"Failed","reason":"DataError","message":"no file"}') == \
        "Failed DataError: no file"
    assert termination_detail("plain text\n") == "plain text"
    assert termination_detail(None) == ""


def test_a_failed_final_status_write_still_yields_the_reward_from_the_termination_message():
    """The trainer wrote its result to /dev/termination-log, then could not write the
    trial's status: the Job completed, and the operator takes the reward from the pod."""
    done = pod(phase="Succeeded", exit_code=0, term_reason="Completed",
               message=json.dumps({"status": "Succeeded", "reward": 0.9312}))
    d = decide(trial(phase="Running"), job(("Complete", None, None)), [done], now=NOW)
    assert d.status["phase"] == "Succeeded" and d.status["reward"] == 0.9312
    assert d.status["reason"] == "ResultFromTerminationMessage" and d.event[0] == "Warning"
    # Not from a failed pod, not a non-finite or missing reward, not a Failed result.
    for bad in (pod(phase="Failed", exit_code=0, message=json.dumps({"status": "Succeeded", "reward": 0.9})),
                pod(phase="Succeeded", exit_code=0, message=json.dumps({"status": "Succeeded", "reward": "nan"})),
                pod(phase="Succeeded", exit_code=0, message=json.dumps({"status": "Failed", "reward": 0.9})),
                pod(phase="Succeeded", exit_code=0, message="not json")):
        d = decide(trial(phase="Running"), job(("Complete", None, None)), [bad], now=NOW)
        assert d.status["phase"] == "Failed" and d.status["reason"] == "NoReward", bad


def test_a_pod_the_cluster_refuses_for_good_ends_the_trial_and_its_job():
    """No pod, and the Job controller's FailedCreate Event says Pod Security refused it:
    retrying would never help, so the trial ends Failed with the reason and the Job goes."""
    from kubenas.operator.trial_state import pod_refusal

    psa = ('pods "e-1-abcde" is forbidden: violates PodSecurity "restricted:latest": restricted volume types '
           '(volume "h" uses restricted volume type "hostPath")')
    events = [{"reason": "SuccessfulCreate", "message": "x", "lastTimestamp": "2024-05-01T09:59:01Z"},
              {"reason": "FailedCreate", "message": "Error creating: " + psa, "lastTimestamp": "2024-05-01T09:59:30Z"}]
    refusal = pod_refusal(events)
    assert refusal == ("Error creating: " + psa, True)
    d = decide(trial(phase="Pending", jobName="e-1", retries=0), job(), now=NOW, refusal=refusal)
    assert d.status["phase"] == "Failed" and d.status["reason"] == "PodRefused" and d.delete_job
    assert "violates PodSecurity" in d.status["message"] and d.event[1] == "PodRefused"
    # A pod exists (waiting for a node, say): the Events are history, not the state.
    d = decide(trial(phase="Pending", jobName="e-1", retries=0), job(active=1), now=NOW, refusal=refusal)
    assert d.status.get("phase") != "Failed"


def test_a_transient_pod_refusal_keeps_the_trial_pending_and_says_why():
    from kubenas.operator.trial_state import pod_refusal

    quota = 'Error creating: pods "e-1-x" is forbidden: exceeded quota: gpus, requested: nvidia.com/gpu=1'
    refusal = pod_refusal([{"reason": "FailedCreate", "message": quota}])
    assert refusal == (quota, False)
    d = decide(trial(phase="Pending", jobName="e-1", retries=0), job(), now=NOW, refusal=refusal)
    assert d.status == {"reason": "PodNotCreated", "message": "the trial's pod cannot be created: " + quota}
    assert not d.delete_job and d.event is None
    # Once a pod exists the explanation goes.
    later = decide(trial(phase="Pending", jobName="e-1", retries=0, reason="PodNotCreated", message="m"),
                   job(active=1), now=NOW)
    assert later.status == {"phase": "Running", "startTime": "2024-05-01T09:59:00Z", "reason": None, "message": None}
    assert pod_refusal([]) is None and pod_refusal([{"reason": "SuccessfulCreate", "message": "ok"}]) is None


# ------------------------------------------------------- "a Job has finished", once

import pytest  # noqa: E402

from kubenas.operator import trial_state  # noqa: E402


@pytest.mark.parametrize("condition,outcome", [("Complete", "Succeeded"), ("SuccessCriteriaMet", "Succeeded"),
                                               ("Failed", "Failed"), ("FailureTarget", "Failed"),
                                               ("Suspended", None), (None, None)])
def test_one_reading_of_a_finished_job(condition, outcome):
    """Kubernetes 1.31+ sets SuccessCriteriaMet / FailureTarget when the outcome is decided
    and Complete / Failed once the pods are gone: each says the trial's outcome, and the
    handlers, the observation and the decision read them through job_outcome alone."""
    body = job((condition, None, None)) if condition else job(active=1)
    assert trial_state.job_outcome(body) == outcome
    assert trial_state.job_finished(body) is (outcome is not None)
    assert trial_state.JOB_SUCCEEDED_CONDITIONS == {"Complete", "SuccessCriteriaMet"}
    assert trial_state.JOB_FAILED_CONDITIONS == {"Failed", "FailureTarget"}
    false = job(active=1)
    false["status"]["conditions"] = [{"type": condition or "Complete", "status": "False"}]
    assert trial_state.job_outcome(false) is None
    from kubenas.operator.handlers import job_needs_reconcile
    assert job_needs_reconcile(None, body) is (outcome is None)  # a listed finished Job costs nothing
    # An early-stopped trial's Job is deleted only while it has not finished.
    assert decide(trial(phase="EarlyStopped"), body, now=NOW).delete_job is (outcome is None)


# ----------------------------------------------------- observe, decide (pure), apply

OWNER = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "name": "e", "uid": "exp-uid"}


def observation(status=None, job_body=None, **fields):
    from kubenas.api.defaults import with_defaults
    body = trial(**(status or {}))
    body["metadata"].update(uid="trial-uid", ownerReferences=[OWNER])
    exp = {"metadata": {"name": "e", "namespace": "ns", "uid": "exp-uid"}, "status": {"phase": "Running"}}
    if job_body is not None:
        job_body["metadata"]["ownerReferences"] = [{"kind": "NASTrial", "name": "e-1", "uid": "trial-uid"}]
    spec = with_defaults({"objective": {"metric": "accuracy"}, "budget": {"maxTrials": 4}})
    return trial_state.TrialObservation(body, exp, spec, job=job_body, now=NOW, **fields)


def test_every_state_has_a_transition_and_a_step():
    assert set(trial_state.TRANSITIONS) == set(trial_state.TrialState)
    owned_unfinished = set(trial_state.TrialState) - {trial_state.TrialState.NOT_OWNED, trial_state.TrialState.ENDED,
                                                      trial_state.TrialState.STALE_JOB,
                                                      trial_state.TrialState.FOREIGN_JOB}
    assert set(trial_state._STEPS) == owned_unfinished


def test_the_situation_of_each_observation():
    S, situation = trial_state.TrialState, trial_state.trial_situation
    assert situation(observation()) is S.NO_JOB
    assert situation(observation(job_body=job(active=1))) is S.RUNNING  # no `ready` (before 1.24): `active` it is
    not_ready = job(active=1)
    not_ready["status"]["ready"] = 0  # a pod waiting for a node
    assert situation(observation(job_body=not_ready)) is S.WAITING
    assert situation(observation(job_body=job(active=1, suspend=True))) is S.WAITING
    foreign = observation(job_body=job(active=1))
    foreign.job["metadata"]["ownerReferences"] = [{"kind": "NASTrial", "name": "e-1", "uid": "other"}]
    assert situation(foreign) is S.FOREIGN_JOB
    assert situation(observation({"phase": "Succeeded"})) is S.ENDED
    not_owned = observation()
    not_owned.trial["metadata"]["ownerReferences"] = []
    assert situation(not_owned) is S.NOT_OWNED
    assert trial_state.decide(not_owned).status["reason"] == "NotOwnedByExperiment"
    assert situation(observation(job_body=job(("Complete", None, None)))) is S.JOB_SUCCEEDED
    assert situation(observation(job_body=job(("FailureTarget", "PodFailurePolicy", "x")))) is S.JOB_FAILED
    assert situation(observation(job_body=job(), refusal=("quota", False))) is S.POD_REFUSED


def test_the_decision_acknowledges_a_terminal_phase_once():
    fresh = trial_state.decide(observation({"phase": "Failed"}))
    assert fresh.acknowledge and not fresh.status and not fresh.delete_job
    done = trial_state.decide(observation({"phase": "Failed", "conditions": [{"type": "Finished", "status": "True"}]}))
    assert not done.acknowledge
