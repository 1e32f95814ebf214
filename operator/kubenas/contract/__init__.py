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
from dataclasses import dataclass

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
EARLY_STOPPED = "EarlyStopped"  # a phase, and the reason of a trial the median rule stopped
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

# Every reason, with who may write it: kubenas.contract.reasons (re-exported here).
from .reasons import (  # noqa: E402,F401
    API_UNAVAILABLE,
    BACKOFF_LIMIT_EXCEEDED,
    CONSTRAINT_VIOLATED,
    DATA_ERROR,
    DEADLINE_EXCEEDED,
    DIVERGED,
    DUPLICATE,
    EVICTED,
    EXPERIMENT_FINISHED,
    INTERNAL_ERROR,
    INVALID_ARCHITECTURE,
    INVALID_TRIAL,
    MAX_TRIALS_REACHED,
    NAME_CONFLICT,
    NO_REWARD,
    NO_TRIAL_SUCCEEDED,
    OOM_KILLED,
    OUT_OF_MEMORY,
    STOPPED_BY_RUNNER,
    STOPPED_EARLY,
    TARGET_REACHED,
    TIMEOUT,
    TOO_MANY_FAILED_TRIALS,
    UNSATISFIABLE,
)

# ------------------------------------------------------------------------ exit codes

# Who may end a trial's process with a code.
BY_TRAINER = "trainer"  # kubenas-train and kubenas-trial (the wrapper): the code of their result
BY_PROGRAM = "program"  # a user program (spec.trial.command) under kubenas-trial, to say why it failed


@dataclass(frozen=True)
class ExitCode:
    """One exit code of a trial's container or process (docs/trainer.md, docs/byo.md).

    ``reasons``: the result's reason(s) it stands for (0: the statuses); the first is the
    one the operator names when it knows only the code (a result the trainer could not
    write). ``producers``: who may exit with it. A user program's code never becomes the
    container's: the wrapper maps the codes a program may use (``PROGRAM_EXIT_REASONS``)
    to a result, every other code to InternalError, and exits with that result's code.
    ``final``: a Job never retries it (its podFailurePolicy FailJob); a code that is not
    final is counted against backoffLimit (budget.maxRetries), as a killed pod is.
    """

    code: int
    reasons: tuple
    producers: frozenset
    final: bool
    meaning: str


_BOTH = frozenset({BY_TRAINER, BY_PROGRAM})
_TRAINER = frozenset({BY_TRAINER})
EXIT_TABLE = (
    ExitCode(0, (SUCCEEDED, EARLY_STOPPED), _BOTH, False,
             "trained (or stopped early when asked); a program's 0 is judged by what it reported"),
    ExitCode(1, (INTERNAL_ERROR,), _TRAINER, True,
             "a bug in training (the message names the exception), or a user program that exited with a code "
             "not its own to use or was killed; never a transient API error (retried inside the trainer)"),
    ExitCode(2, (INVALID_ARCHITECTURE, INVALID_TRIAL), _BOTH, True,
             "the architecture or a setting is invalid (the message names the field)"),
    ExitCode(3, (DIVERGED,), _BOTH, True, "the loss or the objective metric became NaN or infinite"),
    ExitCode(4, (OUT_OF_MEMORY,), _BOTH, True, "out of memory (CUDA or host)"),
    ExitCode(5, (TIMEOUT,), _BOTH, True, "the trial's timeout passed"),
    ExitCode(6, (DATA_ERROR,), _BOTH, True, "the dataset is missing or malformed"),
    ExitCode(7, (CONSTRAINT_VIOLATED,), _TRAINER, True,
             "the untrained network is slower than constraints.maxLatencyMs: nothing was trained"),
    ExitCode(8, (NO_REWARD,), _TRAINER, True, "a user program exited 0 but reported no objective metric"),
    ExitCode(9, (UNSATISFIABLE,), _TRAINER, True,
             "the spec asks for what this node lacks, whatever the candidate: every trial would fail the same way"),
    ExitCode(75, (API_UNAVAILABLE,), _TRAINER, False,
             "the API server could not be reached to read the trial (after retries): the pod is retried"),
)
EXIT_CODES = {reason: entry.code for entry in EXIT_TABLE for reason in entry.reasons}
# Every reason a trainer's (or the wrapper's) result may carry.
TRAINER_REASONS = tuple(reason for entry in EXIT_TABLE if entry.code for reason in entry.reasons)
# Exit code -> the reason the operator names when only the code is known.
EXIT_REASONS = {entry.code: entry.reasons[0] for entry in EXIT_TABLE if entry.code}
# The codes a user program may exit with to say why it failed (any other: InternalError).
PROGRAM_EXIT_REASONS = {entry.code: entry.reasons[0] for entry in EXIT_TABLE
                        if entry.code and BY_PROGRAM in entry.producers}
# Exit codes that are final answers: a Job never retries them (its podFailurePolicy).
FINAL_EXIT_CODES = tuple(entry.code for entry in EXIT_TABLE if entry.final)

# Words of Kubernetes' own that the operator reads (Job conditions, pod phase and reason).
JOB_COMPLETE = "Complete"
JOB_SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
JOB_FAILED = FAILED
JOB_FAILURE_TARGET = "FailureTarget"
JOB_SUSPENDED = "Suspended"
POD_FAILED = FAILED

# ---------------------------------------------------------------------- objectives

METRIC_GOALS = {"accuracy": "maximize", "loss": "minimize", "wer": "minimize", "cer": "minimize",
                "mAP": "maximize", "mAP50": "maximize"}
METRICS = tuple(METRIC_GOALS)
GOALS = ("maximize", "minimize")
TASKS = ("image-classification", "audio-classification", "sequence-classification", "speech-recognition",
         "object-detection")
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
