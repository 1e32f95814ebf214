"""The experiment plan: the one shape every experiment mode takes, over any strategy.

A strategy (``kubenas.strategies``) proposes candidates and observes results, as an
Optuna sampler does; the plan decides around it, as a Ray Tune ``TrialScheduler`` does:

- ``next_trials(records, slots)``: which trials to start now (a proposal of the
  strategy, or a trial that takes the network of an existing one), under which index;
- ``strategy_index(record)``: what the strategy observes (under which of its indices),
  or None for a trial it never sees; ``proposals(record, spec)`` and
  ``observations(record, spec, metrics)``: the same as lists, for a plan whose trial holds
  several of the strategy's candidates (one-shot scoring);
- ``may_stop_early(record)``: whether a running trial may be stopped by the median rule;
- ``outcome(records, elapsed)``: when and how the experiment ends;
- ``trial_spec(...)``: the spec of a trial it asked for, from the plain one;
- ``aggregates(records)``: candidates summarised over several runs (the best trial's).

Records are every trial's (``TrialRecord``), finished or in flight. The local runner,
the controller and the operator call only these, so a mode decides alike everywhere.
The modes are implementations that compose: ``Search`` (one trial per candidate),
``MultiFidelity`` (``spec.strategy.fidelity``: successive halving, kubenas.experiment.fidelity)
and ``Reevaluation`` (``spec.final``: the best candidates again with more seeds,
kubenas.experiment.final), which wraps the search plan it follows, and ``OneShot``
(``spec.oneShot``: a weight-sharing supernet, the strategy's candidates scored with its
weights in batches, the best retrained, kubenas.experiment.oneshot). A new mode is one more
implementation and an entry in :func:`plan_for` (docs/architecture.md, "Adding a mode").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from kubenas.contract import TRIAL_ACTIVE

from kubenas.contract import DEADLINE_EXCEEDED, MAX_TRIALS_REACHED, NO_TRIAL_SUCCEEDED, STOPPED, SUCCEEDED

from . import fidelity, final, oneshot
from .outcome import Outcome, experiment_outcome, failed_outcome
from .record import ONESHOT, REEVALUATION_OF, TrialRecord, candidate, strategy_reward


@dataclass(frozen=True)
class NextTrial:
    """A trial the plan asks for. Its candidate is the strategy's proposal ``proposes``
    (the strategy's index), or else the network of trial ``copies`` (what it trains
    again). ``resume``: the trial whose checkpoint it continues. ``candidate``: the
    strategy index it belongs to when the plan tracks candidates across trials (None
    otherwise). ``detail``: the mode's own description of it (the plan reads it back).
    ``batch``: the strategy's indices proposed together into this one trial (the caller
    proposes each and hands the proposals to ``trial_spec``); ``given``: the candidate of
    a trial that is neither a proposal nor a copy (a one-shot supernet's skeleton)."""

    index: int
    proposes: int | None = None
    copies: str | None = None
    resume: str | None = None
    candidate: int | None = None
    detail: object = None
    batch: tuple[int, ...] = ()
    given: dict | None = None


def _start_index(records: Sequence[TrialRecord]) -> int:
    """New indices follow the highest existing one, so a retried create hits the same name."""
    indices = [int(r.index) for r in records if r.index is not None]
    return max(indices) + 1 if indices else 0


def _in_flight(records: Sequence[TrialRecord]) -> int:
    return sum(1 for r in records if r.phase in TRIAL_ACTIVE)


class ExperimentPlan:
    """One trial per proposal, until ``budget.maxTrials`` have finished (the default mode)."""

    def __init__(self, spec: dict):
        self.spec = spec  # defaults filled (kubenas.api.defaults.with_defaults)

    def outcome(self, records: Sequence[TrialRecord], elapsed_seconds: float) -> Outcome | None:
        return experiment_outcome(self.spec, records, elapsed_seconds)

    def next_trials(self, records: Sequence[TrialRecord], slots: int | None = None,
                    elapsed_seconds: float = 0.0) -> list[NextTrial]:
        """Up to ``slots`` (default: the free ``parallelTrials``) trials to start now."""
        budget = self.spec["budget"]
        in_flight = _in_flight(records)
        room = min(int(budget["parallelTrials"]) - in_flight,
                   int(budget["maxTrials"]) - (len(records) - in_flight) - in_flight)
        if slots is not None:
            room = min(room, slots)
        if room <= 0 or self.outcome(records, elapsed_seconds) is not None:
            return []
        start = _start_index(records)
        return [NextTrial(index=i, proposes=i) for i in range(start, start + room)]

    def strategy_index(self, record: TrialRecord) -> int | None:
        return record.index

    def proposals(self, record: TrialRecord, trial_spec: dict) -> list[tuple[int, dict]]:
        """The strategy's proposals a trial holds, as (strategy index, candidate): what a
        rebuilt strategy registers for it (``trial_spec``: its spec, trial.json or row)."""
        index = self.strategy_index(record)
        return [] if index is None else [(index, candidate(trial_spec))]

    def observations(self, record: TrialRecord, trial_spec: dict,
                     metrics: dict | None) -> list[tuple[int, dict, float | None, dict | None]]:
        """What the strategy observes of a finished trial, as (strategy index, candidate,
        reward or None, metrics); [] while it runs or when the strategy never sees it."""
        index = self.strategy_index(record)
        if index is None or not record.finished:
            return []
        return [(index, candidate(trial_spec), strategy_reward(record.phase, record.reward), metrics)]

    def copied_candidate(self, trial: NextTrial, source_spec: dict) -> dict | None:
        """The candidate ``trial`` trains again, from the spec (trial.json, row) of
        ``trial.copies``; None: that trial does not hold it."""
        return candidate(source_spec)

    def may_stop_early(self, record: TrialRecord) -> bool:
        return True

    def trial_spec(self, trial: NextTrial, base: dict, source: dict | None, resume_from: str | None,
                   proposals: Sequence[dict] = ()) -> dict:
        """The spec of ``trial`` from ``base`` (``build_trial_spec`` of its candidate);
        ``source``: the row of the trial it copies; ``resume_from``: where the checkpoint of
        ``trial.resume`` lies (None: there is none to continue); ``proposals``: the
        strategy's candidates for ``trial.batch``, in order."""
        return base

    def planned_trials(self) -> int:
        """The trials the experiment runs when all goes to plan (a display total)."""
        return self.spec["budget"]["maxTrials"]

    def aggregates(self, records: Sequence[TrialRecord]) -> list[final.Aggregate]:
        """Candidates summarised over several runs, best first; [] where each ran once."""
        return []


Search = ExperimentPlan


class MultiFidelity(ExperimentPlan):
    """``spec.strategy.fidelity``: each trial trains one candidate to one rung; a promotion
    continues the rung below. The strategy observes each candidate's first rung.
    ``exhausted``: whether the strategy has proposed every distinct network (then results
    are promoted beyond the quota before a repeat is asked for, ``fidelity.next_rungs``);
    experiments leave it out, as a twin answers their repeats."""

    def __init__(self, spec: dict, exhausted: Callable[[], bool] | None = None):
        super().__init__(spec)
        self.ladder = fidelity.plan(spec)
        self.exhausted = exhausted

    def next_trials(self, records, slots=None, elapsed_seconds=0.0):
        room = int(self.spec["budget"]["parallelTrials"]) - _in_flight(records)
        if slots is not None:
            room = min(room, slots)
        if room <= 0 or self.outcome(records, elapsed_seconds) is not None:
            return []
        start = _start_index(records)
        return [NextTrial(index=start + k, proposes=rung.candidate if rung.is_new else None,
                          copies=rung.resume_trial, resume=rung.resume_trial, candidate=rung.candidate, detail=rung)
                for k, rung in enumerate(fidelity.next_rungs(self.spec, records, room,
                                                             exhausted=bool(self.exhausted and self.exhausted())))]

    def strategy_index(self, record):
        return record.candidate if fidelity.is_first_trial(self.ladder, record.candidate, record.rung) else None

    def trial_spec(self, trial, base, source, resume_from, proposals=()):
        return fidelity.trial_fields(base, trial.detail, self.ladder, resume_from if trial.resume else None)

    def planned_trials(self):
        return fidelity.planned_trials(self.spec)


class Reevaluation(ExperimentPlan):
    """``spec.final``: the search plan ``search`` first (one trial per candidate, or
    multi-fidelity); once it is over, the ``topK`` best candidates trained the full epochs
    again with ``seeds - 1`` more training seeds (kubenas.experiment.final). The strategy
    never sees a re-evaluation, and the median rule never stops one: its full run is what
    the candidate's mean needs."""

    def __init__(self, spec: dict, search: ExperimentPlan):
        super().__init__(spec)
        self.search = search

    _is_search = staticmethod(final.is_search)

    def outcome(self, records, elapsed_seconds):
        return final.outcome(self.spec, records, elapsed_seconds, searched=self.search.outcome)

    def next_trials(self, records, slots=None, elapsed_seconds=0.0):
        records = list(records)
        searching = self.search.next_trials([r for r in records if self._is_search(r)], slots, elapsed_seconds)
        if searching or self.outcome(records, elapsed_seconds) is not None:
            return searching
        room = int(self.spec["budget"]["parallelTrials"]) - _in_flight(records)
        if slots is not None:
            room = min(room, slots)
        existing = {r.index for r in records}
        due = [p for p in final.reevaluation_plan(self.spec, final.rows_of(records)) if p.index not in existing]
        return [NextTrial(index=p.index, copies=p.of, detail=p) for p in due[:max(room, 0)]]

    def strategy_index(self, record):
        return self.search.strategy_index(record) if self._is_search(record) else None

    def may_stop_early(self, record):
        return self._is_search(record) and self.search.may_stop_early(record)

    def trial_spec(self, trial, base, source, resume_from, proposals=()):
        if not isinstance(trial.detail, final.Reevaluation):
            return self.search.trial_spec(trial, base, source, resume_from, proposals)
        # The seed the original trial ran with (a searched seed is in its hyperparameters).
        seed = final.trial_seed(self.spec, source or {}) + trial.detail.offset
        return final.reevaluation_trial(base, final.Reevaluation(trial.index, trial.detail.of, seed,
                                                                 trial.detail.offset))

    def planned_trials(self):
        extra = self.spec["final"]["topK"] * (self.spec["final"]["seeds"] - 1)
        return self.search.planned_trials() + extra

    def aggregates(self, records):
        return final.aggregates(self.spec, final.rows_of(records))


class OneShot(ExperimentPlan):
    """``spec.oneShot`` (kubenas.experiment.oneshot, docs/oneshot.md): one trial trains a
    weight-sharing supernet of the cell or chain space; then the strategy's candidates ``0 ..
    candidates-1`` are scored with its inherited weights, ``candidatesPerTrial`` to a
    trial (each score is what the strategy observes of that candidate, kept in the score
    trial's ``status.scores``); then the ``topK`` best-scored are retrained stand-alone as
    ordinary trials, and the experiment's best is the best of those. The strategy sees
    only the scores; the median rule may stop only a retrain."""

    def __init__(self, spec: dict):
        super().__init__(spec)
        self.settings = oneshot.settings(spec[oneshot.SPEC_KEY])
        self.space = oneshot.supernet_space(spec["searchSpace"])
        self.goal = spec["objective"]["goal"]

    def _views(self, records: Sequence[TrialRecord]) -> list[oneshot.OneShotTrial]:
        return [v for v in map(oneshot.view, records) if v is not None]

    def outcome(self, records, elapsed_seconds):
        failed = failed_outcome(self.spec, records)
        if failed is not None:
            return failed
        decided = oneshot.outcome(self.settings, self._views(records), self.goal, self.spec["budget"]["maxTrials"])
        if decided is not None:
            phase, message, _ = decided
            return Outcome(phase, MAX_TRIALS_REACHED if phase == SUCCEEDED else NO_TRIAL_SUCCEEDED, message)
        deadline = self.spec["budget"].get("deadlineSeconds")
        if deadline is not None and elapsed_seconds >= deadline:
            return Outcome(STOPPED, DEADLINE_EXCEEDED, f"ran {elapsed_seconds:.0f}s, budget.deadlineSeconds is {deadline}")
        return None

    def next_trials(self, records, slots=None, elapsed_seconds=0.0):
        records = list(records)
        budget = self.spec["budget"]
        room = min(int(budget["parallelTrials"]) - _in_flight(records), int(budget["maxTrials"]) - len(records))
        if slots is not None:
            room = min(room, slots)
        if room <= 0 or self.outcome(records, elapsed_seconds) is not None:
            return []
        views = self._views(records)
        supernet = oneshot.supernet_trial(views)
        skeleton = {"architecture": oneshot.representative(self.space), "hyperparameters": {}}
        due = []
        for start in oneshot.next_trials(self.settings, views, room, self.goal, int(budget["maxTrials"])):
            if start.kind == oneshot.SUPERNET:
                due.append(NextTrial(index=start.index, given=skeleton, detail=start))
            elif start.kind == oneshot.SCORE:
                due.append(NextTrial(index=start.index, batch=start.candidates, given=skeleton,
                                     resume=supernet.name, detail=start))
            else:
                c = start.candidates[0]
                due.append(NextTrial(index=start.index, copies=oneshot.scored_in(views, c).name, candidate=c,
                                     detail=start))
        return due

    def strategy_index(self, record):
        return None  # a trial holds several candidates or none: proposals() and observations() say which

    def proposals(self, record, trial_spec):
        if record.oneshot != oneshot.SCORE:
            return []
        field = trial_spec.get(ONESHOT) or {}
        return [(i, {"architecture": a, "hyperparameters": {}})
                for i, a in zip(field.get("indices") or [], field.get("candidates") or [])]

    def observations(self, record, trial_spec, metrics):
        view = oneshot.view(record)
        if view is None or view.kind != oneshot.SCORE or view.phase != SUCCEEDED:
            return []  # a failed score trial's batch is retried with the same candidates: nothing observed
        scores = list(view.scores) + [None] * (len(view.candidates) - len(view.scores))
        return [(i, c, score, None) for (i, c), score in zip(self.proposals(record, trial_spec), scores)]

    def copied_candidate(self, trial, source_spec):
        return oneshot.candidate_of(source_spec, trial.candidate)

    def may_stop_early(self, record):
        return record.oneshot == oneshot.RETRAIN

    def trial_spec(self, trial, base, source, resume_from, proposals=()):
        start = trial.detail
        if start.kind == oneshot.SUPERNET:
            fields = oneshot.supernet_fields(self.settings, self.space)
        elif start.kind == oneshot.SCORE:
            fields = oneshot.score_fields(self.settings, self.space, start.candidates,
                                          [p["architecture"] for p in proposals], resume_from)
        else:
            fields = oneshot.retrain_fields(start.candidates[0])
        return {**base, ONESHOT: fields}

    def planned_trials(self):
        return oneshot.planned_trials(self.settings)


def plan_for(spec: dict) -> ExperimentPlan:
    """The plan of an experiment (``spec`` with defaults filled): one-shot with
    ``spec.oneShot``; else its search, multi-fidelity with ``strategy.fidelity``, followed
    by re-evaluation with ``spec.final``."""
    if spec.get(oneshot.SPEC_KEY) is not None:
        return OneShot(spec)
    plan = MultiFidelity(spec) if (spec.get("strategy") or {}).get(fidelity.FIDELITY) else Search(spec)
    return Reevaluation(spec, plan) if spec.get("final") else plan


def row_marks(trial_spec: dict) -> dict:
    """What a trial's spec says about its place in the plan, as its trials.jsonl row keeps
    it: a re-evaluation's original and seed; a multi-fidelity trial's candidate, rung and
    the epochs it was trained to; a one-shot trial's kind and candidates (not the space)."""
    marks = {}
    if trial_spec.get(ONESHOT):
        marks[ONESHOT] = {k: v for k, v in trial_spec[ONESHOT].items() if k != "space"}
    if trial_spec.get(REEVALUATION_OF):
        marks.update({REEVALUATION_OF: trial_spec[REEVALUATION_OF], "seed": trial_spec["training"]["seed"]})
    if trial_spec.get(fidelity.FIDELITY):
        marks[fidelity.FIDELITY] = {**trial_spec[fidelity.FIDELITY], "epochs": trial_spec["training"]["epochs"]}
    return marks


__all__ = ["ExperimentPlan", "MultiFidelity", "NextTrial", "OneShot", "Reevaluation", "Search", "plan_for",
           "row_marks"]
