"""The trial contract: the names and numbers the control plane and the trainer share.
Owns phases, reasons, exit codes, settings and their limits, the op registry and the genotype; imports nothing from kubenas, and no torch.

Everything here is what docs/formats.md documents. The operator, the controller, the
local runner and the trainer (``kubenas_trainer``) all import these names, and
tests/contract checks the CRDs of crds/ against them, so a phase, a limit or an op
name is written down exactly once.
"""
from __future__ import annotations

import math
import numbers

# -------------------------------------------------------------------- API coordinates

GROUP = "kubenas.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
EXPERIMENT_KIND = "NASExperiment"
EXPERIMENT_PLURAL = "nasexperiments"
TRIAL_KIND = "NASTrial"
TRIAL_PLURAL = "nastrials"

# ---------------------------------------------------------------------------- phases

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
EARLY_STOPPED = "EarlyStopped"
STOPPED = "Stopped"  # an experiment's deadline passed

TRIAL_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, EARLY_STOPPED)
TRIAL_TERMINAL = frozenset({SUCCEEDED, FAILED, EARLY_STOPPED})
TRIAL_ACTIVE = frozenset({PENDING, RUNNING})
# Early-stopped trials carry their reward at the epoch they were stopped: an honest, if
# pessimistic, signal a strategy learns from (the median rule stops only trials that
# trail the others). Failed trials teach nothing but "seen".
LEARNED_PHASES = frozenset({SUCCEEDED, EARLY_STOPPED})
# Only trials that trained to the end are ranked (leaderboard, best trial, target).
RANKED_PHASES = frozenset({SUCCEEDED})

EXPERIMENT_PHASES = (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)
EXPERIMENT_TERMINAL = frozenset({SUCCEEDED, FAILED, STOPPED})

# --------------------------------------------------------------------------- reasons

# Why the trainer failed a trial (its result's ``reason``), with its exit code.
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

EXIT_CODES = {
    SUCCEEDED: 0,
    EARLY_STOPPED: 0,
    INTERNAL_ERROR: 1,
    INVALID_ARCHITECTURE: 2,
    INVALID_TRIAL: 2,
    DIVERGED: 3,
    OUT_OF_MEMORY: 4,
    TIMEOUT: 5,
    DATA_ERROR: 6,
    CONSTRAINT_VIOLATED: 7,
}
TRAINER_REASONS = tuple(r for r in EXIT_CODES if r not in (SUCCEEDED, EARLY_STOPPED))
# Exit code -> the reason the operator names when only the code is known (2: the
# first of InvalidArchitecture / InvalidTrial).
EXIT_REASONS = {code: reason for reason, code in reversed(EXIT_CODES.items()) if code}
# Trainer exit codes that are final answers: a Job never retries them.
FINAL_EXIT_CODES = tuple(sorted(EXIT_REASONS))

# Why the control plane ended or stopped a trial.
NO_REWARD = "NoReward"                      # the Job succeeded, no reward was reported
DEADLINE_EXCEEDED = "DeadlineExceeded"      # the Job's activeDeadlineSeconds passed
OOM_KILLED = "OOMKilled"
EVICTED = "Evicted"
EXPERIMENT_FINISHED = "ExperimentFinished"  # stopped because the experiment ended
STOPPED_EARLY = EARLY_STOPPED               # stopped by the median rule
DUPLICATE = "Duplicate"                     # the result of a twin reused, not retrained (kubenas.experiment.twins)
STOPPED_BY_RUNNER = STOPPED                 # local mode: the runner ended the process
# An object kubenas would make, adopt or delete under its deterministic name (the controller
# Deployment <experiment>-controller, a trial's Job <trial>) exists and is not this
# experiment's or trial's (no ownerReference to its uid): kubenas never touches it, and the
# experiment or trial ends with this reason.
NAME_CONFLICT = "NameConflict"

# Words of Kubernetes' own that the operator reads (Job conditions, pod phase and reason).
JOB_COMPLETE = "Complete"
JOB_SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
JOB_FAILED = FAILED
JOB_FAILURE_TARGET = "FailureTarget"
JOB_SUSPENDED = "Suspended"
POD_FAILED = FAILED
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"

# Why an experiment ended.
MAX_TRIALS_REACHED = "MaxTrialsReached"
TARGET_REACHED = "TargetReached"
TOO_MANY_FAILED_TRIALS = "TooManyFailedTrials"

# ---------------------------------------------------------------------- objectives

METRIC_GOALS = {"accuracy": "maximize", "loss": "minimize"}
METRICS = tuple(METRIC_GOALS)
GOALS = ("maximize", "minimize")
TASKS = ("image-classification", "audio-classification", "sequence-classification")
# Metrics a penalty may name (measured by the trainer for every trial).
PENALTY_METRICS = ("parameters", "macs", "latencyMs")
MAX_PENALTIES = 4

# Per-epoch history kept in a trial's status (and read by the median rule).
HISTORY_LIMIT = 1000


def finite_number(value) -> float | None:
    """``value`` as a float if it is a finite number (not a bool), else None.

    How every reader of a reward or metric sanitises what a status or a file holds:
    a diverged trainer's NaN or garbage in a status must count as "no reward".
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None
