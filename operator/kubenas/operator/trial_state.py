"""The NASTrial state machine, as a pure function of the trial, its Job and its pods
(``next_action``: a ``TrialAction``).

::

                 Job created           a pod runs           trainer reports / Job Complete
    (none) ──────────────> Pending ──────────────> Running ───────────────────────> Succeeded
                             │  ^ suspended (Kueue)   │  │
                             │  └─────────────────────┘  ├── Job Failed / trainer reports Failed ──> Failed
                             │                           ├── Job Complete without a reward ─────────> Failed (NoReward)
                             └──────── (any) ────────────┴── median rule / experiment over ────────> EarlyStopped
    (none) ── a twin of the same experiment trained the same candidate to the same rung ──> Succeeded (Duplicate)
    (none) ── a Job of its name exists that is not its own (no ownerReference to its uid) ──> Failed (NameConflict)

Terminal phases (Succeeded, Failed, EarlyStopped) are sticky: whoever writes one first
(the trainer through the status subresource, or the operator) wins, and nothing moves
a trial out of it. The trainer's own report is preferred over what the Job says,
because it carries the precise reason (Diverged, InvalidArchitecture, ...). A repeated
candidate (``kubenas.experiment.twins``) never gets a Job: ``duplicate_action`` copies
its twin's result.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from kubenas.contract import (
    BACKOFF_LIMIT_EXCEEDED,
    DEADLINE_EXCEEDED,
    DUPLICATE,
    EARLY_STOPPED,
    EVICTED,
    EXIT_REASONS,
    EXPERIMENT_FINISHED,
    FAILED,
    JOB_COMPLETE,
    JOB_FAILED,
    JOB_FAILURE_TARGET,
    JOB_SUCCESS_CRITERIA_MET,
    JOB_SUSPENDED,
    NAME_CONFLICT,
    NO_REWARD,
    OOM_KILLED,
    PENDING,
    POD_FAILED,
    RUNNING,
    SUCCEEDED,
    finite_number,
)
from kubenas.contract import TRIAL_ACTIVE as ACTIVE
from kubenas.contract import TRIAL_TERMINAL as TERMINAL
from kubenas.contract.result import read_termination_message
from kubenas.contract.result import short_message as _short  # the one message cap, MESSAGE_LIMIT
from kubenas.experiment import answered_by

JOB_DONE = frozenset({JOB_COMPLETE, JOB_FAILED, JOB_SUCCESS_CRITERIA_MET})


@dataclass
class TrialAction:
    """What to do about one trial: a status patch (only changed fields), Job actions, an Event."""

    status: dict = field(default_factory=dict)
    create_job: bool = False
    delete_job: bool = False
    event: tuple[str, str, str] | None = None  # (type Normal|Warning, reason, message)

    @property
    def phase(self) -> str | None:
        return self.status.get("phase")


def _true_conditions(job: dict) -> dict:
    return {c.get("type"): c for c in ((job.get("status") or {}).get("conditions") or [])
            if c.get("status") == "True"}


def job_finished(job: dict) -> bool:
    """The Job has ended (Complete or Failed): its pods will not change any more."""
    return bool(_true_conditions(job).keys() & {JOB_COMPLETE, JOB_FAILED})


def _changed(current: dict, wanted: dict) -> dict:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


def pod_failure(pods: list[dict]) -> tuple[str | None, str]:
    """(reason, message) from the most recent failed pod of a Job: OOMKilled, Evicted,
    or the trainer's exit code, with its termination message."""
    failed = [p for p in pods if (p.get("status") or {}).get("phase") == POD_FAILED]
    failed.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "")
    for pod in reversed(failed):
        status = pod.get("status") or {}
        if status.get("reason") == EVICTED:
            return EVICTED, _short(status.get("message") or "the pod was evicted")
        for cs in status.get("containerStatuses") or []:
            terminated = (cs.get("state") or {}).get("terminated") or (cs.get("lastState") or {}).get("terminated")
            if not terminated:
                continue
            if terminated.get("reason") == OOM_KILLED:
                return OOM_KILLED, "the trainer container ran out of memory (OOMKilled); raise its memory limit"
            code = terminated.get("exitCode")
            detail = termination_detail(terminated.get("message"))
            reason = EXIT_REASONS.get(code)
            if reason:
                return reason, _short(detail or f"the trainer exited with code {code} ({reason})")
            if code:
                return None, _short(detail or f"the trainer exited with code {code}")
        if status.get("reason") or status.get("message"):
            return status.get("reason"), _short(status.get("message"))
    return None, ""


