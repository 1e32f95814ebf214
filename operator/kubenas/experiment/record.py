"""One type for a trial as the deciding code sees it, and its two sources.

``from_trial_object`` reads a NASTrial (cluster mode: the operator's Book, the
controller's informer); ``from_row`` reads a line of trials.jsonl (local mode). Both
sanitise the reward the same way: a reward that is not a finite number is no reward.
"""
from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kubenas.contract import (FAILED, HISTORY_LIMIT, LEARNED_PHASES, PENALTY_METRICS, PENDING, SUCCEEDED,
                              TRIAL_TERMINAL, finite_number)
from kubenas.contract import oneshot as oneshot_contract
from kubenas.contract.genotype import describe_genotype, genotype_hash

REEVALUATION_OF = "reevaluationOf"  # the field of a re-evaluation trial's spec and row (spec.final)
DUPLICATE_OF = "duplicateOf"  # the field of a trial's status and row: answered by this twin, not trained

MAX_SUMMARY = 200  # characters of the one-line architecture summary


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """What the budget, ranking, status folding and the median rule read of a trial.

    Small on purpose: the operator keeps one per trial in memory.
    """

    name: str
    index: int | None
    phase: str = PENDING
    reward: float | None = None      # finite, or None
    acknowledged: bool = False       # its terminal phase is recorded (cluster: condition Finished)
    architecture: str = ""           # one-line summary
    # Per-epoch objective values, kept for Succeeded trials only (the median rule's peers),
    # as a packed array of doubles: 8 bytes a value instead of a tuple's ~32, so at the
    # HISTORY_LIMIT of 1000 epochs a trial holds 8 KB; the values are exact.
    values: Sequence[float] = ()
    # The measured costs of a Succeeded trial, one per PENALTY_METRICS (NaN: not measured):
    # what a Pareto front (objective.pareto) is drawn from.
    costs: Sequence[float] = ()
    # A multi-fidelity experiment's trial (spec.strategy.fidelity): which candidate, which rung.
    candidate: int | None = None
    rung: int = 0
    reason: str | None = None        # why it failed (the trainer's or the control plane's reason)
    failure: str = ""                # what a failed trial failed on: its message's last line (failure_line)
    hash: str | None = None          # the candidate's (architecture + hyperparameters): spec.final's distinct top
    reevaluation_of: str | None = None  # spec.final: the search trial this one retrains with another seed
    duplicate_of: str | None = None  # the twin whose result answered this trial (kubenas.experiment.twins)
    # A one-shot experiment's trial (spec.oneShot, kubenas.experiment.oneshot): its kind
    # (supernet, score, retrain); a score trial's candidates (strategy indices) and their
    # inherited-weight scores once it succeeded (NaN: not scored); a retrain's is ``candidate``.
    oneshot: str | None = None
    batch: tuple[int, ...] = ()
    scores: Sequence[float] = ()

    @property
    def finished(self) -> bool:
        return self.phase in TRIAL_TERMINAL

    def cost(self, metric: str) -> float | None:
        """The measured ``parameters``, ``macs`` or ``latencyMs``, None when not measured."""
        if not self.costs:
            return None
        value = self.costs[PENALTY_METRICS.index(metric)]
        return None if math.isnan(value) else value

    def history(self, metric: str) -> list[dict]:
        """The per-epoch values as a status history (a value that was not a finite
        number is missing), as the median rule reads them."""
        return [{metric: None if math.isnan(v) else v} for v in self.values]


def architecture_summary(architecture: dict | None) -> str:
    try:
        text = describe_genotype(architecture or {})
    except Exception:  # noqa: BLE001 - a summary must never break folding
        text = str((architecture or {}).get("type", "?"))
    return text if len(text) <= MAX_SUMMARY else text[: MAX_SUMMARY - 3] + "..."


