"""Multi-fidelity experiments (``spec.strategy.fidelity``): what to train next, and when the
budget is spent. Pure decisions over trial records, for the local runner, the controller
and the operator alike.

A multi-fidelity experiment's trials each train one candidate to one rung
(``kubenas.contract.fidelity``): a trial's spec carries ``fidelity: {candidate, rung}``.
Candidate ``c`` is the strategy's ``c``-th proposal (the strategy's index); its first
trial trains the first rung of its bracket (``Plan.first_rung``): rung 0
(``minResource`` epochs) under ASHA, rung ``b`` for Hyperband's bracket ``b``. A promotion is a new trial of the same
candidate at the next rung that continues the previous rung's trial from its checkpoint
(``trial.checkpoint.resumeFrom``) where the trainer can resume, and retrains from
scratch otherwise; every trial of such an experiment follows one learning-rate schedule
of ``trial.training.epochs`` (the last rung), so a continued trial is the same run as
one trained straight through.

``budget.maxTrials`` counts candidates, not trials: promotions come on top. The budget
is spent when ``maxTrials`` candidates have been proposed, no trial is in flight, and no
result is promotable: the top ``1 / reductionFactor`` of every rung has been promoted.
Which trials exist decides everything here, so a restarted runner or controller, or
the operator folding statuses, reach the same decisions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from kubenas.contract import TRIAL_ACTIVE
from kubenas.contract import fidelity as contract

from .record import TrialRecord, strategy_reward

FIDELITY = "fidelity"  # the field of a trial's spec (and trials.jsonl row): {"candidate", "rung"}


@dataclass(frozen=True)
class Plan:
    """A multi-fidelity experiment's schedule: epochs per rung and the reduction factor."""

    rungs: tuple[int, ...]
    reduction_factor: int
    goal: str
    max_candidates: int
    cycle: tuple[int, ...] = (0,)  # the first rung of each candidate's bracket, by candidate number

    def first_rung(self, candidate: int) -> int:
        """The rung a candidate's first trial trains to (its bracket's)."""
        return self.cycle[candidate % len(self.cycle)]


@dataclass(frozen=True)
class RungAssignment:
    """One trial to create (not a batch/v1 Job): candidate ``candidate`` trained to rung ``rung`` (``epochs``);
    a promotion continues ``resume_trial`` (the candidate's trial at the rung below,
    trained ``resume_epochs``, or the twin that answered it: then another candidate's
    trial of the same network, whose encoding the promotion takes); a new candidate has
    neither."""

    candidate: int
    rung: int
    epochs: int
    resume_trial: str | None = None
    resume_epochs: int = 0

    @property
    def is_new(self) -> bool:
        """A new candidate's first trial (the strategy proposes it); else a promotion."""
        return self.resume_trial is None

    def field(self) -> dict:
        """The trial spec's ``fidelity`` field."""
        return {"candidate": self.candidate, "rung": self.rung}


def plan(spec: dict) -> Plan | None:
    """None without ``spec.strategy.fidelity``; ``spec`` has defaults filled (with_defaults)."""
    block = (spec.get("strategy") or {}).get(FIDELITY)
    if not block:
        return None
    epochs = spec["trial"]["training"]["epochs"]
    rungs = tuple(contract.rungs(block["minResource"], epochs, block["reductionFactor"]))
    return Plan(rungs=rungs, reduction_factor=block["reductionFactor"], goal=spec["objective"]["goal"],
                max_candidates=spec["budget"]["maxTrials"],
                cycle=tuple(contract.brackets(block["type"], len(rungs), block["reductionFactor"])))


def is_first_trial(p: Plan, candidate: int | None, rung: int) -> bool:
    """Whether a trial is its candidate's first (the result the strategy observes)."""
    return candidate is not None and rung == p.first_rung(candidate)


@dataclass
class _Ladder:
    results: list[dict]       # rung -> candidate -> reward (None: failed) of finished trials
    promoted: list[set]       # rung -> candidates with a trial at the rung above
    trials: dict              # (candidate, rung) -> trial name
    candidates: int           # candidates proposed (first trials)
    active: int               # trials in flight
    first_rung: dict          # candidate -> the first rung of its bracket


def _ladder(p: Plan, records: Sequence[TrialRecord]) -> _Ladder:
    ladder = _Ladder([{} for _ in p.rungs], [set() for _ in p.rungs], {}, 0, 0, {})
    for r in records:
        if r.candidate is None or not p.first_rung(r.candidate) <= r.rung < len(p.rungs):
            continue  # not a trial of this schedule (the spec's checks keep these out)
        # What a promotion continues: the trial itself, or the twin whose result answered it
        # (kubenas.experiment.twins): the twin trained the network and holds its checkpoint.
        ladder.trials[(r.candidate, r.rung)] = r.duplicate_of or r.name
        ladder.first_rung[r.candidate] = p.first_rung(r.candidate)
        if is_first_trial(p, r.candidate, r.rung):
            ladder.candidates = max(ladder.candidates, r.candidate + 1)
        else:
            ladder.promoted[r.rung - 1].add(r.candidate)
        if r.phase in TRIAL_ACTIVE:
            ladder.active += 1
        else:
            ladder.results[r.rung][r.candidate] = strategy_reward(r.phase, r.reward)
    return ladder


