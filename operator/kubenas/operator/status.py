"""Fold trial records into the experiment's bounded status (pure).

The operator keeps one small record per trial in memory (its Book: a
``kubenas.experiment.TrialRecord`` each) and folds them into ``NASExperiment.status``:
counts by phase, the best trial (with where its model is, ``bestTrial.model``) and
the top 10. The status size does not grow with the
number of trials.
"""
from __future__ import annotations

from kubenas.cluster.objects import experiment_uid
from kubenas.contract import artifacts as art
from kubenas.contract import EARLY_STOPPED, FAILED, PENDING, RUNNING, SUCCEEDED, finite_number
from kubenas.experiment import TrialRecord, pareto_front, ranked

TOP_TRIALS = 10
PARETO_FRONT = 32  # the CRD's maxItems of status.paretoFront

COUNT_KEYS = {PENDING: "pending", RUNNING: "running", SUCCEEDED: "succeeded", FAILED: "failed",
              EARLY_STOPPED: "earlyStopped"}


def model_location(trial: dict | None, artifacts: dict | None) -> str | None:
    """Where the trial's model is, if its trainer wrote one to spec.artifacts: its
    ``status.model``, believed only when it is the place that spec.artifacts gives this
    trial, in its experiment's folder (named with the uid of the experiment that owns the
    trial): a trainer cannot point users at anything else, another experiment's included."""
    reported = ((trial or {}).get("status") or {}).get("model")
    if not artifacts or not reported:
        return None
    meta, spec = (trial or {}).get("metadata") or {}, (trial or {}).get("spec") or {}
    uid = experiment_uid(trial or {})
    if not uid:
        return None  # a trial its experiment did not make names no model of it
    folder = art.join(art.experiment_location(artifacts, spec.get("experiment", ""), uid), meta.get("name", ""))
    expected = {art.join(folder, name) for name in art.MODEL_FILES.values()}
    return reported if reported in expected else None


def trial_details(trial: dict | None, artifacts: dict | None = None) -> dict:
    """The best trial's hyperparameters, numeric metrics and model location, for
    ``status.bestTrial``."""
    spec = (trial or {}).get("spec") or {}
    status = (trial or {}).get("status") or {}
    return {"hyperparameters": spec.get("hyperparameters") or {},
            "metrics": {k: v for k, v in (status.get("metrics") or {}).items() if finite_number(v) is not None},
            "model": model_location(trial, artifacts)}


def counts(records: list[TrialRecord]) -> dict:
    out = {"created": len(records)}
    out.update({key: 0 for key in COUNT_KEYS.values()})
    for r in records:
        out[COUNT_KEYS.get(r.phase, "pending")] += 1
    return out


def front_status(records: list[TrialRecord], goal: str, pareto) -> list[dict]:
    """``status.paretoFront``: the front's members, best reward first, with their costs;
    a front longer than PARETO_FRONT is thinned evenly along it (both ends kept)."""
    front = pareto_front(records, goal, pareto)
    if len(front) > PARETO_FRONT:
        step = (len(front) - 1) / (PARETO_FRONT - 1)
        front = [front[round(k * step)] for k in range(PARETO_FRONT)]
    return [{"name": r.name, "reward": r.reward, "architecture": r.architecture,
             "metrics": {m: r.cost(m) for m in pareto}} for r in front]


def fold(records: list[TrialRecord], goal: str, details=None, pareto=(), final=None) -> dict:
    """The trial part of the experiment status: ``trials``, ``bestTrial``, ``topTrials``,
    and with ``objective.pareto`` the ``paretoFront``.

    ``details(name)`` gives the best trial's hyperparameters and metrics
    (:func:`trial_details`); without it they are left empty. ``final`` (spec.final, once
    re-evaluating): the candidate with the best mean reward
    (``kubenas.experiment.final.Aggregate``), whose original trial is then the best trial.
    """
    best = ranked(records, goal, limit=TOP_TRIALS)
    status: dict = {"trials": counts(records)}
    chosen = next((r for r in records if final is not None and r.name == final.name), None)
    if best:
        b = chosen or best[0]
        extra = details(b.name) if details else {}
        status["bestTrial"] = {
            "name": b.name, "index": b.index, "reward": b.reward, "architecture": b.architecture,
            "hyperparameters": extra.get("hyperparameters") or {}, "metrics": extra.get("metrics") or {},
        }
        if extra.get("model"):
            status["bestTrial"]["model"] = extra["model"]
        if chosen is not None:
            status["bestTrial"]["final"] = {"mean": final.mean, "std": final.std, "n": final.n,
                                            "trials": list(final.trials), "rewards": list(final.rewards)}
    else:
        status["bestTrial"] = None
    status["topTrials"] = [{"name": r.name, "reward": r.reward, "architecture": r.architecture}
                           for r in best[:TOP_TRIALS]]
    if pareto:
        status["paretoFront"] = front_status(records, goal, pareto)
    return status


def set_condition(conditions: list[dict] | None, type_: str, status: str, reason: str, message: str,
                  *, now: str, generation: int | None = None) -> list[dict]:
    """A new conditions list with one condition set; lastTransitionTime moves only when
    the status changes (Kubernetes conventions)."""
    out = [dict(c) for c in conditions or []]
    for c in out:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c.update({"status": status, "reason": reason, "message": message})
            if generation is not None:
                c["observedGeneration"] = generation
            return out
    new = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if generation is not None:
        new["observedGeneration"] = generation
    out.append(new)
    return out


def get_condition(conditions: list[dict] | None, type_: str) -> dict | None:
    for c in conditions or []:
        if c.get("type") == type_:
            return c
    return None


def status_patch(current: dict, wanted: dict) -> dict:
    """Only the top-level status keys whose value changes (None deletes a key)."""
    patch = {}
    for key, value in wanted.items():
        if value is None:
            if current.get(key) is not None:
                patch[key] = None
        elif current.get(key) != value:
            patch[key] = value
    return patch
