"""Which trial answers a repeated candidate, so that no network is trained twice.

A strategy never proposes a network it has seen (canonical hash, docs/strategies.md,
"Duplicates") until the space is spent; then it repeats, and a repeat is not trained
again: its trial takes the result of its *twin*, the first trial that trained the same
thing. Locally the runner answers it (``kubenas.local.runner``); in a cluster the
operator does, before creating a Job (``kubenas.operator.reconcile``). Both use this rule.

The same thing is the same candidate hash (architecture, canonical, and
hyperparameters) trained to the same rung: with ``strategy.fidelity`` a result at 1
epoch is no answer for a trial of 9. A re-evaluation (``spec.final``, another seed) is
neither answered nor an answer, and a trial answered by a twin is no twin itself.
"""
from __future__ import annotations

from collections.abc import Iterable

from kubenas.contract import DUPLICATE, SUCCEEDED

from .record import DUPLICATE_OF, TrialRecord


def twin_key(record: TrialRecord) -> tuple | None:
    """What two trials must share to train the same; None: never answered by a twin."""
    if record.hash is None or record.reevaluation_of:
        return None
    return record.hash, record.rung


def can_answer(record: TrialRecord) -> bool:
    """A trial whose result may answer a repeat: succeeded, trained itself, not a re-evaluation."""
    return record.phase == SUCCEEDED and record.duplicate_of is None and twin_key(record) is not None


def find_twin(record: TrialRecord, records: Iterable[TrialRecord]) -> TrialRecord | None:
    """The trial that answers ``record`` (the lowest index among those that can), or None."""
    key = twin_key(record)
    if key is None:
        return None
    twins = [r for r in records if r.name != record.name and can_answer(r) and twin_key(r) == key]
    return min(twins, key=lambda r: (r.index is None, r.index or 0, r.name), default=None)


def answered_by(twin_name: str) -> dict:
    """What a trial answered by ``twin_name`` says of it (a trials.jsonl row, a NASTrial's status)."""
    return {"reason": DUPLICATE, DUPLICATE_OF: twin_name,
            "message": f"same candidate as {twin_name}; result reused, not retrained"}


__all__ = ["answered_by", "can_answer", "find_twin", "twin_key"]