RESULT_FROM_TERMINATION_MESSAGE = "ResultFromTerminationMessage"


def reported_result(pods: list[dict]) -> float | None:
    """The reward a trainer left in its succeeded pod's termination message (the kubelet
    copies the pod's own /dev/termination-log, so it comes from this trial's pod only):
    the result when the trainer's final status write failed."""
    done = [p for p in pods if (p.get("status") or {}).get("phase") == SUCCEEDED]
    done.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
    for pod in done:
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            left = read_termination_message(((cs.get("state") or {}).get("terminated") or {}).get("message"))
            if left is not None and left["status"] == SUCCEEDED and left["reward"] is not None:
                return left["reward"]
    return None


def termination_detail(message: str | None) -> str:
    """The trainer writes a short JSON result to /dev/termination-log; show its message."""
    if not message:
        return ""
    try:
        data = json.loads(message)
    except ValueError:
        return message.strip()
    if isinstance(data, dict):
        parts = [str(data.get(k)) for k in ("status", "reason") if data.get(k)]
        text = " ".join(parts)
        if data.get("message"):
            text = f"{text}: {data['message']}" if text else str(data["message"])
        return text
    return message.strip()


# The Job controller's FailedCreate Events that will not go away by retrying the same pod:
# Pod Security admission, an admission webhook or policy refusing the pod, an invalid pod.
PERMANENT_POD_REFUSALS = ("violates PodSecurity", "denied the request", "denied request", "Invalid value")
POD_REFUSED = "PodRefused"
POD_NOT_CREATED = "PodNotCreated"


