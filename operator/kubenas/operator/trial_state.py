"""The NASTrial state machine: what the operator does about one trial, as a pure
function of what it observed (``decide(TrialObservation) -> TrialAction``).

The trial reconcile (``kubenas.operator.reconcile``) runs in three phases, as a
controller-runtime reconciler does: *observe* (one read phase: the watched trial, Job and
experiment, and only what a watch does not carry: the Job's pods and Events, a twin's
fresh status; ``needs_pods``, ``needs_events`` and ``twin_candidate`` say when), *decide*
(``decide``, pure: nothing here reads or writes), *apply* (write the difference: the
status patch conditional on the version decided from, the Job, the Event).

The states, in the order ``trial_situation`` tests them (``TrialState``), and the action
of each (``TRANSITIONS``, the table docs/architecture.md shows)::

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
its twin's result. Every reason written here is declared in ``kubenas.contract.reasons``.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from kubenas.cluster.objects import FOREIGN, OURS, STALE, owned_by, ownership
from kubenas.contract import (
    DEADLINE_EXCEEDED,
    EARLY_STOPPED,
    EVICTED,
    EXIT_REASONS,
    EXPERIMENT_TERMINAL,
    FAILED,
    JOB_COMPLETE,
    JOB_FAILED,
    JOB_FAILURE_TARGET,
    JOB_SUCCESS_CRITERIA_MET,
    JOB_SUSPENDED,
    PENDING,
    POD_FAILED,
    RUNNING,
    SUCCEEDED,
    TRIAL_KIND,
    finite_number,
)
from kubenas.contract import TRIAL_TERMINAL as TERMINAL
from kubenas.contract.reasons import (BACKOFF_LIMIT_EXCEEDED, DUPLICATE, EXPERIMENT_FINISHED, JOB_FAILED_REASON,
                                      NAME_CONFLICT, NO_REWARD, NOT_OWNED, OOM_KILLED, POD_NOT_CREATED, POD_REFUSED,
                                      RESULT_FROM_TERMINATION_MESSAGE, STOPPED_EARLY)
from kubenas.contract.result import read_termination_message
from kubenas.contract.result import short_message as _short  # the one message cap, MESSAGE_LIMIT
from kubenas.early_stopping import median_stop
from kubenas.experiment import TrialRecord, acknowledged, answered_by, elapsed_seconds, find_twin, from_trial_object
from kubenas.experiment.plan import plan_for

POD_GRACE_SECONDS = 10  # a Job without a pod for this long: look for the Job controller's reason


@dataclass
class TrialAction:
    """What to do about one trial: a status patch (only changed fields), Job actions, an
    Event, and whether to record a terminal phase the trainer wrote (``acknowledge``)."""

    status: dict = field(default_factory=dict)
    create_job: bool = False
    delete_job: bool = False
    event: tuple[str, str, str] | None = None  # (type Normal|Warning, reason, message)
    acknowledge: bool = False

    @property
    def phase(self) -> str | None:
        return self.status.get("phase")


# ------------------------------------------------------------- a Job's conditions

# The conditions that say how a Job ended. SuccessCriteriaMet and FailureTarget come
# first (Kubernetes 1.31+: the outcome is decided while the last pods still terminate),
# Complete and Failed once they are gone; either says the trial's outcome.
JOB_SUCCEEDED_CONDITIONS = frozenset({JOB_COMPLETE, JOB_SUCCESS_CRITERIA_MET})
JOB_FAILED_CONDITIONS = frozenset({JOB_FAILED, JOB_FAILURE_TARGET})


def _true_conditions(job: dict) -> dict:
    return {c.get("type"): c for c in ((job.get("status") or {}).get("conditions") or [])
            if c.get("status") == "True"}


def job_outcome(job: dict | None) -> str | None:
    """How the Job ended: SUCCEEDED, FAILED, or None while it has not. The one reading
    of "the Job has finished" (the handlers, the observation and the decision use it)."""
    if job is None:
        return None
    conditions = _true_conditions(job).keys()
    if conditions & JOB_SUCCEEDED_CONDITIONS:
        return SUCCEEDED
    if conditions & JOB_FAILED_CONDITIONS:
        return FAILED
    return None


def job_finished(job: dict | None) -> bool:
    """The Job has ended (:func:`job_outcome`): nothing it does will change the trial."""
    return job_outcome(job) is not None


def _changed(current: dict, wanted: dict) -> dict:
    return {k: v for k, v in wanted.items() if current.get(k) != v}


# ------------------------------------------------------ what the pods and Events say

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


# ------------------------------------------------------------------- observation

@dataclass(frozen=True)
class TrialObservation:
    """Everything the decision about one trial may need, gathered before it is made.

    ``trial``, ``job`` and ``experiment`` are as the watches delivered them (or read when
    no watch had); ``pods`` (None: not read), ``refusal`` (:func:`pod_refusal`) and
    ``twin`` (a repeated candidate's twin, read fresh) only when the observe phase found
    them needed (:func:`needs_pods`, :func:`needs_events`, :func:`twin_candidate`).
    """

    trial: dict
    experiment: dict
    spec: dict                       # the experiment's accepted spec, defaults filled
    job: dict | None = None
    pods: tuple | None = None
    refusal: tuple | None = None
    twin: dict | None = None
    peers: tuple = ()                # the experiment's TrialRecords (the Book's)
    now: str = ""

    @property
    def status(self) -> dict:
        return self.trial.get("status") or {}

    @property
    def experiment_over(self) -> bool:
        return (self.experiment.get("status") or {}).get("phase") in EXPERIMENT_TERMINAL

    @property
    def job_owner(self) -> str | None:
        """OURS, STALE or FOREIGN for the Job of the trial's name; None without one."""
        if self.job is None:
            return None
        return ownership(self.job, {**self.trial, "kind": self.trial.get("kind", TRIAL_KIND)})


def _in_flight(trial: dict, experiment: dict) -> bool:
    return ((trial.get("status") or {}).get("phase") not in TERMINAL
            and (experiment.get("status") or {}).get("phase") not in EXPERIMENT_TERMINAL)


def needs_pods(trial: dict, experiment: dict, job: dict | None) -> bool:
    """Whether the decision reads the Job's pods: only once the Job failed (why), or
    completed with no reward in the trial's status (the termination-message fallback)."""
    if job is None or not _in_flight(trial, experiment):
        return False
    outcome = job_outcome(job)
    return outcome == FAILED or (outcome == SUCCEEDED and (trial.get("status") or {}).get("reward") is None)


def needs_events(trial: dict, experiment: dict, job: dict | None, now_dt) -> bool:
    """Whether the decision reads the Job's Events: it has had no pod for
    POD_GRACE_SECONDS, and only the Job controller's Events say why (Pod Security, a quota)."""
    return (job is not None and _in_flight(trial, experiment) and waiting_for_pod(job)
            and elapsed_seconds((job.get("metadata") or {}).get("creationTimestamp"), now_dt) >= POD_GRACE_SECONDS)


def twin_candidate(trial: dict, experiment: dict, job: dict | None, peers) -> TrialRecord | None:
    """The twin whose fresh status the decision reads: a trial without a Job that repeats
    a candidate its experiment trained (kubenas.experiment.twins)."""
    if job is not None or not _in_flight(trial, experiment):
        return None
    return find_twin(from_trial_object(trial, details=False), list(peers))


# ---------------------------------------------------------------------- states

class TrialState(enum.Enum):
    """What the observation shows, tested in this order (:func:`trial_situation`)."""

    NOT_OWNED = "the trial names an experiment that does not own it"
    ENDED = "a terminal phase (sticky)"
    STALE_JOB = "the Job of its name is an earlier namesake's, being removed"
    FOREIGN_JOB = "the Job of its name is not the trial's"
    EXPERIMENT_OVER = "its experiment has ended"
    REPEAT = "no Job, and a twin trained the same candidate"
    NO_JOB = "no Job"
    JOB_SUCCEEDED = "the Job completed"
    JOB_FAILED = "the Job failed"
    RUNNING = "a pod is ready, the Job is not suspended"
    POD_REFUSED = "no pod, and the Job controller says why"
    WAITING = "the pod is not running yet, or the Job is suspended"


# state -> (the phase written, the action), as docs/architecture.md shows it.
TRANSITIONS = {
    TrialState.NOT_OWNED: ("Failed (NotOwnedByExperiment), once", "no Job, counts for nothing"),
    TrialState.ENDED: ("unchanged", "acknowledge once (condition Finished); EarlyStopped: delete its running Job"),
    TrialState.STALE_JOB: ("unchanged", "nothing: the garbage collector removes that Job"),
    TrialState.FOREIGN_JOB: ("Failed (NameConflict)", "that Job is never adopted, read or deleted"),
    TrialState.EXPERIMENT_OVER: ("EarlyStopped (ExperimentFinished)", "delete the Job"),
    TrialState.REPEAT: ("Succeeded (Duplicate)", "the twin's result, no Job"),
    TrialState.NO_JOB: ("Pending", "create the Job (or wait for room in the namespace: NamespaceBound)"),
    TrialState.JOB_SUCCEEDED: ("Succeeded, or Succeeded (ResultFromTerminationMessage), or Failed (NoReward)", "-"),
    TrialState.JOB_FAILED: ("Failed (DeadlineExceeded, OOMKilled, Evicted, the trainer's exit reason, "
                            "BackoffLimitExceeded)", "-"),
    TrialState.RUNNING: ("Running; EarlyStopped (EarlyStopped) by the median rule", "Event Retrying after a "
                         "replaced pod; the median rule deletes the Job"),
    TrialState.POD_REFUSED: ("Failed (PodRefused) when permanent, else Pending (PodNotCreated)",
                             "a permanent refusal deletes the Job"),
    TrialState.WAITING: ("Pending (a Running trial stays Running unless suspended)", "-"),
}


def trial_situation(obs: TrialObservation) -> TrialState:
    """The state of the trial in ``obs`` (pure)."""
    if not owned_by(obs.trial, obs.experiment):
        return TrialState.NOT_OWNED
    if obs.status.get("phase") in TERMINAL:
        return TrialState.ENDED
    if obs.job_owner == STALE:
        return TrialState.STALE_JOB
    if obs.job_owner == FOREIGN:
        return TrialState.FOREIGN_JOB
    return job_situation(obs.trial, obs.job, obs.refusal, obs.experiment_over, obs.twin is not None)


def job_situation(trial: dict, job: dict | None, refusal, experiment_over: bool = False,
                  twin: bool = False) -> TrialState:
    """The state of an owned, unfinished trial with its own Job (or none)."""
    if experiment_over:
        return TrialState.EXPERIMENT_OVER
    if job is None:
        return TrialState.REPEAT if twin else TrialState.NO_JOB
    outcome = job_outcome(job)
    if outcome == SUCCEEDED:
        return TrialState.JOB_SUCCEEDED
    if outcome == FAILED:
        return TrialState.JOB_FAILED
    if _pod_running(job) and not _suspended(job):
        return TrialState.RUNNING
    if refusal is not None and waiting_for_pod(job):
        return TrialState.POD_REFUSED
    return TrialState.WAITING


def _suspended(job: dict) -> bool:
    return bool((job.get("spec") or {}).get("suspend")) or JOB_SUSPENDED in _true_conditions(job)


def _pod_running(job: dict) -> bool:
    # `ready` (Kubernetes 1.24+) counts pods that run; `active` also counts pods still
    # waiting for a node (a GPU pool scaling up). Without `ready`, `active` it is.
    job_status = job.get("status") or {}
    if "ready" in job_status:
        return int(job_status["ready"] or 0) > 0
    return int(job_status.get("active") or 0) > 0


# --------------------------------------------------------------------- decision

def decide(obs: TrialObservation) -> TrialAction:
    """The one decision about a trial (pure): what ``obs`` calls for."""
    state = trial_situation(obs)
    if state is TrialState.NOT_OWNED:
        return not_owned_action(obs.trial, now=obs.now)
    if state is TrialState.ENDED:
        ended = next_action(obs.trial, obs.job if obs.job_owner == OURS else None, now=obs.now)
        return TrialAction(delete_job=ended.delete_job, acknowledge=not acknowledged(obs.status))
    if state is TrialState.STALE_JOB:
        return TrialAction()
    if state is TrialState.FOREIGN_JOB:
        return name_conflict_action(obs.trial, now=obs.now)
    if state is TrialState.REPEAT:
        repeat = repeat_action(obs)
        if repeat is not None:
            return repeat
    decision = next_action(obs.trial, obs.job, list(obs.pods or ()), now=obs.now,
                           experiment_over=obs.experiment_over, refusal=obs.refusal)
    if (not decision.status and not decision.create_job and obs.status.get("phase") == RUNNING
            and obs.job is not None):
        return median_stop_action(obs) or decision
    return decision


def next_action(trial: dict, job: dict | None, pods: list[dict] | None = None, *, now: str,
                experiment_over: bool = False, refusal: tuple[str, bool] | None = None) -> TrialAction:
    """The next step for one trial given its own Job (pure). ``pods`` matter only once
    the Job failed, or completed without a reward in the trial's status (the
    termination-message fallback); ``refusal`` (:func:`pod_refusal`) only while the Job
    has no pod."""
    status = trial.get("status") or {}
    if status.get("phase") in TERMINAL:
        # An early-stopped trial's Job must go (the trainer may still be running).
        return TrialAction(delete_job=status.get("phase") == EARLY_STOPPED and job is not None
                           and not job_finished(job))
    state = job_situation(trial, job, refusal, experiment_over)
    return _STEPS[state](trial, job, pods or [], refusal, now)


def _experiment_over(trial, job, pods, refusal, now) -> TrialAction:
    name = trial["metadata"]["name"]
    return TrialAction(
        status={"phase": EARLY_STOPPED, "reason": EXPERIMENT_FINISHED,
                "message": "the experiment finished before this trial did", "completionTime": now},
        delete_job=job is not None,
        event=("Normal", EARLY_STOPPED, f"trial {name} stopped: the experiment finished"))


def _no_job(trial, job, pods, refusal, now) -> TrialAction:
    status = trial.get("status") or {}
    wanted = {"phase": status.get("phase") or PENDING, "jobName": trial["metadata"]["name"]}
    if not status.get("createdTime"):
        wanted["createdTime"] = now
    return TrialAction(status=_changed(status, wanted), create_job=True)


def _job_succeeded(trial, job, pods, refusal, now) -> TrialAction:
    status, name = trial.get("status") or {}, trial["metadata"]["name"]
    completion = (job.get("status") or {}).get("completionTime") or now
    if status.get("reward") is not None:
        wanted = {"phase": SUCCEEDED, "completionTime": status.get("completionTime") or completion}
        return TrialAction(status=_changed(status, wanted))
    reward = reported_result(pods)
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


def _job_failed(trial, job, pods, refusal, now) -> TrialAction:
    status, name = trial.get("status") or {}, trial["metadata"]["name"]
    conditions = _true_conditions(job)
    retries = int((job.get("status") or {}).get("failed") or 0)
    cond = conditions.get(JOB_FAILED) or conditions[JOB_FAILURE_TARGET]
    job_reason = cond.get("reason") or JOB_FAILED_REASON
    pod_reason, pod_message = pod_failure(pods)
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
    return TrialAction(status=_changed(status, wanted),
                       event=("Warning", FAILED, f"trial {name} failed: {reason}: {message}"))


def _retry_event(trial: dict, job: dict) -> tuple | None:
    """A pod that failed for a retryable reason (evicted, preempted, node lost: counted
    against backoffLimit = budget.maxRetries) was replaced: the trial goes on, and says so."""
    retries = int((job.get("status") or {}).get("failed") or 0)
    if retries <= int((trial.get("status") or {}).get("retries") or 0):
        return None
    limit = (job.get("spec") or {}).get("backoffLimit")
    return ("Warning", "Retrying",
            f"trial {trial['metadata']['name']}: its pod failed (evicted, preempted or lost with its node) and was "
            f"replaced; retry {retries}" + (f" of {limit}" if limit is not None else ""))


def _explained(status: dict) -> dict:
    """A pod exists now: the explanation of why there was none goes."""
    return {"reason": None, "message": None} if status.get("reason") == POD_NOT_CREATED else {}


def _running(trial, job, pods, refusal, now) -> TrialAction:
    status, job_status = trial.get("status") or {}, job.get("status") or {}
    wanted = {"phase": RUNNING, "jobName": job["metadata"]["name"], "retries": int(job_status.get("failed") or 0),
              **_explained(status)}
    if not status.get("startTime"):
        wanted["startTime"] = now if "ready" in job_status else (job_status.get("startTime") or now)
    return TrialAction(status=_changed(status, wanted), event=_retry_event(trial, job))


def _pod_refused(trial, job, pods, refusal, now) -> TrialAction:
    status, name = trial.get("status") or {}, trial["metadata"]["name"]
    message, permanent = refusal
    message = _short(f"the trial's pod cannot be created: {message}")
    if permanent:
        wanted = {"phase": FAILED, "reason": POD_REFUSED, "message": message, "completionTime": now}
        return TrialAction(status=_changed(status, wanted), delete_job=True,
                           event=("Warning", POD_REFUSED, f"trial {name}: {message}"))
    # Transient (an exhausted quota, say): still Pending, and the status says why.
    wanted = {"phase": PENDING, "jobName": job["metadata"]["name"], "reason": POD_NOT_CREATED, "message": message}
    return TrialAction(status=_changed(status, wanted))


def _waiting(trial, job, pods, refusal, now) -> TrialAction:
    status = trial.get("status") or {}
    suspended = _suspended(job)
    wanted = {"phase": status.get("phase") if status.get("phase") == RUNNING and not suspended else PENDING,
              "jobName": job["metadata"]["name"], "retries": int((job.get("status") or {}).get("failed") or 0),
              **_explained(status)}
    if suspended:
        wanted["message"] = "the Job is suspended (waiting for Kueue admission)"
    return TrialAction(status=_changed(status, wanted), event=_retry_event(trial, job))


# The step of each state an owned, unfinished trial can be in (next_action).
_STEPS = {
    TrialState.EXPERIMENT_OVER: _experiment_over,
    TrialState.NO_JOB: _no_job,
    TrialState.REPEAT: _no_job,  # a twin without a result to give: trained as usual
    TrialState.JOB_SUCCEEDED: _job_succeeded,
    TrialState.JOB_FAILED: _job_failed,
    TrialState.RUNNING: _running,
    TrialState.POD_REFUSED: _pod_refused,
    TrialState.WAITING: _waiting,
}


# ------------------------------------------------------------- the other actions

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


def repeat_action(obs: TrialObservation) -> TrialAction | None:
    """A repeat's result from the twin read fresh (the Book may be a moment behind): only
    a twin that is the experiment's own and still holds the candidate it trained."""
    twin = obs.twin
    if twin is None or not owned_by(twin, obs.experiment):
        return None
    candidate = find_twin(from_trial_object(obs.trial, details=False), list(obs.peers))
    if candidate is None or from_trial_object(twin, details=False).hash != candidate.hash:
        return None
    return duplicate_action(obs.trial, twin, now=obs.now)


def not_owned_action(trial: dict, *, now: str) -> TrialAction:
    """Not made by its experiment's controller (whose trials carry its owner reference,
    uid included): run nothing for it, say why once."""
    if (trial.get("status") or {}).get("reason") == NOT_OWNED:
        return TrialAction()
    name, experiment = trial["metadata"]["name"], (trial.get("spec") or {}).get("experiment")
    return TrialAction(
        status={"phase": FAILED, "reason": NOT_OWNED, "completionTime": now,
                "message": f"the trial names experiment {experiment} but is not owned by it "
                           f"(ownerReferences uid); only its controller creates its trials"},
        event=("Warning", NOT_OWNED, f"trial {name} is not owned by experiment {experiment}; no Job is created for it"))


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


def median_stop_action(obs: TrialObservation) -> TrialAction | None:
    """The median stopping rule (spec.earlyStopping, type median) on a running trial,
    where the plan lets it stop one (a re-evaluation's full run is what its mean needs)."""
    spec, trial = obs.spec, obs.trial
    stopping = spec["earlyStopping"]
    if stopping["type"] != "median" or not plan_for(spec).may_stop_early(from_trial_object(trial, details=False)):
        return None
    metric, goal = spec["objective"]["metric"], spec["objective"]["goal"]
    history = obs.status.get("history") or []
    completed = [p.history(metric) for p in obs.peers if p.phase == SUCCEEDED and p.name != trial["metadata"]["name"]]
    if not median_stop(history, completed, metric, goal, int(stopping["minTrials"]), int(stopping["startEpoch"])):
        return None
    detail = (f"after epoch {len(history)} its best {metric} is worse than the median of "
              f"{len(completed)} completed trials (median stopping rule)")
    return early_stop_action(trial["metadata"]["name"], obs.now, detail)


def early_stop_action(name: str, now: str, reason_detail: str) -> TrialAction:
    return TrialAction(
        status={"phase": EARLY_STOPPED, "reason": STOPPED_EARLY, "message": reason_detail, "completionTime": now},
        delete_job=True,
        event=("Normal", EARLY_STOPPED, f"trial {name} stopped early: {reason_detail}"))