def _values(phase: str, history, metric: str) -> tuple:
    if phase != SUCCEEDED:  # peers for the median rule: only completed trials count
        return ()
    return array("d", (_nan_if_none(finite_number(h.get(metric)))
                       for h in (history or [])[:HISTORY_LIMIT] if isinstance(h, dict)))


def _costs(phase: str, metrics) -> tuple:
    if phase != SUCCEEDED or not isinstance(metrics, dict):
        return ()
    return array("d", (_nan_if_none(finite_number(metrics.get(m))) for m in PENALTY_METRICS))


ONESHOT = oneshot_contract.TRIAL_FIELD  # of a one-shot trial's spec and row (spec.oneShot)
_weight_sharing = oneshot_contract.is_weight_sharing  # a supernet or score trial: no candidate of its own


def _reward(spec: dict, reward) -> float | None:
    """The trial's reward as ranking, the best trial and the strategy read it: none for a
    supernet or score trial, whose reported reward (the supernet's mean over sampled paths,
    a batch's best inherited-weight score) is no candidate's stand-alone result."""
    return None if _weight_sharing(spec) else finite_number(reward)


def _hash(spec: dict) -> str | None:
    if not spec.get("architecture") or _weight_sharing(spec):  # known by name only (one in flight locally),
        return None  # or a supernet/score trial: its architecture is no candidate, it answers no repeat
    try:
        return genotype_hash(spec.get("architecture") or {}, spec.get("hyperparameters") or {})
    except Exception:  # noqa: BLE001 - garbage in a spec: no hash, never a crash while folding
        return None


def _name(value) -> str | None:
    return value if isinstance(value, str) and value else None


