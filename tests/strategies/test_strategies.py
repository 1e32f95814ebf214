"""Strategies: determinism, exact resume, asynchrony, failures, duplicates, and the
behaviour each algorithm is known for."""
from __future__ import annotations

import json
import random

import pytest

from kubenas.space import SpaceError
from kubenas.strategies import DEFAULTS, make_strategy, rebuild

KINDS = ["random", "evolution", "reinforce", "tpe"]
# Small populations so that evolution is past its random start within a short test.
SPECS = {
    "random": {"type": "random", "seed": 3},
    "evolution": {"type": "evolution", "seed": 3, "evolution": {"populationSize": 6, "sampleSize": 3,
                                                                 "crossoverProbability": 0.3}},
    "reinforce": {"type": "reinforce", "seed": 3, "reinforce": {"learningRate": 0.02}},
    "tpe": {"type": "tpe", "seed": 3, "tpe": {"startupTrials": 5}},
}


def hashes(space, proposals):
    return [space.candidate_hash(candidate) for _, candidate in proposals]


# -- determinism and resume ----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_search_and_another_seed_another(kind, chain_space, async_run):
    first = async_run(make_strategy(SPECS[kind], chain_space), fail={4, 9}).run(20)
    second = async_run(make_strategy(SPECS[kind], chain_space), fail={4, 9}).run(20)
    assert first.proposed == second.proposed
    other = async_run(make_strategy({**SPECS[kind], "seed": 4}, chain_space), fail={4, 9}).run(20)
    assert hashes(chain_space, other.proposed) != hashes(chain_space, first.proposed)


@pytest.mark.parametrize("space_name", ["chain_space", "cell_space", "parameters_space"])
@pytest.mark.parametrize("kind", KINDS)
def test_rebuilding_from_trials_continues_like_an_uninterrupted_run(kind, space_name, request, async_run):
    space = request.getfixturevalue(space_name)
    uninterrupted = async_run(make_strategy(SPECS[kind], space), parallel=4, fail={2, 7, 11}).run(15)
    # The controller dies here; its successor sees only the trials.
    successor = rebuild(make_strategy(SPECS[kind], space), uninterrupted.proposed, uninterrupted.finished)
    resumed = uninterrupted.fork(successor)
    assert successor.pending == uninterrupted.strategy.pending
    uninterrupted.run(10)
    resumed.run(10)
    assert resumed.proposed == uninterrupted.proposed


@pytest.mark.parametrize("kind", KINDS)
def test_rebuild_on_every_pass_applies_only_what_is_new(kind, chain_space, async_run):
    # A controller that never proposes itself but re-reads all trials on every pass
    # ends up in exactly the state of the strategy that did the proposing.
    run = async_run(make_strategy(SPECS[kind], chain_space), parallel=3, fail={4})
    follower = make_strategy(SPECS[kind], chain_space)
    for _ in range(12):
        run.run(1)
        rebuild(follower, run.proposed, run.finished)
        rebuild(follower, run.proposed, run.finished)  # a pass with nothing new changes nothing
    assert follower.state_dict() == run.strategy.state_dict()
    assert follower.propose(run.next_index) == run.strategy.propose(run.next_index)


@pytest.mark.parametrize("kind", KINDS)
def test_restoring_a_json_state_dict_continues_like_an_uninterrupted_run(kind, cell_space, async_run):
    run = async_run(make_strategy(SPECS[kind], cell_space), parallel=3, fail={5}).run(12)
    run.assert_restores_exactly(lambda: make_strategy(SPECS[kind], cell_space))


def test_a_state_dict_from_another_experiment_is_refused(chain_space, cell_space):
    state = make_strategy(SPECS["evolution"], chain_space).state_dict()
    with pytest.raises(ValueError, match="space"):
        make_strategy(SPECS["evolution"], cell_space).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        make_strategy({**SPECS["evolution"], "seed": 99}, chain_space).load_state_dict(state)


@pytest.mark.parametrize("kind", KINDS)
def test_propose_is_idempotent_for_a_pending_index(kind, chain_space):
    strategy = make_strategy(SPECS[kind], chain_space)
    first = strategy.propose(0)
    assert strategy.propose(0) == first  # a controller retrying a failed create gets the same trial
    strategy.observe(0, first, 0.5)
    with pytest.raises(ValueError):
        strategy.propose(0)


# -- asynchrony, failures, repeats ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_failed_trials_do_not_stall_a_strategy(kind, chain_space, async_run):
    run = async_run(make_strategy(SPECS[kind], chain_space), parallel=2, fail=set(range(0, 40, 2))).run(40)
    assert len(run.finished) == 40
    assert len(set(hashes(chain_space, run.proposed))) == len(run.proposed)
    everything_fails = async_run(make_strategy(SPECS[kind], chain_space), parallel=2, fail=set(range(100))).run(30)
    assert len(set(hashes(chain_space, everything_fails.proposed))) == len(everything_fails.proposed)


