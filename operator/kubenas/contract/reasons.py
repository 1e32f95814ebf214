"""Every reason kubenas writes, once, with who may write it.

A trial's ``status.reason`` (and a trials.jsonl row's ``reason``), an experiment's ending
reason (its ``Complete`` or ``Valid`` condition, ``kubenas run``'s summary) and a served
model's ``status.deployment.reason`` are one of the names below; ``kubenas.contract``
re-exports them, and tests/contract/test_reasons.py fails the build when product code
writes a reason that is not declared here, or declares one outside.

Producers: the trainer (``kubenas-train``/``kubenas-trial``: the reason of its result,
whose exit code is in ``kubenas.contract.EXIT_TABLE``), the operator (its trial and
experiment reconcilers), the local runner (``kubenas run``), and Kubernetes (a Job
condition's or a pod's own reason, which the operator copies: besides the ones named
here, a reason the kubelet or the Job controller invents later is copied as it is).
"""
from __future__ import annotations

from dataclasses import dataclass

TRAINER = "trainer"
OPERATOR = "operator"
RUNNER = "runner"
KUBERNETES = "kubernetes"


@dataclass(frozen=True)
class Reason:
    name: str
    producers: frozenset
    meaning: str


# ------------------------------------------------------------- the trainer's results
INVALID_ARCHITECTURE = "InvalidArchitecture"
INVALID_TRIAL = "InvalidTrial"
DIVERGED = "Diverged"
OUT_OF_MEMORY = "OutOfMemory"
TIMEOUT = "Timeout"
DATA_ERROR = "DataError"
INTERNAL_ERROR = "InternalError"
# The candidate broke a hard limit the trainer checks before training (spec.constraints.
# maxLatencyMs): nothing was trained. It uses a unit of maxTrials, never of maxFailedTrials.
CONSTRAINT_VIOLATED = "ConstraintViolated"
# The experiment's spec asks for what the place its trials run lacks, whatever the
# candidate (training.device: cuda without a CUDA device): every trial would fail the
# same way, so the experiment ends Failed with this reason at the first such trial.
UNSATISFIABLE = "Unsatisfiable"
# The trainer could not reach the API server (after retrying) to read its trial: nothing
# was run; the Job starts a new pod (budget.maxRetries).
API_UNAVAILABLE = "ApiUnavailable"
NO_REWARD = "NoReward"  # ended without a reward (no objective metric reported)

# ------------------------------------------------ the control plane's, about a trial
DEADLINE_EXCEEDED = "DeadlineExceeded"      # the Job's activeDeadlineSeconds passed (also an experiment's)
OOM_KILLED = "OOMKilled"
EVICTED = "Evicted"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
EXPERIMENT_FINISHED = "ExperimentFinished"  # stopped because the experiment ended
STOPPED_EARLY = "EarlyStopped"              # stopped by the median rule
DUPLICATE = "Duplicate"                     # the result of a twin reused, not retrained (kubenas.experiment.twins)
STOPPED_BY_RUNNER = "Stopped"               # local mode: the runner ended the process
# An object kubenas would make, adopt or delete under its deterministic name (the controller
# Deployment <experiment>-controller, a trial's Job <trial>, a serving object) exists and is
# not this experiment's or trial's (no ownerReference to its uid): kubenas never touches it,
# and the experiment or trial ends with this reason.
NAME_CONFLICT = "NameConflict"
NOT_OWNED = "NotOwnedByExperiment"
JOB_REFUSED = "JobRefused"
POD_REFUSED = "PodRefused"
POD_NOT_CREATED = "PodNotCreated"
NAMESPACE_BOUND = "NamespaceBound"
RESULT_FROM_TERMINATION_MESSAGE = "ResultFromTerminationMessage"
JOB_FAILED_REASON = "JobFailed"  # a Failed Job condition that names no reason

# --------------------------------------------------------- why an experiment ended
MAX_TRIALS_REACHED = "MaxTrialsReached"
TARGET_REACHED = "TargetReached"
TOO_MANY_FAILED_TRIALS = "TooManyFailedTrials"
# The budget is spent and no trial succeeded: the experiment has no result, so it Failed.
NO_TRIAL_SUCCEEDED = "NoTrialSucceeded"
INVALID_SPEC = "InvalidSpec"
POLICY_DENIED = "PolicyDenied"
INTERRUPTED = "Interrupted"  # local mode: the run was interrupted (Ctrl-C); rerunning resumes it

# ---------------------------------------------- a served model (status.deployment)
DEPLOYED = "Deployed"
DEPLOY_WAITING = "Waiting"
DEPLOY_REFUSED = "DeployRefused"

_T, _O, _R, _K = TRAINER, OPERATOR, RUNNER, KUBERNETES


def _reason(name: str, *producers: str, meaning: str) -> Reason:
    return Reason(name, frozenset(producers), meaning)


