"""One-shot (weight-sharing) search, ``spec.oneShot``: its settings with their defaults and
limits, and the kinds of its trials, written once for the validation, the plan
(kubenas.experiment.oneshot) and the trainer (kubenas_trainer.models.supernet); docs/oneshot.md.

A one-shot trial's spec carries ``oneshot: {kind, ...}``: ``supernet`` (train the
supernet of the cell space, resuming from its own checkpoint), ``score`` (score a batch
of candidates with the supernet's inherited weights: ``indices``, ``candidates``,
``supernetCheckpoint``; its result's ``scores`` hold one objective value per candidate)
or ``retrain`` (an ordinary trial of one candidate, ``candidate``).
"""
from __future__ import annotations

SPEC_KEY = "oneShot"
FIELD = f"spec.{SPEC_KEY}"
TRIAL_FIELD = "oneshot"  # of a trial's spec (and its trials.jsonl row)
SUPERNET, SCORE, RETRAIN = "supernet", "score", "retrain"
KINDS = (SUPERNET, SCORE, RETRAIN)
SAMPLING = ("uniform",)
DEFAULTS = {"supernetEpochs": 50, "sampling": "uniform", "candidates": 500, "candidatesPerTrial": 100, "topK": 3,
            "bnRecalibrationBatches": 4, "scoreRetries": 1}
MAX_PER_TRIAL = 500  # candidates in one score trial: their genotypes are in the NASTrial's spec
MAX_TOP_K = 20


def is_weight_sharing(trial_spec: dict) -> bool:
    """A supernet or score trial (its spec, trial.json or row): it trains or scores no
    candidate of its own (a retrain is an ordinary trial)."""
    field = trial_spec.get(TRIAL_FIELD)
    return isinstance(field, dict) and field.get("kind") in (SUPERNET, SCORE)


class OneShotError(ValueError):
    """A bad ``spec.oneShot``: ``path`` is the field, ``message`` what to do about it."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _int(settings: dict, name: str, low: int, high: int | None = None) -> int:
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f">= {low}"
        raise OneShotError(f"{FIELD}.{name}", f"must be an integer {bound}, got {value!r}")
    return value


def settings(raw: dict | None) -> dict:
    """``spec.oneShot`` with its defaults filled, or OneShotError naming the field."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise OneShotError(f"{FIELD}.{unknown[0]}", f"unknown field (known: {', '.join(DEFAULTS)})")
    s = {**DEFAULTS, **raw}
    _int(s, "supernetEpochs", 1)
    _int(s, "candidates", 1)
    _int(s, "candidatesPerTrial", 1, min(s["candidates"], MAX_PER_TRIAL))
    _int(s, "topK", 1, min(s["candidates"], MAX_TOP_K))
    _int(s, "bnRecalibrationBatches", 1, 100)
    _int(s, "scoreRetries", 0, 10)
    if s["sampling"] not in SAMPLING:
        raise OneShotError(f"{FIELD}.sampling", f"must be one of {', '.join(SAMPLING)}, got {s['sampling']!r} "
                           "(sampling by the strategy while the supernet trains, as ENAS does, is not built: "
                           "docs/oneshot.md says why)")
    return s


def planned_trials(s: dict) -> int:
    """The trials a run without failures starts: the supernet, one per batch, the top-k."""
    return 1 + -(-s["candidates"] // s["candidatesPerTrial"]) + s["topK"]