def failure_line(message, limit: int = MAX_SUMMARY) -> str:
    """The line of a failure message that says what failed: its last non-empty line (a
    program's traceback ends with the exception; a one-line message is itself), at most
    ``limit`` characters."""
    lines = [line.strip() for line in str(message or "").splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failure(phase: str, message) -> str:
    return failure_line(message) if phase == FAILED else ""


def _reason(phase: str, reason) -> str | None:
    """A failed trial's reason (what decides whether it counts against maxFailedTrials)."""
    return sys.intern(reason) if phase == FAILED and isinstance(reason, str) else None


def _fidelity(spec: dict) -> dict:
    """``candidate`` and ``rung`` of a multi-fidelity trial's ``fidelity`` field; {} for others."""
    field = spec.get("fidelity")
    if not isinstance(field, dict) or not isinstance(field.get("candidate"), int):
        return {}
    rung = field.get("rung")
    return {"candidate": field["candidate"], "rung": rung if isinstance(rung, int) and rung >= 0 else 0}


def _oneshot(spec: dict, scores) -> dict:
    """``oneshot`` (kind), ``batch``, ``scores`` and a retrain's ``candidate`` of a one-shot
    trial's ``oneshot`` field and reported ``scores``; {} for others."""
    field = spec.get(ONESHOT)
    if not isinstance(field, dict) or not isinstance(field.get("kind"), str):
        return {}
    out: dict = {"oneshot": sys.intern(field["kind"])}
    indices = field.get("indices")
    if isinstance(indices, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in indices):
        out["batch"] = tuple(indices)
        if isinstance(scores, list):
            out["scores"] = array("d", (_nan_if_none(finite_number(v)) for v in scores[:len(indices)]))
    if isinstance(field.get("candidate"), int):
        out["candidate"] = field["candidate"]
    return out


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def acknowledged(status: dict) -> bool:
    """A terminal phase the operator has recorded (its ``Finished`` condition is set):
    nothing is left to do for the trial."""
    return status.get("phase") in TRIAL_TERMINAL and any(
        c.get("type") == "Finished" and c.get("status") == "True" for c in status.get("conditions") or [])


def from_trial_object(trial: dict, *, details: bool = True) -> TrialRecord:
    """A NASTrial as a record (its status may be missing or hold garbage).

    ``details=False`` leaves out the architecture summary and the per-epoch values (what
    the controller keeps: only what the budget reads).
    """
    spec = trial.get("spec") or {}
    status = trial.get("status") or {}
    phase = status.get("phase") or PENDING
    record = TrialRecord(name=trial["metadata"]["name"], index=spec.get("index"), phase=phase,
                         reward=_reward(spec, status.get("reward")), acknowledged=acknowledged(status),
                         reason=_reason(phase, status.get("reason")), failure=_failure(phase, status.get("message")),
                         hash=_hash(spec),
                         reevaluation_of=_name(spec.get(REEVALUATION_OF)), duplicate_of=_name(status.get(DUPLICATE_OF)),
                         **_fidelity(spec), **_oneshot(spec, status.get("scores")))
    if not details:
        return record
    metric = (spec.get("objective") or {}).get("metric") or "accuracy"
    return replace(record, architecture=architecture_summary(spec.get("architecture")),
                   values=_values(phase, status.get("history"), metric), costs=_costs(phase, status.get("metrics")))


def from_row(row: dict, metric: str = "accuracy", *, details: bool = True) -> TrialRecord:
    """A line of trials.jsonl as a record (every such trial is finished and recorded)."""
    phase = row.get("status") or PENDING
    record = TrialRecord(name=row.get("name", ""), index=row.get("index"), phase=phase,
                         reward=_reward(row, row.get("reward")), acknowledged=True,
                         reason=_reason(phase, row.get("reason")), failure=_failure(phase, row.get("message")),
                         hash=None if _weight_sharing(row) else row.get("hash") or _hash(row),
                         reevaluation_of=_name(row.get(REEVALUATION_OF)), duplicate_of=_name(row.get(DUPLICATE_OF)),
                         **_fidelity(row), **_oneshot(row, row.get("scores")))
    if not details:
        return record
    return replace(record, architecture=architecture_summary(row.get("architecture")),
                   values=_values(phase, row.get("history"), metric), costs=_costs(phase, row.get("metrics")))


def candidate(trial_spec: dict) -> dict:
    """What a strategy proposed for a trial, from its spec (a NASTrial's ``spec``, a
    trial.json, or a trials.jsonl row: they carry the same two fields)."""
    return {"architecture": trial_spec.get("architecture") or {},
            "hyperparameters": trial_spec.get("hyperparameters") or {}}


def strategy_reward(phase: str | None, reward) -> float | None:
    """What a strategy observes for a finished trial: its reward, or None (failed)."""
    return finite_number(reward) if phase in LEARNED_PHASES else None


def row_from_trial_object(trial: dict) -> dict:
    """A NASTrial in the shape of a trials.jsonl row (``name``, ``index``, ``architecture``,
    ``hyperparameters``, ``status``, ``reward``, ``metrics``, ``history``, ...), so that
    reports, exports and plots read both modes through :func:`from_row` and one set of
    fields (docs/formats.md). ``from_row(row_from_trial_object(t))`` ranks as
    ``from_trial_object(t)`` does."""
    spec = trial.get("spec") or {}
    status = trial.get("status") or {}
    return {
        "name": (trial.get("metadata") or {}).get("name", ""),
        "index": spec.get("index"),
        "architecture": spec.get("architecture") or {},
        "hyperparameters": spec.get("hyperparameters") or {},
        "status": status.get("phase") or PENDING,
        "reward": finite_number(status.get("reward")),
        "reason": status.get("reason"),
        "message": status.get("message") or "",
        "metrics": status.get("metrics") or {},
        "history": [h for h in (status.get("history") or []) if isinstance(h, dict)],
        **({"fidelity": spec["fidelity"]} if spec.get("fidelity") else {}),
        **({REEVALUATION_OF: spec[REEVALUATION_OF]} if spec.get(REEVALUATION_OF) else {}),
        **({ONESHOT: spec[ONESHOT]} if spec.get(ONESHOT) else {}),
        **({"scores": status["scores"]} if isinstance(status.get("scores"), list) else {}),
        "startTime": status.get("startTime"),
        "completionTime": status.get("completionTime"),
    }
