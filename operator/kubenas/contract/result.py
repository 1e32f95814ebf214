"""The trial result (docs/formats.md, "Trial result"): one type, built in one place.

A trial's result is what its trainer answers: the built-in trainer
(``kubenas_trainer.training.loop.run_trial``), the wrapper of a user program
(``kubenas_trainer.reporting.wrapper``), a one-shot phase (``models.supernet``), the
trainer's own failures before or around a run (its CLI and cluster reporter) and the
local runner's verdict on a process that left no result. Every one of them builds it
with :func:`trial_result` (tests/contract/test_result.py checks that no other module
writes a dict with the result's keys), so the fields, the one message cap
(:data:`MESSAGE_LIMIT`) and the one timestamp format (:func:`timestamp`) are written
down once.

One converter per boundary the result crosses (the shape of Katib's ``Trial.convert``):

* ``result.json`` / trials.jsonl: the result itself (JSON; a non-finite number is
  written as null by the writer); :func:`read_result` is how a reader takes it back;
* ``NASTrial.status``: :func:`status_fields` (the cluster reporter's final write);
* the pod's termination message (the kubelet keeps at most
  :data:`TERMINATION_MESSAGE_BYTES`): :func:`termination_message`, read back by the
  operator with :func:`read_termination_message` when the status write failed.

torch-free and imports nothing outside ``kubenas.contract``.
"""
from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from typing import Any, TypedDict

from . import EARLY_STOPPED, FAILED, HISTORY_LIMIT, NO_REWARD, SUCCEEDED, finite_number

RESULT_STATUSES = (SUCCEEDED, FAILED, EARLY_STOPPED)
# The keys every result has, in the order docs/formats.md lists them.
REQUIRED_FIELDS = ("status", "reward", "reason", "message", "metrics", "history", "device")
# The keys a result has only when its producer has them: ``split`` (the built-in
# trainer's finished trials), ``model`` (spec.artifacts kept the model), ``checkpoint``
# (checkpoint.save), ``exitCode`` (the wrapper: the user program's own exit code, null
# when it never ran), ``scores`` (a one-shot score trial: one result per candidate).
OPTIONAL_FIELDS = ("split", "model", "checkpoint", "exitCode", "scores")
RESULT_FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS

# The longest ``message`` any result, NASTrial status, trials.jsonl row or Event of a
# trial carries, in characters: the note limit of a Kubernetes Event (1 KiB), so that the
# operator's Event about a trial says what its status says.
MESSAGE_LIMIT = 1024
# The kubelet keeps at most 4096 bytes of a container's termination message.
TERMINATION_MESSAGE_BYTES = 4096
_ELLIPSIS = "..."


class TrialResult(TypedDict, total=False):
    """A trial result as docs/formats.md documents it (a JSON object; ``trial_result`` builds it)."""

    status: str
    reward: float | None
    reason: str | None
    message: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    device: str
    split: dict[str, Any]
    model: str
    checkpoint: str
    exitCode: int | None
    scores: list


