"""Why a trial failed, and the trainer's exit codes (docs/trainer.md).

Every trial-level failure is raised inside the trainer as a ``TrialFailure`` carrying one
of the documented reasons; ``run_trial`` turns it into a Failed result and the CLI into
the matching exit code (``kubenas.contract.EXIT_TABLE``: the one table of codes, with who
may produce each and whether a Job retries it). Nothing here imports torch.
"""
from __future__ import annotations

from kubenas.contract import (  # noqa: F401 - re-exported: the trainer's names for them
    CONSTRAINT_VIOLATED,
    DATA_ERROR,
    DIVERGED,
    EARLY_STOPPED,
    EXIT_CODES,
    FAILED,
    INTERNAL_ERROR,
    INVALID_ARCHITECTURE,
    INVALID_TRIAL,
    OUT_OF_MEMORY,
    SUCCEEDED,
    TIMEOUT,
    TRAINER_REASONS as REASONS,
    UNSATISFIABLE,
)


class TrialFailure(Exception):
    """A trial-level failure: becomes a result with status Failed, its ``reason`` and ``message``."""

    reason = INTERNAL_ERROR

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            if reason not in REASONS:
                raise ValueError(f"unknown failure reason {reason!r}")
            self.reason = reason
        self.message = message


def _failure(name: str, reason: str) -> type[TrialFailure]:
    return type(name, (TrialFailure,), {"reason": reason, "__doc__": f"A trial failure with reason {reason}."})


InvalidTrial = _failure("InvalidTrial", INVALID_TRIAL)
InvalidArchitecture = _failure("InvalidArchitecture", INVALID_ARCHITECTURE)
Diverged = _failure("Diverged", DIVERGED)
OutOfMemory = _failure("OutOfMemory", OUT_OF_MEMORY)
TrialTimeout = _failure("TrialTimeout", TIMEOUT)
DataError = _failure("DataError", DATA_ERROR)
ConstraintViolated = _failure("ConstraintViolated", CONSTRAINT_VIOLATED)
# The spec asks for what this node lacks, whatever the candidate: the experiment ends at the first.
Unsatisfiable = _failure("Unsatisfiable", UNSATISFIABLE)


def exit_code(result: dict) -> int:
    """The process exit code for a trial result dict: the contract's code for its status or
    reason (``kubenas.contract.EXIT_CODES``), 1 (InternalError) for a reason it has none for."""
    if result.get("status") in (SUCCEEDED, EARLY_STOPPED):
        return 0
    return EXIT_CODES.get(result.get("reason") or INTERNAL_ERROR, 1)
