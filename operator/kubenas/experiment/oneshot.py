"""One-shot (weight-sharing) search as pure decisions: which trial to start next, given
the trials so far (``spec.oneShot``; docs/oneshot.md). The plan that runs it is
``kubenas.experiment.plan.OneShot``.

Three phases, each a kind of trial, decided from the records alone (restart-safe: a
restarted controller rebuilds everything from them, the strategy included):

1. ``supernet``: one trial trains the supernet by uniform path sampling
   (kubenas_trainer.models.supernet.train_supernet); a killed pod resumes from its
   checkpoint inside the same trial, so the plan starts it once.
2. ``score``: the strategy's candidates ``0 .. candidates-1`` (strategy indices) in
   batches of ``candidatesPerTrial``, one trial per batch, each scoring its candidates
   with the supernet's inherited weights (score_candidates). A batch's scores are its
   trial's result, one per candidate: what the strategy observes (``observations``). A
   failed score trial is started again for the same batch (a new index, the same
   candidates), up to ``scoreRetries`` times; then that batch's candidates stay unscored.
3. ``retrain``: the ``topK`` best-scored candidates (ties: the lower index) trained
   stand-alone as ordinary trials; the experiment's best is the best of these.

``budget.maxTrials`` bounds the trials started in all (supernet, score trials and their
retries, retrains): it must leave room for the planned ones (:func:`planned_trials`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from kubenas.contract import FAILED, SUCCEEDED, TRIAL_TERMINAL
from kubenas.contract.ops import CHAIN_OPS, chain_space_block

from kubenas.contract.oneshot import (DEFAULTS, FIELD, KINDS, RETRAIN, SAMPLING, SCORE, SPEC_KEY, SUPERNET,
                                     TRIAL_FIELD, OneShotError, planned_trials, settings)

__all__ = ["DEFAULTS", "FIELD", "KINDS", "RETRAIN", "SAMPLING", "SCORE", "SPEC_KEY", "SUPERNET", "OneShotError",
           "OneShotTrial", "Start", "batches", "candidate_of", "next_trials", "observations", "outcome",
           "planned_trials", "representative", "retrain_fields", "score_fields", "scored_in", "settings",
           "supernet_fields", "supernet_space", "supernet_trial", "top_candidates", "view"]


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
    name: str = ""

    @property
    def finished(self) -> bool:
        return self.phase in TRIAL_TERMINAL


def view(record) -> OneShotTrial | None:
    """A ``TrialRecord`` as the one-shot plan reads it; None: no trial of a one-shot plan."""
    if record.oneshot not in KINDS or record.index is None:
        return None
    if record.oneshot == RETRAIN:
        candidates = (record.candidate,) if record.candidate is not None else ()
    else:
        candidates = tuple(record.batch)
    scores = tuple(None if math.isnan(v) else v for v in record.scores) if record.phase == SUCCEEDED else ()
    return OneShotTrial(int(record.index), record.phase, record.oneshot, candidates, scores, record.reward,
                        record.name)


@dataclass(frozen=True)
class Start:
    """A trial to start: its index, kind and candidates (strategy indices)."""
    index: int
    kind: str
    candidates: tuple[int, ...] = field(default=())


def batches(s: dict) -> list[tuple[int, ...]]:
    n, size = s["candidates"], s["candidatesPerTrial"]
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


def top_candidates(s: dict, records: Sequence[OneShotTrial], goal: str = "maximize") -> list[int]:
    """The ``topK`` best-scored candidates, best first (ties: the lower index)."""
    sign = -1.0 if goal == "maximize" else 1.0
    scored = [(sign * score, c) for c, score in observations(records).items() if score is not None]
    return [c for _, c in sorted(scored)[: s["topK"]]]


def scored_in(records: Sequence[OneShotTrial], candidate: int) -> OneShotTrial | None:
    """The succeeded score trial whose score of ``candidate`` counts (the first by index)."""
    return next((r for r in sorted(records, key=lambda r: r.index)
                 if r.kind == SCORE and r.phase == SUCCEEDED and candidate in r.candidates), None)


def _batch_state(s: dict, records: Sequence[OneShotTrial], slack: int | None) -> tuple[list[tuple[int, ...]], bool]:
    """The batches to start now and whether scoring is over (every batch scored or given
    up). ``slack``: the trials ``budget.maxTrials`` leaves beyond the planned ones, which
    retries may take (None: no bound)."""
    scoring = [r for r in records if r.kind == SCORE]
    retries_left = None if slack is None else slack - (len(scoring) - len({r.candidates for r in scoring}))
    due, over = [], True
    for batch in batches(s):
        mine = [r for r in scoring if r.candidates == batch]
        if any(r.phase == SUCCEEDED for r in mine):
            continue
        if any(not r.finished for r in mine):
            over = False
            continue
        failures = len(mine)  # all finished, none succeeded
        if failures > s["scoreRetries"]:
            continue  # given up: its candidates stay unscored
        if failures and retries_left is not None:
            if retries_left <= 0:
                continue  # no room in budget.maxTrials for another try: given up
            retries_left -= 1
        over = False
        due.append(batch)
    return due, over


def next_trials(s: dict, records: Sequence[OneShotTrial], slots: int, goal: str = "maximize",
                max_trials: int | None = None) -> list[Start]:
    """Up to ``slots`` trials to start now (``s``: :func:`settings`'s result;
    ``max_trials``: budget.maxTrials, the trials it may start in all)."""
    if slots <= 0:
        return []
    start = max((r.index for r in records), default=-1) + 1
    supernet = [r for r in records if r.kind == SUPERNET]
    if not supernet:
        return [Start(start, SUPERNET)]
    if not any(r.phase == SUCCEEDED for r in supernet):
        return []  # training (its pod resumes from the checkpoint), or failed: see outcome()
    slack = None if max_trials is None else max_trials - planned_trials(s)
    due, over = _batch_state(s, records, slack)
    if not over:
        return [Start(start + k, SCORE, batch) for k, batch in enumerate(due[:slots])]
    started = {r.candidates for r in records if r.kind == RETRAIN}
    todo = [(c,) for c in top_candidates(s, records, goal) if (c,) not in started]
    return [Start(start + k, RETRAIN, cand) for k, cand in enumerate(todo[:slots])]


def supernet_trial(records: Sequence[OneShotTrial]) -> OneShotTrial | None:
    """The supernet trial whose weights the candidates are scored with (the succeeded one)."""
    return next((r for r in records if r.kind == SUPERNET and r.phase == SUCCEEDED), None)


def outcome(s: dict, records: Sequence[OneShotTrial], goal: str = "maximize",
            max_trials: int | None = None) -> tuple[str, str, OneShotTrial | None] | None:
    """None while the experiment goes on; else (phase, message, best retrained trial).
    ``max_trials``: with that many trials started and finished, it ends whatever is left."""
    supernet = [r for r in records if r.kind == SUPERNET]
    if supernet and all(r.finished and r.phase != SUCCEEDED for r in supernet):
        return FAILED, f"the supernet trial {supernet[0].name or supernet[0].index} failed: nothing to score " \
                       "candidates with", None
    if any(not r.finished for r in records) or not supernet:
        return None
    spent = max_trials is not None and len(records) >= max_trials
    if next_trials(s, records, 1, goal, max_trials) and not spent:
        return None
    retrained = [r for r in records if r.kind == RETRAIN and r.phase == SUCCEEDED and r.reward is not None]
    scored = sum(score is not None for score in observations(records).values())
    if not retrained:
        why = " (budget.maxTrials spent)" if spent else ""
        return FAILED, f"no candidate was scored and retrained to a result{why}: {scored} of " \
                       f"{s['candidates']} candidates scored, {sum(r.kind == RETRAIN for r in records)} retrained", None
    sign = 1.0 if goal == "maximize" else -1.0
    best = max(retrained, key=lambda r: (sign * r.reward, -r.index))
    return SUCCEEDED, (f"best of {len(retrained)} retrained top candidates ({scored} of {s['candidates']} "
                       f"scored with inherited weights)"), best


# --------------------------------------------------------------------------- trial specs


def supernet_space(search_space: dict) -> dict:
    """The space a one-shot trial's supernet is built over (``oneshot.space``): its
    ``type`` and block, a chain's with its defaults filled. A cell space's is its block as
    given, without ``type`` (the form trials carried before chain supernets)."""
    if search_space.get("type") == "chain":
        return {"type": "chain", **chain_space_block(search_space.get("chain"))}
    return dict(search_space["cell"])


def representative(space: dict) -> dict:
    """A genotype of the supernet's space (``supernet_space``): a cell with every edge its
    last op; a chain with each layer the first op, filters, kernel, stride and dilation.
    The ``architecture`` of a supernet or score trial, which trains or scores no candidate
    of its own (the trainer reads its skeleton; twins and ranking ignore it)."""
    if space.get("type") == "chain":
        op = space["operations"][0]
        first = {"filters": space["filters"][0], "kernel": space["kernelSizes"][0], "stride": space["strides"][0],
                 "dilation": space["dilations"][0]}
        layer = {"op": op, **{k: v for k, v in first.items() if CHAIN_OPS[op].takes(k)}}
        return {"type": "chain", "layers": [dict(layer) for _ in range(space["layers"])]}
    nodes = int(space["nodes"])
    op = list(space["operations"])[-1]
    return {"type": "cell", "nodes": nodes, "edges": [[op] * i for i in range(1, nodes)],
            **{k: space[k] for k in ("channels", "cellsPerStage", "stages") if k in space}}


def supernet_fields(s: dict, space: dict) -> dict:
    """The ``oneshot`` field of the supernet trial's spec (``space``: ``supernet_space``)."""
    return {"kind": SUPERNET, "space": dict(space), "epochs": s["supernetEpochs"], "sampling": s["sampling"]}


def score_fields(s: dict, space: dict, indices: Sequence[int], architectures: Sequence[dict],
                 supernet_checkpoint: str | None) -> dict:
    """The ``oneshot`` field of a score trial: its candidates (strategy indices and their
    genotypes, in order) and where the supernet's weights are (None: nowhere kept, the
    trainer says so)."""
    return {"kind": SCORE, "space": dict(space), "indices": list(indices), "candidates": list(architectures),
            "bnRecalibrationBatches": s["bnRecalibrationBatches"],
            **({"supernetCheckpoint": supernet_checkpoint} if supernet_checkpoint else {})}


def retrain_fields(candidate: int) -> dict:
    """The ``oneshot`` field of a retrain: an ordinary trial of strategy candidate ``candidate``."""
    return {"kind": RETRAIN, "candidate": candidate}


def candidate_of(trial_spec: dict, candidate: int) -> dict | None:
    """Candidate ``candidate``'s genotype in a score trial's spec (None: not in it)."""
    field_ = trial_spec.get(TRIAL_FIELD) or {}
    indices, archs = field_.get("indices") or [], field_.get("candidates") or []
    if candidate not in indices or len(archs) != len(indices):
        return None
    return {"architecture": archs[indices.index(candidate)], "hyperparameters": {}}