def short_message(text: str | None, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` stripped and cut to ``limit`` characters (the cut marked with ``...``)."""
    text = (text or "").strip()
    return text if len(text) <= limit else text[: limit - len(_ELLIPSIS)] + _ELLIPSIS


def trial_result(status: str, *, reward: float | None = None, reason: str | None = None, message: str | None = "",
                 metrics: dict | None = None, history: list | None = None, device: str = "cpu",
                 **optional) -> TrialResult:
    """The one builder of a trial result. ``status`` is Succeeded, Failed or EarlyStopped;
    a Failed result names its ``reason``, any other has none. ``message`` is cut to
    :data:`MESSAGE_LIMIT`. ``optional``: the fields of :data:`OPTIONAL_FIELDS` this
    producer has (``split=...``, ``exitCode=...``), each kept as given (``exitCode=None``
    says the program never ran); any other name is a ValueError."""
    if status not in RESULT_STATUSES:
        raise ValueError(f"status: {status!r} is not one of {', '.join(RESULT_STATUSES)}")
    if (status == FAILED) != bool(reason):
        raise ValueError(f"reason: a {status} result {'needs' if status == FAILED else 'has no'} reason, "
                         f"got {reason!r}")
    unknown = sorted(set(optional) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a field of a trial result (fields: {', '.join(RESULT_FIELDS)})")
    result = TrialResult(status=status, reward=reward, reason=reason or None, message=short_message(message),
                         metrics=dict(metrics or {}), history=list(history or []), device=device)
    result.update({name: optional[name] for name in OPTIONAL_FIELDS if name in optional})
    return result


def failed_result(reason: str, message: str, **fields) -> TrialResult:
    """A Failed result (no reward): ``trial_result(FAILED, reason=..., message=..., **fields)``."""
    return trial_result(FAILED, reason=reason, message=message, **fields)


def read_result(data) -> TrialResult | None:
    """A result as a reader takes it from JSON (result.json): None unless it is an object
    with a known ``status``; the message cut to :data:`MESSAGE_LIMIT`, a reward that is
    not a finite number null. Unknown keys are kept (they are the producer's business)."""
    if not isinstance(data, dict) or data.get("status") not in RESULT_STATUSES:
        return None
    return TrialResult({**data, "reward": finite_number(data.get("reward")),
                        "message": short_message(data.get("message")),
                        "metrics": data.get("metrics") if isinstance(data.get("metrics"), dict) else {},
                        "history": [h for h in data.get("history") or [] if isinstance(h, dict)]})


# ------------------------------------------------------------------ NASTrial.status


def timestamp(when: datetime | float | None = None) -> str:
    """RFC 3339 in UTC to the second (``2026-05-01T10:00:00Z``), as the Kubernetes API
    writes ``metav1.Time``: every timestamp of a trial (its status, a trials.jsonl row).
    ``when``: a datetime, a POSIX time, or now."""
    if when is None:
        when = datetime.now(timezone.utc)
    elif not isinstance(when, datetime):
        when = datetime.fromtimestamp(float(when), timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def without_non_finite(value):
    """``value`` for the API server, which has no NaN and takes no null for a number: a
    non-finite float is dropped from an object (with its key) and null in a list."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: without_non_finite(v) for k, v in value.items() if without_non_finite(v) is not None}
    if isinstance(value, (list, tuple)):
        return [without_non_finite(v) for v in value]
    return value


def _numbers(values: dict | None) -> dict:
    return {k: float(v) for k, v in (values or {}).items() if finite_number(v) is not None}


def status_fields(result: TrialResult, *, completed: str | None = None, history: list | None = None) -> dict:
    """The ``NASTrial.status`` fields of a result (the trainer's final write): ``phase``
    and the result's fields the status keeps (numeric ``metrics`` only, ``history`` at
    most HISTORY_LIMIT epochs: ``history`` stands in when the result has none), plus
    ``completionTime`` (``completed``, default now). A Succeeded result without a
    finite reward is Failed NoReward. Absent and null fields are left out."""
    status = {
        "phase": result.get("status") or FAILED,
        "reward": finite_number(result.get("reward")),
        "reason": result.get("reason"),
        "message": short_message(result.get("message")),
        "metrics": _numbers(result.get("metrics")),
        "history": [without_non_finite(h) for h in (result.get("history") or history or [])][:HISTORY_LIMIT],
        "device": result.get("device"),
        "model": result.get("model"),
        "scores": without_non_finite(result.get("scores")),
        "completionTime": completed or timestamp(),
    }
    if status["phase"] == SUCCEEDED and status["reward"] is None:
        status.update(phase=FAILED, reason=NO_REWARD, message="the trainer produced no finite reward")
    return {k: v for k, v in status.items() if v is not None}


# ------------------------------------------------------------- termination message


def termination_message(result: TrialResult) -> str:
    """The pod's termination message (``/dev/termination-log``): compact JSON of
    ``status``, ``reward`` (when finite), ``reason`` and ``message``, within the
    kubelet's :data:`TERMINATION_MESSAGE_BYTES` (the message is shortened further only
    if its escapes would not fit). ``kubectl describe pod`` shows it; the operator reads
    it with :func:`read_termination_message`."""
    message = short_message(result.get("message"))
    while True:
        short = {"status": result.get("status"), "reward": finite_number(result.get("reward")),
                 "reason": result.get("reason"), "message": message}
        text = json.dumps({k: v for k, v in short.items() if v is not None}, separators=(",", ":"))
        if len(text.encode()) <= TERMINATION_MESSAGE_BYTES:
            return text
        message = short_message(message, max(len(_ELLIPSIS), len(message) - (len(text.encode()) -
                                                                            TERMINATION_MESSAGE_BYTES) - 8))


def read_termination_message(text: str | None) -> TrialResult | None:
    """The result a trainer left in its termination message: ``status``, ``reward``
    (None unless finite), ``reason`` and ``message``; None for anything else (a
    message that is not this JSON: the kubelet's log fallback, another program's)."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("status") not in RESULT_STATUSES:
        return None
    return TrialResult(status=data["status"], reward=finite_number(data.get("reward")),
                       reason=data.get("reason") if isinstance(data.get("reason"), str) else None,
                       message=short_message(data.get("message") if isinstance(data.get("message"), str) else ""))
