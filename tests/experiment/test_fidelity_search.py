"""Successive halving over a real strategy, one trial at a time (as bench/budgeted.py drives
it): the experiment plan (kubenas.experiment.plan.MultiFidelity) promotes the top third of a
rung, continues the rung below, feeds the strategy each candidate's first rung only, keeps
Hyperband's brackets apart and, with a spent space, promotes beyond the quota before a repeat."""
from __future__ import annotations

import pytest

from kubenas.contract import FAILED, SUCCEEDED
from kubenas.contract.fidelity import bracket_cycle
from kubenas.experiment import TrialRecord
from kubenas.experiment.plan import MultiFidelity
from kubenas.space import SearchSpace
from kubenas.strategies import make_strategy

SPACE = {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_3x3"],
                                  "channels": 4, "stages": 1}}
SMALL = {"type": "cell", "cell": {"nodes": 3, "operations": ["none", "skip_connect", "conv_3x3"],
                                  "channels": 4, "stages": 1}}
RUNGS = (1, 3, 9)


class Search:
    """A strategy under the plan, each trial reported as soon as it is started."""

    def __init__(self, kind="random", fidelity="asha", space=SPACE, seed=1, exhausted=False, parallel=1):
        self.space = SearchSpace.from_spec(space)
        self.strategy = make_strategy({"type": kind, "seed": seed}, self.space)
        spec = {"strategy": {"type": kind, "fidelity": {"type": fidelity, "minResource": 1, "reductionFactor": 3}},
                "objective": {"goal": "maximize"}, "trial": {"training": {"epochs": 9}},
                "budget": {"maxTrials": 10 ** 6, "parallelTrials": parallel, "maxFailedTrials": 10 ** 6}}
        self.plan = MultiFidelity(spec, exhausted=(lambda: self.strategy.exhausted) if exhausted else None)
        self.records: list[TrialRecord] = []
        self.candidates: dict[int, dict] = {}

    def next(self, slots: int = 1):
        started = self.plan.next_trials(self.records, slots)
        for nxt in started:
            if nxt.proposes is not None:
                self.candidates[nxt.candidate] = self.strategy.propose(nxt.proposes)
        return started[0] if slots == 1 else started

    def report(self, nxt, reward: float | None) -> TrialRecord:
        record = TrialRecord(name=f"t-{nxt.index}", index=nxt.index, phase=SUCCEEDED if reward is not None else FAILED,
                             reward=reward, candidate=nxt.candidate, rung=nxt.detail.rung)
        self.records.append(record)
        if self.plan.strategy_index(record) is not None:
            self.strategy.observe(nxt.candidate, self.candidates[nxt.candidate], reward)
        return record

    def results(self, rung: int) -> dict:
        return {r.candidate: r.reward for r in self.records if r.rung == rung}


def reward(search: Search, nxt) -> float:
    """A landscape with a clear order: more conv edges is better, longer training is better."""
    ops = [op for row in search.candidates[nxt.candidate]["architecture"]["edges"] for op in row]
    return 0.1 * ops.count("conv_3x3") + 0.01 * nxt.detail.epochs


def test_the_top_third_of_a_rung_is_promoted_and_continues_where_it_stopped():
    search = Search(parallel=3)
    first = search.next(3)
    assert [(t.candidate, t.detail.rung, t.detail.epochs, t.resume) for t in first] == \
        [(0, 0, 1, None), (1, 0, 1, None), (2, 0, 1, None)]
    for t in first:
        search.report(t, reward(search, t))
    best = max(first, key=lambda t: (reward(search, t), -t.candidate))
    promotion = search.next()
    assert (promotion.candidate, promotion.detail.rung, promotion.detail.epochs, promotion.detail.resume_epochs) == \
        (best.candidate, 1, 3, 1)
    assert promotion.proposes is None and promotion.copies == promotion.resume == f"t-{best.index}"
    search.report(promotion, reward(search, promotion))
    assert search.next().detail.rung == 0  # one third of three results: nothing more to promote yet


def test_only_first_rung_results_feed_the_strategy_and_failures_are_never_promoted():
    search = Search("evolution")
    for _ in range(60):
        nxt = search.next()
        search.report(nxt, None if nxt.candidate % 5 == 0 else reward(search, nxt))
    assert search.strategy.state_dict()["observed"] == sorted(search.results(0))
    promoted = {r.candidate for r in search.records if r.rung > 0}
    assert promoted and not any(c % 5 == 0 for c in promoted)
    assert search.results(2)  # something reached the top rung


def test_hyperband_gives_every_bracket_its_share_of_new_candidates():
    cycle = bracket_cycle(3, 3)  # rungs 1, 3, 9: brackets starting at each rung
    assert [cycle.count(b) for b in range(3)] == [9, 5, 3]  # Li et al. 2018: ceil(3/(s+1) * 3^s), s = 2, 1, 0
    assert cycle[:4] == [0, 1, 0, 2]  # interleaved, not one bracket after another
    assert bracket_cycle(1, 3) == [0]  # one rung: plain full-fidelity search


def test_hyperband_trains_a_new_candidate_to_its_brackets_first_rung_and_promotes_within_the_bracket():
    search = Search("evolution", fidelity="hyperband")
    cycle = bracket_cycle(3, 3)
    for _ in range(120):
        nxt = search.next()
        bracket = cycle[nxt.candidate % len(cycle)]
        if nxt.proposes is not None:  # a new candidate: straight to its bracket's first rung
            assert nxt.detail.rung == bracket and nxt.detail.epochs == RUNGS[bracket]
        else:  # a promotion: from the rung below, within the candidate's own bracket
            assert nxt.detail.resume_epochs == RUNGS[nxt.detail.rung - 1] and nxt.detail.rung > bracket
        search.report(nxt, reward(search, nxt))
    # the strategy observed each candidate once, at its bracket's first rung
    firsts = {r.candidate: r.reward for r in search.records if r.rung == cycle[r.candidate % len(cycle)]}
    assert search.strategy.state_dict()["observed"] == sorted(firsts)
    assert all(firsts[c] == f for c, _, f in search.strategy.population)
    assert {cycle[c % len(cycle)] for c in search.results(2)} == {0, 1, 2}  # every bracket reached the top


@pytest.mark.parametrize("kind", ["asha", "hyperband"])
def test_a_spent_space_is_never_trained_twice_at_the_first_rung_while_anything_can_be_promoted(kind):
    search = Search(fidelity=kind, space=SMALL, seed=2, exhausted=True)
    networks = search.space.network_count()
    started = []
    while len(search.results(2)) < networks:  # until every network has been trained to the top rung
        nxt = search.next()
        if nxt.proposes is not None:
            started.append(search.space.candidate_hash(search.candidates[nxt.candidate]))
        search.report(nxt, reward(search, nxt))
        assert len(search.records) < 10 * networks
    assert len(started) == len(set(started)) == networks  # each network started once, none repeated
    # with nothing left to promote, the strategy may repeat (as a full-fidelity search would)
    assert search.next().proposes is not None
    # an experiment (no exhausted hook) asks for a new candidate at once: its twin answers it
    plain = Search(fidelity=kind, space=SMALL, seed=2)
    while not plain.strategy.exhausted:
        nxt = plain.next()
        plain.report(nxt, reward(plain, nxt))
    assert plain.next().proposes is not None