TRIAL_REASONS = (
    _reason(INVALID_ARCHITECTURE, _T, meaning="the architecture cannot be built or trained"),
    _reason(INVALID_TRIAL, _T, meaning="a setting of the trial is invalid (the message names the field)"),
    _reason(DIVERGED, _T, meaning="the loss or the objective metric became NaN or infinite"),
    _reason(OUT_OF_MEMORY, _T, meaning="out of memory (CUDA or host)"),
    _reason(TIMEOUT, _T, _R, meaning="the trial's timeout passed (the trainer's clock, or the local runner's)"),
    _reason(DATA_ERROR, _T, meaning="the dataset is missing or malformed"),
    _reason(INTERNAL_ERROR, _T, _R, meaning="a bug in training, or a process that ended without a result"),
    _reason(CONSTRAINT_VIOLATED, _T, meaning="slower than constraints.maxLatencyMs before training"),
    _reason(UNSATISFIABLE, _T, meaning="the spec asks for what the node lacks, whatever the candidate"),
    _reason(API_UNAVAILABLE, _T, meaning="the trainer could not read its trial from the API server"),
    _reason(NO_REWARD, _T, _O, meaning="ended without a reward (the trainer's, or the Job completed without one)"),
    _reason(DEADLINE_EXCEEDED, _K, meaning="the Job's activeDeadlineSeconds (budget.trialTimeoutSeconds) passed"),
    _reason(OOM_KILLED, _K, meaning="the kernel killed the trainer container for memory"),
    _reason(EVICTED, _K, meaning="the kubelet evicted the pod"),
    _reason(BACKOFF_LIMIT_EXCEEDED, _K, meaning="more pods failed than budget.maxRetries allows"),
    _reason(JOB_FAILED_REASON, _O, meaning="the Job failed and named no reason"),
    _reason(EXPERIMENT_FINISHED, _O, meaning="stopped: the experiment ended first"),
    _reason(STOPPED_EARLY, _O, _R, meaning="stopped by the median stopping rule"),
    _reason(DUPLICATE, _O, _R, meaning="the same candidate as duplicateOf: its result reused, nothing trained"),
    _reason(STOPPED_BY_RUNNER, _R, meaning="local mode: the runner ended the process"),
    _reason(NAME_CONFLICT, _O, meaning="a Job of the trial's name exists and is not the trial's"),
    _reason(NOT_OWNED, _O, meaning="the trial names an experiment that does not own it: no Job is run"),
    _reason(JOB_REFUSED, _O, meaning="the API server refused the trial's Job for good (400, 422)"),
    _reason(POD_REFUSED, _O, meaning="the trial's pod is refused for good (Pod Security, an admission policy)"),
    _reason(POD_NOT_CREATED, _O, meaning="Pending: the Job controller cannot create the pod yet (a quota)"),
    _reason(NAMESPACE_BOUND, _O, meaning="Pending: the namespace's bound on trials in flight is reached"),
    _reason(RESULT_FROM_TERMINATION_MESSAGE, _O,
            meaning="Succeeded: the reward read from the pod's termination message (the trainer's write failed)"),
)

EXPERIMENT_REASONS = (
    _reason(MAX_TRIALS_REACHED, _O, _R, meaning="budget.maxTrials trials finished"),
    _reason(TARGET_REACHED, _O, _R, meaning="objective.target reached"),
    _reason(TOO_MANY_FAILED_TRIALS, _O, _R, meaning="more than budget.maxFailedTrials trials failed"),
    _reason(NO_TRIAL_SUCCEEDED, _O, _R, meaning="the budget is spent and no trial succeeded"),
    _reason(UNSATISFIABLE, _O, _R, meaning="a trial failed Unsatisfiable: every trial would"),
    _reason(DEADLINE_EXCEEDED, _O, _R, meaning="budget.deadlineSeconds passed (phase Stopped)"),
    _reason(NAME_CONFLICT, _O, meaning="the controller Deployment's name is taken by another object"),
    _reason(INVALID_SPEC, _O, meaning="the spec is invalid (condition Valid=False)"),
    _reason(POLICY_DENIED, _O, meaning="the cluster admin's policy refuses the spec (condition Valid=False)"),
    _reason(INTERRUPTED, _R, meaning="local mode: the run was interrupted; rerunning the command resumes it"),
)

DEPLOYMENT_REASONS = (
    _reason(DEPLOYED, _O, meaning="the serving object serves the chosen trial"),
    _reason(DEPLOY_WAITING, _O, meaning="no trial to serve yet"),
    _reason(NAME_CONFLICT, _O, meaning="the serving object's name is taken by another object"),
    _reason(DEPLOY_REFUSED, _O, meaning="the API server or the serving object's owner refused it"),
)

TRIAL_REASON_NAMES = frozenset(r.name for r in TRIAL_REASONS)
EXPERIMENT_REASON_NAMES = frozenset(r.name for r in EXPERIMENT_REASONS)
DEPLOYMENT_REASON_NAMES = frozenset(r.name for r in DEPLOYMENT_REASONS)


def produced_by(producer: str, reasons=TRIAL_REASONS) -> frozenset:
    """The names of ``reasons`` that ``producer`` may write."""
    return frozenset(r.name for r in reasons if producer in r.producers)