@pytest.mark.parametrize("kind", KINDS)
def test_observations_of_unknown_or_repeated_indices_are_tolerated(kind, chain_space, reward):
    strategy = make_strategy(SPECS[kind], chain_space)
    stranger = chain_space.sample(random.Random(42))  # proposed by a previous controller
    strategy.observe(17, stranger, reward(stranger))
    before = json.dumps(strategy.state_dict(), sort_keys=True)
    strategy.observe(17, stranger, 123.0)  # the same trial reported twice
    assert json.dumps(strategy.state_dict(), sort_keys=True) == before
    assert strategy.is_seen(stranger)
    assert all(strategy.propose(i) != stranger for i in range(10))


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_or_nan_trial_teaches_nothing(kind, chain_space):
    strategy = make_strategy(SPECS[kind], chain_space)
    candidate = strategy.propose(0)
    learned = {k: v for k, v in strategy.state_dict().items() if k not in ("pending", "observed")}
    strategy.observe(0, candidate, None)
    strategy.propose(1)
    strategy.observe(1, strategy.propose(1), float("nan"))
    strategy.observe(2, strategy.propose(2), "garbage")
    after = {k: v for k, v in strategy.state_dict().items() if k not in ("pending", "observed")}
    assert after["seen"] != learned["seen"]
    assert {k: v for k, v in after.items() if k != "seen"} == {k: v for k, v in learned.items() if k != "seen"}


@pytest.mark.parametrize("kind", KINDS)
def test_no_duplicates_until_the_space_is_exhausted(kind, tiny_space, async_run):
    spec = dict(SPECS[kind])
    if kind == "evolution":  # a population that fits the tiny space: mutation keeps hitting seen ones
        spec["evolution"] = {"populationSize": 3, "sampleSize": 2}
    strategy = make_strategy(spec, tiny_space)
    run = async_run(strategy, parallel=2, fail={3}).run(tiny_space.size() - 2)
    assert len(run.proposed) == tiny_space.size()
    assert len(set(hashes(tiny_space, run.proposed))) == tiny_space.size()
    assert strategy.exhausted
    assert tiny_space.contains(strategy.propose(run.next_index))  # still proposes, now a repeat


# -- regularized evolution -----------------------------------------------------------------


def test_evolution_removes_the_oldest_member_not_the_worst(chain_space):
    strategy = make_strategy({"type": "evolution", "evolution": {"populationSize": 4, "sampleSize": 2}},
                             chain_space)
    candidates = [strategy.propose(i) for i in range(6)]
    completion = [(2, 0.9), (0, 0.1), (3, 0.5), (1, 0.3)]  # trial 2 finishes first and is the best
    for index, reward in completion:
        strategy.observe(index, candidates[index], reward)
    assert [index for index, _, _ in strategy.population] == [2, 0, 3, 1]
    strategy.observe(5, candidates[5], 0.2)
    assert [index for index, _, _ in strategy.population] == [0, 3, 1, 5]
    strategy.observe(4, candidates[4], None)  # a failure never joins
    assert [index for index, _, _ in strategy.population] == [0, 3, 1, 5]


@pytest.mark.parametrize("goal, best", [("maximize", max), ("minimize", min)])
def test_evolution_children_are_single_mutations_of_the_tournament_winner(goal, best, cell_space, reward):
    # With the whole population in every tournament, the winner is the best member.
    strategy = make_strategy({"type": "evolution", "seed": 1,
                              "evolution": {"populationSize": 5, "sampleSize": 5}}, cell_space, goal)
    for index in range(5):
        candidate = strategy.propose(index)
        strategy.observe(index, candidate, reward(candidate))
    winner = best(strategy.population, key=lambda member: reward(member[1]))[1]
    for index in range(5, 15):
        child = strategy.propose(index)
        differing = [a != b for a, b in zip(cell_space.encode(child), cell_space.encode(winner))]
        assert sum(differing) == 1


def test_evolution_climbs_the_toy_landscape(chain_space, async_run, reward):
    def mean_reward(run):
        rewards = [r for _, _, r in run.finished[-30:] if r is not None]
        return sum(rewards) / len(rewards)

    evolution = async_run(make_strategy({"type": "evolution", "seed": 0}, chain_space), parallel=4).run(150)
    random_search = async_run(make_strategy({"type": "random", "seed": 0}, chain_space), parallel=4).run(150)
    assert mean_reward(evolution) > mean_reward(random_search) + 0.2


# -- REINFORCE -------------------------------------------------------------------------------


def conv_reward(candidate):
    return 1.0 if candidate["architecture"]["layers"][0]["op"] == "conv" else 0.0


@pytest.mark.parametrize("goal, sign", [("maximize", 1.0), ("minimize", -1.0)])
@pytest.mark.parametrize("settings", [{}, {"learningRate": 0.02}])
def test_reinforce_raises_the_probability_of_a_rewarded_decision(goal, sign, settings, chain_space, async_run):
    strategy = make_strategy({"type": "reinforce", "seed": 0, "reinforce": settings}, chain_space, goal)
    probe = chain_space.sample(random.Random(0))
    conv = chain_space.decisions()[0][1].index("conv")
    before = strategy.decision_probabilities(probe)["layers[0].op"][conv]
    async_run(strategy, parallel=4, reward=lambda c: sign * conv_reward(c)).run(60)
    after = strategy.decision_probabilities(probe)["layers[0].op"][conv]
    assert after > before + (0.5 if settings else 0.1)