def pod_refusal(events: list[dict]) -> tuple[str, bool] | None:
    """The latest reason the Job controller gave for not creating the trial's pod (its
    FailedCreate Events), and whether it is permanent; None when there is none."""
    failed = [e for e in events if e.get("reason") == "FailedCreate" and e.get("message")]
    if not failed:
        return None
    latest = max(failed, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    message = str(latest["message"])
    return message, any(marker in message for marker in PERMANENT_POD_REFUSALS)


def waiting_for_pod(job: dict | None) -> bool:
    """A Job with no pod yet (none active, none finished, not suspended): the one case
    where the reason is only in the Job controller's Events."""
    if job is None or _true_conditions(job) or (job.get("spec") or {}).get("suspend"):
        return False
    job_status = job.get("status") or {}
    return not any(int(job_status.get(k) or 0) for k in ("active", "succeeded", "failed", "ready", "terminating"))


# What a duplicate takes from its twin's status: the result, not the twin's own run.
TWIN_RESULT = ("reward", "metrics", "history", "device")


def duplicate_action(trial: dict, twin: dict, *, now: str) -> TrialAction | None:
    """A trial that repeats ``twin`` (found by ``kubenas.experiment.twins.find_twin``) ends
    Succeeded with the twin's result and no Job; None when the twin has no result to give
    (it is gone, or not Succeeded any more): the trial is then trained as usual."""
    twin_status = twin.get("status") or {}
    if twin_status.get("phase") != SUCCEEDED or finite_number(twin_status.get("reward")) is None:
        return None
    name, twin_name = trial["metadata"]["name"], twin["metadata"]["name"]
    status = {"phase": SUCCEEDED, **answered_by(twin_name), "startTime": now, "completionTime": now}
    status.update({k: twin_status[k] for k in TWIN_RESULT if k in twin_status})
    return TrialAction(status=status, event=("Normal", DUPLICATE, f"trial {name} is the same candidate as "
                                                                  f"{twin_name}: its result is reused, no Job created"))


def next_action(trial: dict, job: dict | None, pods: list[dict] | None = None, *, now: str,
                experiment_over: bool = False, refusal: tuple[str, bool] | None = None) -> TrialAction:
    """The next step for one trial (pure). ``pods`` matter only once the Job failed, or
    completed without a reward in the trial's status (the termination-message fallback);
    ``refusal`` (:func:`pod_refusal`) only while the Job has no pod."""
    status = trial.get("status") or {}
    phase = status.get("phase")
    name = trial["metadata"]["name"]

    if phase in TERMINAL:
        # An early-stopped trial's Job must go (the trainer may still be running).
        return TrialAction(delete_job=phase == EARLY_STOPPED and job is not None and not _finished(job))

    if experiment_over:
        return TrialAction(
            status={"phase": EARLY_STOPPED, "reason": EXPERIMENT_FINISHED,
                    "message": "the experiment finished before this trial did", "completionTime": now},
            delete_job=job is not None,
            event=("Normal", EARLY_STOPPED, f"trial {name} stopped: the experiment finished"))

    if job is None:
        wanted = {"phase": phase or PENDING, "jobName": name}
        if not status.get("createdTime"):
            wanted["createdTime"] = now
        return TrialAction(status=_changed(status, wanted), create_job=True)

    job_status = job.get("status") or {}
    conditions = _true_conditions(job)
    retries = int(job_status.get("failed") or 0)

    if JOB_COMPLETE in conditions or JOB_SUCCESS_CRITERIA_MET in conditions:
        completion = job_status.get("completionTime") or now
        if status.get("reward") is not None:
            wanted = {"phase": SUCCEEDED, "completionTime": status.get("completionTime") or completion}
            return TrialAction(status=_changed(status, wanted))
        reward = reported_result(pods or [])
        if reward is not None:
            message = ("the trainer could not write its result to the trial's status; the reward is taken from "
                       "its pod's termination message")
            wanted = {"phase": SUCCEEDED, "reward": reward, "reason": RESULT_FROM_TERMINATION_MESSAGE,
                      "message": message, "completionTime": completion}
            return TrialAction(status=_changed(status, wanted),
                               event=("Warning", RESULT_FROM_TERMINATION_MESSAGE, f"trial {name}: {message}"))
        message = ("the trainer's Job succeeded but no reward was reported to the trial's status; check that "
                   "the trainer runs `kubenas-train --from-cluster` under a ServiceAccount allowed to patch "
                   "nastrials/status (kubenas-trainer)")
        wanted = {"phase": FAILED, "reason": NO_REWARD, "message": message, "completionTime": completion}
        return TrialAction(status=_changed(status, wanted), event=("Warning", NO_REWARD, f"trial {name}: {message}"))

    if JOB_FAILED in conditions or JOB_FAILURE_TARGET in conditions:
        cond = conditions.get(JOB_FAILED) or conditions[JOB_FAILURE_TARGET]
        job_reason = cond.get("reason") or "JobFailed"
        pod_reason, pod_message = pod_failure(pods or [])
        if job_reason == DEADLINE_EXCEEDED:
            timeout = (job.get("spec") or {}).get("activeDeadlineSeconds")
            reason = DEADLINE_EXCEEDED
            message = f"the trial ran longer than its timeout ({timeout}s, budget.trialTimeoutSeconds)"
        elif pod_reason:
            reason, message = pod_reason, pod_message
        else:
            reason = job_reason
            message = _short(cond.get("message") or pod_message or f"the Job failed ({job_reason})")
        if job_reason == BACKOFF_LIMIT_EXCEEDED and retries:
            message = _short(f"{message} (after {retries} failed pods)")
        wanted = {"phase": FAILED, "reason": reason, "message": message,
                  "completionTime": status.get("completionTime") or now, "retries": retries}
        return TrialAction(status=_changed(status, wanted), event=("Warning", FAILED, f"trial {name} failed: {reason}: {message}"))

    suspended = (job.get("spec") or {}).get("suspend") or JOB_SUSPENDED in conditions
    # A pod that failed for a retryable reason (evicted, preempted, node lost: counted
    # against backoffLimit = budget.maxRetries) was replaced: the trial goes on.
    retry_event = None
    if retries > int(status.get("retries") or 0):
        limit = (job.get("spec") or {}).get("backoffLimit")
        retry_event = ("Warning", "Retrying",
                       f"trial {name}: its pod failed (evicted, preempted or lost with its node) and was replaced; "
                       f"retry {retries}" + (f" of {limit}" if limit is not None else ""))
    active = int(job_status.get("active") or 0)
    # `ready` (Kubernetes 1.24+) counts pods that run; `active` also counts pods still
    # waiting for a node (a GPU pool scaling up). Without `ready`, `active` it is.
    running = int(job_status["ready"] or 0) > 0 if "ready" in job_status else active > 0
    # A pod exists now: the explanation of why there was none goes.
    explained = {"reason": None, "message": None} if status.get("reason") == POD_NOT_CREATED else {}
    if running and not suspended:
        wanted = {"phase": RUNNING, "jobName": job["metadata"]["name"], "retries": retries, **explained}
        if not status.get("startTime"):
            wanted["startTime"] = now if "ready" in job_status else (job_status.get("startTime") or now)
        return TrialAction(status=_changed(status, wanted), event=retry_event)
    if refusal is not None and waiting_for_pod(job):
        message, permanent = refusal
        message = _short(f"the trial's pod cannot be created: {message}")
        if permanent:
            wanted = {"phase": FAILED, "reason": POD_REFUSED, "message": message, "completionTime": now}
            return TrialAction(status=_changed(status, wanted), delete_job=True,
                               event=("Warning", POD_REFUSED, f"trial {name}: {message}"))
        # Transient (an exhausted quota, say): still Pending, and the status says why.
        wanted = {"phase": PENDING, "jobName": job["metadata"]["name"], "reason": POD_NOT_CREATED,
                  "message": message}
        return TrialAction(status=_changed(status, wanted))
    wanted = {"phase": phase if phase == RUNNING and not suspended else PENDING,
              "jobName": job["metadata"]["name"], "retries": retries, **explained}
    if suspended:
        wanted["message"] = "the Job is suspended (waiting for Kueue admission)"
    return TrialAction(status=_changed(status, wanted), event=retry_event)


def _finished(job: dict) -> bool:
    return bool(JOB_DONE & set(_true_conditions(job)))


def name_conflict_action(trial: dict, *, now: str) -> TrialAction:
    """The trial's Job name is taken by a Job that is not the trial's (no ownerReference
    to its uid): the trial ends NameConflict, and that Job is neither adopted, read nor
    deleted (no ``delete_job``)."""
    name, meta = trial["metadata"]["name"], trial["metadata"]
    message = (f"Job {name} already exists in namespace {meta.get('namespace')} and is not this trial's (no "
               f"ownerReference to NASTrial {name} uid {meta.get('uid')}); kubenas neither adopts, reads nor "
               f"deletes it, and runs no Job for this trial: rename the experiment, or have whoever owns that Job "
               f"remove it")
    return TrialAction(status={"phase": FAILED, "reason": NAME_CONFLICT, "message": _short(message),
                               "completionTime": now},
                       event=("Warning", NAME_CONFLICT, f"trial {name}: {message}"))


def early_stop_action(name: str, now: str, reason_detail: str) -> TrialAction:
    return TrialAction(
        status={"phase": EARLY_STOPPED, "reason": EARLY_STOPPED, "message": reason_detail, "completionTime": now},
        delete_job=True,
        event=("Normal", EARLY_STOPPED, f"trial {name} stopped early: {reason_detail}"))
