"""Every strategy on the general ``parameters`` space: runs to budget with valid, new
candidates, resumes exactly (rebuild from trials and a JSON state dict), and REINFORCE
emits conditional, repeated and continuous decisions."""
from __future__ import annotations

import json

import pytest

from kubenas.strategies import make_strategy, rebuild

KINDS = ["random", "evolution", "reinforce"]
SPECS = {
    "random": {"type": "random", "seed": 5},
    "evolution": {"type": "evolution", "seed": 5, "evolution": {"populationSize": 8, "sampleSize": 3,
                                                                 "crossoverProbability": 0.5}},
    "reinforce": {"type": "reinforce", "seed": 5, "reinforce": {"learningRate": 0.05}},
}
BUDGET = 40


@pytest.mark.parametrize("kind", KINDS)
def test_each_strategy_runs_to_budget_with_valid_new_candidates(kind, parameters_space, async_run):
    run = async_run(make_strategy(SPECS[kind], parameters_space), parallel=3, fail={3, 17}).run(BUDGET)
    assert len(run.finished) == BUDGET
    candidates = [candidate for _, candidate in run.proposed]
    assert all(parameters_space.canonical(c) == c for c in candidates)
    hashes = [parameters_space.candidate_hash(c) for c in candidates]
    assert len(set(hashes)) == len(hashes)  # never the same candidate twice
    rewards = [reward for _, _, reward in run.finished if reward is not None]
    assert len(rewards) == BUDGET - 2


@pytest.mark.parametrize("kind", KINDS)
def test_on_the_finite_space_no_duplicates_until_it_is_exhausted(kind, finite_parameters_space, async_run):
    size = finite_parameters_space.size()
    run = async_run(make_strategy(SPECS[kind], finite_parameters_space), parallel=2).run(size - 2)
    hashes = [finite_parameters_space.candidate_hash(c) for _, c in run.proposed]
    assert len(set(hashes)) == len(hashes) == size


@pytest.mark.parametrize("kind", KINDS)
def test_restoring_a_json_state_dict_continues_exactly(kind, parameters_space, async_run):
    run = async_run(make_strategy(SPECS[kind], parameters_space), parallel=3, fail={4}).run(14)
    run.assert_restores_exactly(lambda: make_strategy(SPECS[kind], parameters_space))


def test_reinforce_replayed_from_trials_proposes_what_it_would_have(parameters_space, async_run):
    uninterrupted = async_run(make_strategy(SPECS["reinforce"], parameters_space), parallel=4, fail={2}).run(16)
    # the controller restarts with the trials only (NASTrials or trials.jsonl, through JSON)
    proposed = json.loads(json.dumps(uninterrupted.proposed))
    finished = json.loads(json.dumps(uninterrupted.finished))
    successor = rebuild(make_strategy(SPECS["reinforce"], parameters_space), proposed, finished)
    assert successor.baseline == uninterrupted.strategy.baseline
    for a, b in zip(successor.policy.parameters(), uninterrupted.strategy.policy.parameters()):
        assert a.equal(b)  # bit for bit
    index = uninterrupted.next_index
    assert successor.propose(index) == uninterrupted.strategy.propose(index)


def test_reinforce_emits_conditional_repeated_and_continuous_decisions(parameters_space, async_run):
    strategy = make_strategy(SPECS["reinforce"], parameters_space)
    run = async_run(strategy, parallel=2).run(30)
    assignments = [c["architecture"]["parameters"] for _, c in run.proposed]
    assert len({a["norm"]["option"] for a in assignments}) > 1
    assert len({len(a["layers"]) for a in assignments}) > 1
    # values are drawn inside the policy's bins, not at their centres
    assert len({a["lr"] for a in assignments}) == len(assignments)
    probabilities = strategy.decision_probabilities(run.proposed[-1][1])
    decided = set(probabilities)
    last = assignments[-1]
    assert "norm" in decided and "layers" in decided and "lr" in decided
    assert ("norm.batch.momentum" in decided) == (last["norm"]["option"] == "batch")
    assert {f"layers[{k}].width" for k in range(4)} & decided == {f"layers[{k}].width" for k in range(len(last["layers"]))}


def test_reinforce_learns_a_rewarded_option(parameters_space):
    strategy = make_strategy(SPECS["reinforce"], parameters_space)
    candidate = strategy.propose(0)
    before = strategy.decision_probabilities(candidate)["norm"]
    option = ["none", "batch", "group"].index(candidate["architecture"]["parameters"]["norm"]["option"])
    strategy.observe(0, candidate, 0.0)  # sets the baseline
    for index in range(1, 6):
        strategy.register_proposal(index, candidate)
        strategy.observe(index, candidate, 1.0)
    after = strategy.decision_probabilities(candidate)["norm"]
    assert after[option] > before[option]


def test_evolution_climbs_the_toy_landscape_on_parameters(parameters_space, async_run, reward):
    spec = {"type": "evolution", "seed": 1, "evolution": {"populationSize": 10, "sampleSize": 4}}
    run = async_run(make_strategy(spec, parameters_space), parallel=2).run(120)
    rewards = [r for _, _, r in run.finished]
    assert sum(rewards[-30:]) / 30 > sum(rewards[:30]) / 30