def test_reinforce_updates_each_trial_with_its_own_reward(chain_space):
    # Three trials in flight; each result moves the policy toward (or away from) the very
    # architecture that earned it, by its own advantage over the baseline.
    strategy = make_strategy(SPECS["reinforce"], chain_space)
    first, good, bad = (strategy.propose(i) for i in range(3))
    strategy.observe(0, first, 0.5)  # the first reward sets the baseline
    good_before, bad_before = strategy.log_probability(good), strategy.log_probability(bad)
    strategy.observe(1, good, 0.9)
    assert strategy.log_probability(good) > good_before
    bad_mid = strategy.log_probability(bad)
    strategy.observe(2, bad, 0.1)
    assert strategy.log_probability(bad) < bad_mid
    assert strategy.baseline == pytest.approx(0.5 * 0.95 ** 2 + 0.9 * 0.05 * 0.95 + 0.1 * 0.05)
    assert bad_before != bad_mid  # one shared policy: every update moves every distribution


def test_reinforce_defaults_come_from_enas():
    # learningRate: ENAS uses 0.0035; 0.01 was chosen on the tabular benchmark (bench/RESULTS.md).
    assert DEFAULTS["reinforce"] == {"learningRate": 0.01, "hiddenSize": 64, "entropyWeight": 0.0001,
                                     "baselineDecay": 0.95, "temperature": 5.0, "tanhConstant": 2.5}


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, goal, path", [
    ({"type": "bayesian"}, "maximize", "strategy.type"),
    ({"type": "random", "seed": "one"}, "maximize", "strategy.seed"),
    ({"type": "evolution", "evolution": {"populationSize": 4, "sampleSize": 8}}, "maximize",
     "strategy.evolution.sampleSize"),
    ({"type": "evolution", "evolution": {"populationSize": 1}}, "maximize", "strategy.evolution.populationSize"),
    ({"type": "evolution", "evolution": {"crossoverProbability": 1.5}}, "maximize",
     "strategy.evolution.crossoverProbability"),
    ({"type": "evolution", "evolution": {"mutationRate": 0.5}}, "maximize", "strategy.evolution.mutationRate"),
    ({"type": "reinforce", "reinforce": {"learningRate": 0}}, "maximize", "strategy.reinforce.learningRate"),
    ({"type": "reinforce", "reinforce": {"baselineDecay": 1.0}}, "maximize", "strategy.reinforce.baselineDecay"),
    ({"type": "reinforce", "reinforce": {"hiddenSize": 0}}, "maximize", "strategy.reinforce.hiddenSize"),
    ({"type": "random"}, "largest", "objective.goal"),
])
def test_bad_strategy_settings_are_refused_with_their_path(spec, goal, path, chain_space):
    with pytest.raises(SpaceError) as raised:
        make_strategy(spec, chain_space, goal)
    assert raised.value.path == path


def test_settings_default_and_override(chain_space):
    strategy = make_strategy({"type": "evolution", "evolution": {"sampleSize": 2}}, chain_space)
    assert strategy.settings == {**DEFAULTS["evolution"], "sampleSize": 2}
    assert strategy.seed == 0 and strategy.goal == "maximize"
    shaped = make_strategy({"type": "reinforce", "reinforce": {"temperature": None, "tanhConstant": None}},
                           chain_space)
    assert shaped.settings["temperature"] is None and shaped.settings["tanhConstant"] is None
    shaped.propose(0)


# -- TPE ------------------------------------------------------------------------------------------


def test_tpe_is_random_until_its_startup_trials_then_proposes_from_the_good_density(chain_space, async_run):
    tpe = make_strategy({"type": "tpe", "seed": 7, "tpe": {"startupTrials": 8}}, chain_space)
    random_search = make_strategy({"type": "random", "seed": 7}, chain_space)
    assert [tpe.propose(i) for i in range(8)] == [random_search.propose(i) for i in range(8)]
    # on the toy landscape (convolutions good) TPE's later proposals hold more convolutions than random's
    run = async_run(make_strategy({"type": "tpe", "seed": 7}, chain_space), parallel=2).run(60)
    baseline = async_run(make_strategy({"type": "random", "seed": 7}, chain_space), parallel=2).run(60)

    def convs(proposals):
        return sum(layer["op"] == "conv" for _, c in proposals[30:] for layer in c["architecture"]["layers"])

    assert convs(run.proposed) > convs(baseline.proposed)


def test_tpe_settings_are_validated():
    with pytest.raises(SpaceError) as caught:
        make_strategy({"type": "tpe", "tpe": {"gamma": 0}}, None)
    assert caught.value.path == "strategy.tpe.gamma"
