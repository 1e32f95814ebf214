"""Why a trial failed, and the trainer's exit codes (docs/formats.md).

Every trial-level failure is raised inside the trainer as a ``TrialFailure`` carrying one
of the documented reasons; ``run_trial`` turns it into a Failed result and the CLI into
the matching exit code. Nothing here imports torch.
"""
from __future__ import annotations

SUCCEEDED = "Succeeded"
FAILED = "Failed"
EARLY_STOPPED = "EarlyStopped"

INVALID_ARCHITECTURE = "InvalidArchitecture"
INVALID_TRIAL = "InvalidTrial"
DIVERGED = "Diverged"
OUT_OF_MEMORY = "OutOfMemory"
TIMEOUT = "Timeout"
DATA_ERROR = "DataError"
INTERNAL_ERROR = "InternalError"

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
}
REASONS = tuple(r for r in EXIT_CODES if r not in (SUCCEEDED, EARLY_STOPPED))


class TrialFailure(Exception):
    """A trial-level failure: becomes ``{"status": "Failed", "reason": ..., "message": ...}``."""

    reason = INTERNAL_ERROR

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            if reason not in REASONS:
                raise ValueError(f"unknown failure reason {reason!r}")
            self.reason = reason
        self.message = message


class InvalidTrial(TrialFailure):
    reason = INVALID_TRIAL


class InvalidArchitecture(TrialFailure):
    reason = INVALID_ARCHITECTURE


class Diverged(TrialFailure):
    reason = DIVERGED


class OutOfMemory(TrialFailure):
    reason = OUT_OF_MEMORY


class TrialTimeout(TrialFailure):
    reason = TIMEOUT


class DataError(TrialFailure):
    reason = DATA_ERROR


def exit_code(result: dict) -> int:
    """The process exit code for a trial result dict."""
    status = result.get("status")
    if status in (SUCCEEDED, EARLY_STOPPED):
        return 0
    return EXIT_CODES.get(result.get("reason") or INTERNAL_ERROR, 1)
