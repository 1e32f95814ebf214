"""One-shot (weight-sharing) search as pure decisions: which trial to start next, given
the trials so far (docs/strategies.md, "One-shot (weight sharing)").

Three phases, each a kind of trial, decided from the records alone (restart-safe: a
restarted controller rebuilds everything from them, the strategy included):

1. ``supernet``: one trial trains the supernet by uniform path sampling
   (kubenas_trainer.models.supernet.train_supernet); a killed pod resumes from its checkpoint
   inside the same trial, so the plan starts it once.
2. ``score``: the strategy's candidates ``0 .. candidates-1`` (strategy indices) in
   batches of ``batch``, one trial per batch, each scoring its candidates with the
   supernet's inherited weights (score_candidates). A batch's scores are its trial's
   result, one per candidate: what the strategy observes (``observations``). A failed
   score trial is started again for the same batch (a new index), up to ``retries``
   times; then that batch's candidates stay unscored.
3. ``retrain``: the ``topK`` best-scored candidates (ties: the lower index) trained
   stand-alone as ordinary trials; the experiment's best is the best of these.

What this module does not do yet: the local runner, controller and operator do not
call it (it is not an ``ExperimentPlan`` in ``plan_for``), and the CRD has no
``spec.strategy.oneshot``; the trainer side (the supernet, its training, the batch
scoring) exists and is tested (tests/trainer/test_supernet.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from kubenas.contract import FAILED, SUCCEEDED, TRIAL_TERMINAL

SUPERNET, SCORE, RETRAIN = "supernet", "score", "retrain"
KINDS = (SUPERNET, SCORE, RETRAIN)
SAMPLING = ("uniform",)
DEFAULTS = {"supernetEpochs": 50, "sampling": "uniform", "candidates": 500, "batch": 100, "topK": 3,
            "bnRecalibrationBatches": 4, "retries": 1}
FIELD = "spec.strategy.oneshot"


class OneShotError(ValueError):
    """A bad ``spec.strategy.oneshot``: the message names the field and the fix."""


def _int(settings: dict, name: str, low: int, high: int | None = None) -> int:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise OneShotError(f"{FIELD}.{name}: must be an integer {bound}, got {value!r}")
    return value


def settings(raw: dict | None) -> dict:
    """``spec.strategy.oneshot`` with its defaults filled, or OneShotError naming the field."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise OneShotError(f"{FIELD}.{unknown[0]}: unknown field (known: {', '.join(DEFAULTS)})")
    s = {**DEFAULTS, **raw}
    _int(s, "supernetEpochs", 1)
    _int(s, "candidates", 1)
    _int(s, "batch", 1, s["candidates"])
    _int(s, "topK", 1, s["candidates"])
    _int(s, "bnRecalibrationBatches", 1)
    _int(s, "retries", 0, 10)
    if s["sampling"] not in SAMPLING:
        raise OneShotError(f"{FIELD}.sampling: must be one of {', '.join(SAMPLING)}, got {s['sampling']!r} "
                           "(strategy-driven sampling while the supernet trains, as ENAS does, is not built)")
    return s


@dataclass(frozen=True)
class OneShotTrial:
    """A trial as the one-shot plan reads it: its kind, the candidates it covers (a
    score trial's batch; a retrain's one candidate), their scores once it succeeded
    (None: unscored), and its reward (a retrain's stand-alone objective)."""
    index: int
    phase: str
    kind: str
    candidates: tuple[int, ...] = ()
    scores: tuple[float | None, ...] = ()
    reward: float | None = None

    @property
    def finished(self) -> bool:
        return self.phase in TRIAL_TERMINAL


@dataclass(frozen=True)
class Start:
    """A trial to start: its index, kind and candidates (strategy indices)."""
    index: int
    kind: str
    candidates: tuple[int, ...] = field(default=())


def batches(s: dict) -> list[tuple[int, ...]]:
    n, size = s["candidates"], s["batch"]
    return [tuple(range(b, min(b + size, n))) for b in range(0, n, size)]


def observations(records: Sequence[OneShotTrial]) -> dict[int, float | None]:
    """What the strategy observes: candidate -> inherited-weight score, from succeeded
    score trials (the first success of a batch counts)."""
    seen: dict[int, float | None] = {}
    for r in sorted(records, key=lambda r: r.index):
        if r.kind == SCORE and r.phase == SUCCEEDED:
            for c, score in zip(r.candidates, r.scores):
                seen.setdefault(c, score)
    return seen


def top_candidates(s: dict, records: Sequence[OneShotTrial]) -> list[int]:
    scored = [(score, c) for c, score in observations(records).items() if score is not None]
    return [c for _, c in sorted(scored, key=lambda sc: (-sc[0], sc[1]))[: s["topK"]]]


def _batch_state(s: dict, records: Sequence[OneShotTrial]) -> tuple[list[tuple[int, ...]], bool]:
    """The batches to start now and whether scoring is over (every batch scored or given up)."""
    due, over = [], True
    for batch in batches(s):
        mine = [r for r in records if r.kind == SCORE and r.candidates == batch]
        if any(r.phase == SUCCEEDED for r in mine):
            continue
        if any(not r.finished for r in mine):
            over = False
            continue
        failures = len(mine)  # all finished, none succeeded
        if failures > s["retries"]:
            continue  # given up: its candidates stay unscored
        over = False
        due.append(batch)
    return due, over


def next_trials(s: dict, records: Sequence[OneShotTrial], slots: int) -> list[Start]:
    """Up to ``slots`` trials to start now (``s``: :func:`settings`'s result)."""
    if slots <= 0:
        return []
    start = max((r.index for r in records), default=-1) + 1
    supernet = [r for r in records if r.kind == SUPERNET]
    if not supernet:
        return [Start(start, SUPERNET)]
    if not any(r.phase == SUCCEEDED for r in supernet):
        return []  # training (its pod resumes from the checkpoint), or failed: see outcome()
    due, over = _batch_state(s, records)
    if not over:
        return [Start(start + k, SCORE, batch) for k, batch in enumerate(due[:slots])]
    started = {r.candidates for r in records if r.kind == RETRAIN}
    todo = [(c,) for c in top_candidates(s, records) if (c,) not in started]
    return [Start(start + k, RETRAIN, cand) for k, cand in enumerate(todo[:slots])]


def outcome(s: dict, records: Sequence[OneShotTrial]) -> tuple[str, str, OneShotTrial | None] | None:
    """None while the experiment goes on; else (phase, message, best retrained trial)."""
    supernet = [r for r in records if r.kind == SUPERNET]
    if supernet and all(r.finished and r.phase != SUCCEEDED for r in supernet):
        return FAILED, "the supernet trial failed: nothing to score candidates with", None
    if not supernet or next_trials(s, records, 1) or any(not r.finished for r in records):
        return None
    retrained = [r for r in records if r.kind == RETRAIN and r.phase == SUCCEEDED and r.reward is not None]
    if not retrained:
        return FAILED, "no candidate was scored and retrained to a result", None
    best = max(retrained, key=lambda r: (r.reward, -r.index))
    return SUCCEEDED, f"best of {len(retrained)} retrained top candidates", best
