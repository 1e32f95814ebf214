"""Searches against a table under a training-compute budget: regret against cumulative
training-seconds, not only against trials (for bench/search_efficiency.py --peers).

Every searcher runs one trial at a time (parallel 1) and is charged the table's training
seconds of what it trains: a whole trial for full-fidelity searchers (the sum of the
epoch seconds on a curves table, ``trainSeconds`` otherwise); for ASHA and Hyperband
(the experiments' own plan, ``kubenas.experiment.plan.MultiFidelity``, over trial records
as an experiment keeps them) the epochs of each trial, a promotion resuming from its
checkpoint (only the added epochs are charged). A trace records after
every charge (trials so far, seconds so far, the incumbent's full-training validation
accuracy). For ASHA the incumbent is the best result at the highest rung reached, scored
by its full-training accuracy (what it would give if trained to the end), as benchmark
papers score an incumbent architecture.

A kubenas strategy runs as the product runs it (``kubenas.local.runner``, the operator):
a proposal of a network that a succeeded trial already trained (canonical hash) is a trial
answered by that *twin* (``kubenas.experiment.twins``): it is not trained, costs no
training-seconds, and the strategy observes the twin's result for it. Today's strategies
never propose a seen network before the space is spent (``repeats="avoid"``, the
product's behaviour); ``repeats="observe"`` (issue 26, item 4) lets the strategy propose
its draw as it is, seen or not, so it observes a repeat each time its model asks for one,
as the Optuna-with-cache peer is told every repeat.

Peers (bench/peers.py) propose encodings. "As-is", a repeat (an encoding whose network,
by kubenas' canonical hash, was trained before) is trained and charged again, as the
peer would on a real system; "behind a repeat cache" it is answered from the cache at no
charge and does not count as a trial.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from kubenas.contract import FAILED, SUCCEEDED
from kubenas.contract.fidelity import FIDELITY_DEFAULTS
from kubenas.experiment import TrialRecord
from kubenas.experiment.plan import MultiFidelity
from kubenas.strategies import make_strategy

from tabular import Table, encoding_string

logging.getLogger("kubenas.strategies.base").setLevel(logging.ERROR)  # repeats after exhaustion are expected


@dataclass
class Trace:
    label: str
    seed: int
    points: list = field(default_factory=list)  # (trials, seconds, incumbent val. accuracy or None)
    trials: int = 0
    seconds: float = 0.0
    best: float | None = None
    repeats: int = 0  # trials that trained a network (canonical hash) trained before
    answered: int = 0  # trials answered by their twin (not trained, no seconds charged)

    def charge(self, seconds: float, incumbent: float | None, trial: bool) -> None:
        self.trials += trial
        self.seconds += seconds
        self.best = incumbent
        self.points.append((self.trials, self.seconds, incumbent))

    def after_trials(self, n: int) -> float | None:
        best = None
        for trials, _, incumbent in self.points:
            if trials > n:
                break
            best = incumbent
        return best

    def after_seconds(self, budget: float) -> float | None:
        best = None
        for _, seconds, incumbent in self.points:
            if seconds > budget:
                break
            best = incumbent
        return best


def full_seconds(row: dict) -> float:
    return sum(row["epochSeconds"]) if row.get("epochSeconds") else row["trainSeconds"]


def _better(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _done(trace: Trace, max_trials: int, max_seconds: float) -> bool:
    return trace.trials >= max_trials and trace.seconds >= max_seconds


REPEATS = ("avoid", "observe")  # how a kubenas strategy meets a network it has seen (run_strategy)


def propose_repeats(strategy) -> None:
    """Make ``strategy`` propose its own draw even when it is a seen network (``repeats="observe"``).

    Today ``Strategy._unseen_candidate`` redraws a network the strategy has proposed or observed
    (up to ``MAX_RESAMPLES`` draws, then a walk to an unseen neighbour), so a repeat is never
    proposed before the space is spent. Here that redraw is off: the first draw is proposed as it
    is, and a repeat goes to the runner, whose twin answers it. Everything else is the strategy's
    own model (TPE still scores its candidates and prefers an unseen one among them; evolution's
    tournament and mutation are unchanged); constraints still hold (the bench tables have none).
    Bench-only: the product is not changed by this.
    """
    base = type(strategy)

    class ObservingRepeats(base):
        def _unseen_candidate(self, index, rng):
            candidate = self._candidate(index, rng)
            return candidate if self.is_feasible(candidate) else self._any_feasible(candidate, rng)

    ObservingRepeats.__name__ = f"{base.__name__}ObservingRepeats"
    strategy.__class__ = ObservingRepeats


def run_strategy(table: Table, label: str, spec: dict, max_trials: int, max_seconds: float,
                 hard_cap: int = 5000, repeats: str = "avoid", max_answered: int = 2000) -> Trace:
    """A kubenas strategy at full fidelity until both ``max_trials`` and ``max_seconds`` are spent.

    A proposal of a network a succeeded trial trained is answered by that twin: observed with
    the twin's reward, counted as a trial, charged nothing (as the product does). The run ends
    early when the strategy has proposed every network (nothing is left to train) or after
    ``max_answered`` twin answers (a converged search that only repeats; the peer's repeat
    cache has the same kind of cap).
    """
    if repeats not in REPEATS:
        raise ValueError(f"repeats must be one of {', '.join(REPEATS)}, got {repeats!r}")
    strategy = make_strategy(spec, table.space, "maximize")
    if repeats == "observe":
        propose_repeats(strategy)
    trace = Trace(label, spec.get("seed", 0))
    index, trained = 0, set()
    twins: dict[str, float] = {}  # canonical hash -> reward of the succeeded trial that trained it
    while not _done(trace, max_trials, max_seconds) and index < hard_cap:
        candidate = strategy.propose(index)
        key = table.space.candidate_hash(candidate)
        if key in twins:  # answered by its twin (kubenas.experiment.twins): not trained
            strategy.observe(index, candidate, twins[key])
            trace.answered += 1
            trace.charge(0.0, trace.best, trial=True)
            index += 1
            if strategy.exhausted or trace.answered >= max_answered:
                break
            continue
        trace.repeats += key in trained  # a failed twin answers nothing: trained again
        trained.add(key)
        row = table.row(candidate)
        reward = row["valAccuracy"]
        if reward is not None:
            twins.setdefault(key, reward)
        strategy.observe(index, candidate, reward)
        trace.charge(full_seconds(row), _better(trace.best, reward), trial=True)
        index += 1
    return trace


def run_asha(table: Table, label: str, spec: dict, fidelity: dict, max_seconds: float,
             hard_cap: int = 20000) -> Trace:
    """ASHA or Hyperband (``fidelity``, a ``strategy.fidelity`` block) over a kubenas strategy on
    a curves table, until ``max_seconds`` are spent, one trial at a time; a trial is a new
    candidate, a promotion is not. The plan is an experiment's with ``trial.training.epochs``
    the table's; once the strategy has proposed every network, the plan promotes beyond the
    quota before it asks for a repeat (``fidelity.next_rungs``)."""
    strategy = make_strategy(spec, table.space, "maximize")
    plan = MultiFidelity({"strategy": {**spec, "fidelity": {**FIDELITY_DEFAULTS, **fidelity}},
                          "objective": {"goal": "maximize"},
                          "trial": {"training": {"epochs": table.meta["training"]["epochs"]}},
                          "budget": {"maxTrials": hard_cap, "parallelTrials": 1, "maxFailedTrials": hard_cap}},
                         exhausted=lambda: strategy.exhausted)
    trace = Trace(label, spec.get("seed", 0))
    trained, records, candidates = set(), [], {}
    for index in range(hard_cap):
        if trace.seconds >= max_seconds:
            break
        nxt = plan.next_trials(records, 1)[0]
        rung = nxt.detail
        if nxt.proposes is not None:  # a new candidate (at its bracket's first rung), not a promotion
            candidates[rung.candidate] = strategy.propose(nxt.proposes)
            key = table.space.candidate_hash(candidates[rung.candidate])
            trace.repeats += key in trained
            trained.add(key)
        row = table.row(candidates[rung.candidate])
        if row["curve"] is None:
            raise ValueError("ASHA needs a table with per-epoch curves (bench/generate_curves.py)")
        reward = row["curve"][rung.epochs - 1] if row["valAccuracy"] is not None else None
        record = TrialRecord(name=f"t-{index}", index=index, phase=FAILED if reward is None else SUCCEEDED,
                             reward=reward, candidate=rung.candidate, rung=rung.rung)
        records.append(record)
        if plan.strategy_index(record) is not None:
            strategy.observe(rung.candidate, candidates[rung.candidate], reward)
        best = _incumbent(records)
        incumbent = table.row(candidates[best])["valAccuracy"] if best is not None else None
        trace.charge(sum(row["epochSeconds"][rung.resume_epochs:rung.epochs]), incumbent,
                     trial=nxt.proposes is not None)
    return trace


def _incumbent(records: list) -> int | None:
    """The candidate with the best result at the highest rung that has one (ties: the lower candidate)."""
    top = max((r.rung for r in records if r.reward is not None), default=None)
    if top is None:
        return None
    return min((-r.reward, r.candidate) for r in records if r.rung == top and r.reward is not None)[1]


def run_peer(table: Table, label: str, peer_class, seed: int, cache: bool, max_trials: int, max_seconds: float,
             hard_cap: int = 5000, max_cache_hits: int = 20000) -> Trace:
    choices = [len(c) for _, c in table.space.decisions()]
    peer = peer_class(choices, seed)
    trace = Trace(label, seed)
    known: dict[str, float | None] = {}
    hits = 0
    while not _done(trace, max_trials, max_seconds) and trace.trials < hard_cap:
        encoding = peer.ask()
        candidate = table.space.decode(list(encoding))
        key = table.space.candidate_hash(candidate)
        if cache and key in known:
            peer.tell(encoding, known[key])
            hits += 1
            if hits >= max_cache_hits:  # the peer only proposes what it has seen: it has converged
                break
            continue
        row = table.row(candidate)
        reward = row["valAccuracy"]
        trace.repeats += key in known
        known[key] = reward
        peer.tell(encoding, reward)
        trace.charge(full_seconds(row), _better(trace.best, reward), trial=True)
    return trace


# -- one-shot (issue 26): the product's plan over a supernet's recorded scores -------------

@dataclass(frozen=True)
class SupernetScores:
    """One trained supernet's inherited-weight score of every architecture of a table
    (``bench/oneshot_rank.py --scores-out``) and what it cost, measured in its process.

    Charged in the table's training-seconds: the supernet's training as
    ``supernetEpochs / table epochs`` stand-alone trainings of a mean architecture
    (uniform path sampling trains one uniformly drawn path per batch, so a supernet step
    costs a uniformly drawn architecture's step on average, and the supernet's epoch has
    the trial's batches); candidate scoring by the same measured-to-table conversion
    (``seconds_per_candidate`` measured x the table-seconds the supernet is charged per
    second it measured), so the ratio scoring : supernet training is the one measured in
    the same process."""

    seed: int
    scores: dict  # encoding -> inherited-weight validation accuracy (None: unscored)
    supernet_seconds: float  # in the table's training-seconds
    seconds_per_candidate: float  # in the table's training-seconds

    @classmethod
    def from_dump(cls, dump: dict, table: Table) -> "SupernetScores":
        """``dump``: an ``oneshot_rank.py --scores-out`` file's content for ``table``."""
        missing = [e for e in table.rows if e not in dump["scores"]]
        if missing:
            raise ValueError(f"the supernet scores (seed {dump['seed']}) lack {len(missing)} of the table's "
                             f"{len(table.rows)} architectures (e.g. {missing[0]}): made for another table?")
        mean_trial = sum(full_seconds(r) for r in table.rows.values()) / len(table.rows)
        charged = mean_trial * dump["supernetEpochs"] / table.meta["training"]["epochs"]
        per_measured = charged / dump["supernetTrainSeconds"]
        return cls(int(dump["seed"]), dict(dump["scores"]), charged, dump["secondsPerCandidate"] * per_measured)


def run_oneshot(table: Table, label: str, spec: dict, supernet: SupernetScores, oneshot: dict | None = None) -> Trace:
    """A one-shot experiment (``spec.oneShot``, default settings unless ``oneshot`` says
    otherwise) driven by the product's own plan, ``kubenas.experiment.plan.OneShot``, over
    trial records as an experiment keeps them, one trial at a time (parallel 1), with
    the strategy ``spec`` (make_strategy) proposing each score trial's candidates as the
    local runner does and observing their scores (``plan.observations``).

    The supernet trial and the score trials are looked up, not run: the supernet is
    ``supernet``'s (trained once by ``bench/oneshot_rank.py``, whatever the bench seed),
    a candidate's score is its inherited-weight accuracy there. Charges: the supernet
    trial ``supernet.supernet_seconds``, a score trial ``supernet.seconds_per_candidate``
    per candidate, a retrain its table row's training seconds (a network a succeeded
    retrain already trained is answered by that twin at no charge, as the product does).
    The incumbent is the best retrained trial's validation accuracy (the table's
    full-training result), None until a retrain succeeded; the run ends with the plan's
    outcome, so the trace stays flat after it."""
    from kubenas.experiment import oneshot as plan_oneshot
    from kubenas.experiment.plan import OneShot

    settings = plan_oneshot.settings(oneshot)
    max_trials = plan_oneshot.planned_trials(settings)
    plan = OneShot({"oneShot": settings, "searchSpace": table.meta["searchSpace"], "objective": {"goal": "maximize"},
                    "strategy": spec, "budget": {"maxTrials": max_trials, "parallelTrials": 1,
                                                 "maxFailedTrials": max_trials}})
    strategy = make_strategy(spec, table.space, "maximize")
    trace = Trace(label, spec.get("seed", 0))
    records: list[TrialRecord] = []
    specs: dict[str, dict] = {}  # trial name -> its one-shot spec, as trial.json keeps it
    twins: dict[str, float] = {}
    while True:
        due = plan.next_trials(records, 1)
        if not due:
            break
        nxt = due[0]
        name, kind = f"t-{nxt.index}", nxt.detail.kind
        proposals = [strategy.propose(i) for i in nxt.batch]
        specs[name] = plan.trial_spec(nxt, {}, None, nxt.resume, proposals)
        if kind == plan_oneshot.SUPERNET:
            record = TrialRecord(name=name, index=nxt.index, phase=SUCCEEDED, oneshot=kind)
            trace.charge(supernet.supernet_seconds, trace.best, trial=True)
        elif kind == plan_oneshot.SCORE:
            scores = [supernet.scores.get(encoding_string(table.space.encode(p))) for p in proposals]
            record = TrialRecord(name=name, index=nxt.index, phase=SUCCEEDED, oneshot=kind, batch=nxt.batch,
                                 scores=[float("nan") if s is None else float(s) for s in scores])
            for index, candidate, score, _ in plan.observations(record, specs[name], None):
                strategy.observe(index, candidate, score)
            trace.charge(len(nxt.batch) * supernet.seconds_per_candidate, trace.best, trial=True)
        else:  # a retrain: the candidate of the score trial that scored it, trained stand-alone
            candidate = plan.copied_candidate(nxt, specs[nxt.copies])
            key = table.space.candidate_hash(candidate)
            row = table.row(candidate)
            answered = key in twins
            reward = twins[key] if answered else row["valAccuracy"]
            if reward is not None and not answered:
                twins[key] = reward
            trace.answered += answered
            record = TrialRecord(name=name, index=nxt.index, phase=FAILED if reward is None else SUCCEEDED,
                                 reward=reward, oneshot=kind, candidate=nxt.candidate)
            trace.charge(0.0 if answered else full_seconds(row), _better(trace.best, reward), trial=True)
        records.append(record)
    outcome = plan.outcome(records, 0.0)
    if outcome is None or outcome.phase != SUCCEEDED:
        logging.getLogger(__name__).warning("one-shot %s seed %s ended %s", label, trace.seed,
                                            outcome and outcome.message)
    return trace