def next_rungs(spec: dict, records: Sequence[TrialRecord], slots: int, *,
               exhausted: bool = False) -> list[RungAssignment]:
    """Up to ``slots`` trials to start now, in order: due promotions first (from the highest
    rung down), then new candidates while fewer than ``maxTrials`` were proposed.

    ``exhausted``: the strategy has proposed every distinct network, so a new candidate
    could only repeat one already trained; then the best not-yet-promoted result of the
    highest rung below the top is promoted beyond the ``1 / reductionFactor`` quota
    before a repeat is asked for (what the benchmark's searches do, bench/budgeted.py;
    an experiment answers a repeat from its twin instead, kubenas.experiment.twins)."""
    p = plan(spec)
    if p is None:
        raise ValueError("next_rungs: the experiment has no strategy.fidelity")
    ladder = _ladder(p, records)
    jobs: list[RungAssignment] = []
    while len(jobs) < slots:
        promotion = contract.next_promotion(ladder.results, ladder.promoted, p.reduction_factor, p.goal,
                                            ladder.first_rung)
        if promotion is not None:
            candidate, rung = promotion
            ladder.promoted[rung - 1].add(candidate)
            jobs.append(RungAssignment(candidate, rung, p.rungs[rung], ladder.trials[(candidate, rung - 1)],
                                       p.rungs[rung - 1]))
        elif exhausted and (beyond := _beyond_quota(p, ladder)) is not None:
            candidate, rung = beyond
            ladder.promoted[rung].add(candidate)
            jobs.append(RungAssignment(candidate, rung + 1, p.rungs[rung + 1], ladder.trials[(candidate, rung)],
                                       p.rungs[rung]))
        elif ladder.candidates < p.max_candidates:
            first = p.first_rung(ladder.candidates)
            jobs.append(RungAssignment(ladder.candidates, first, p.rungs[first]))
            ladder.candidates += 1
        else:
            break
    return jobs


def _beyond_quota(p: Plan, ladder: _Ladder) -> tuple[int, int] | None:
    """(candidate, rung) of the best result not yet promoted, on the highest rung below the top."""
    for rung in range(len(p.rungs) - 2, -1, -1):
        candidate = contract.best_unpromoted(ladder.results[rung], ladder.promoted[rung], p.goal)
        if candidate is not None:
            return candidate, rung
    return None


def budget_spent(spec: dict, records: Sequence[TrialRecord]) -> bool:
    """Every candidate proposed, none in flight, and nothing left to promote."""
    p = plan(spec)
    ladder = _ladder(p, records)
    return (ladder.candidates >= p.max_candidates and ladder.active == 0
            and contract.next_promotion(ladder.results, ladder.promoted, p.reduction_factor, p.goal,
                                        ladder.first_rung) is None)


def spent_message(spec: dict, records: Sequence[TrialRecord]) -> str:
    p = plan(spec)
    ladder = _ladder(p, records)
    per_rung = ", ".join(f"{sum(1 for (_, r) in ladder.trials if r == k)} × {e} epoch{'s' * (e != 1)}"
                         for k, e in enumerate(p.rungs))
    how = "Hyperband" if len(p.cycle) > 1 else "successive halving"
    return f"{ladder.candidates} candidates (budget.maxTrials) by {how}; trials per rung: {per_rung}"


def trial_fields(trial_spec: dict, job: RungAssignment, plan_: Plan, resume_from: str | None) -> dict:
    """A trial spec (``kubenas.api.trials.build_trial_spec``) made into the job's: trained to
    the rung's epochs on the schedule of the last rung, saving a checkpoint below the last
    rung, continuing ``resume_from`` (where the checkpoint of ``job.resume_trial`` lies)."""
    trial = dict(trial_spec)
    trial["training"] = {**trial_spec["training"], "epochs": job.epochs, "scheduleEpochs": plan_.rungs[-1]}
    trial[FIDELITY] = job.field()
    trial["checkpoint"] = {"save": job.rung < len(plan_.rungs) - 1,
                           "resumeFrom": resume_from if job.resume_trial else None}
    return trial



def planned_trials(spec: dict) -> int:
    """How many trials successive halving runs when every rung fills: of the ``n``
    candidates of a bracket starting at rung ``b``, ``n // eta**(k - b)`` reach rung ``k``
    (a display total, not a limit)."""
    p = plan(spec)
    per_bracket: dict[int, int] = {}
    for candidate in range(p.max_candidates):
        per_bracket[p.first_rung(candidate)] = per_bracket.get(p.first_rung(candidate), 0) + 1
    return sum(n // p.reduction_factor ** (k - b) for b, n in per_bracket.items() for k in range(b, len(p.rungs)))


__all__ = ["FIDELITY", "Plan", "RungAssignment", "budget_spent", "is_first_trial", "next_rungs", "plan",
           "planned_trials", "spent_message", "trial_fields"]
