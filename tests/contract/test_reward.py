"""objective.penalties: the MnasNet reward (Tan et al. 2019), as the trainer applies it."""
from __future__ import annotations

import math

import pytest

from kubenas.contract.reward import check_penalties, compute_reward

METRICS = {"accuracy": 0.9, "loss": 0.3, "parameters": 20_000, "macs": 1e6, "latencyMs": 2.0}


def test_without_penalties_the_reward_is_the_metric():
    assert compute_reward({"metric": "accuracy"}, METRICS) == 0.9
    assert compute_reward({"metric": "loss", "goal": "minimize", "penalties": []}, METRICS) == 0.3


def test_mnasnet_formula():
    penalty = {"metric": "parameters", "target": 10_000, "weight": -0.07}
    reward = compute_reward({"metric": "accuracy", "penalties": [penalty]}, METRICS)
    assert reward == pytest.approx(0.9 * 2 ** -0.07)  # twice the target: about 5 % less
    at_target = compute_reward({"metric": "accuracy", "penalties": [{**penalty, "target": 20_000}]}, METRICS)
    assert at_target == pytest.approx(0.9)
    smaller = compute_reward({"metric": "accuracy", "penalties": [{**penalty, "target": 40_000}]}, METRICS)
    assert smaller > 0.9  # below its target a model gains (MnasNet's soft constraint)


def test_penalties_multiply():
    penalties = [{"metric": "parameters", "target": 10_000, "weight": -0.1},
                 {"metric": "latencyMs", "target": 1.0, "weight": -0.5}]
    expected = 0.9 * 2 ** -0.1 * 2 ** -0.5
    assert compute_reward({"metric": "accuracy", "penalties": penalties}, METRICS) == pytest.approx(expected)


def test_a_negative_weight_penalizes_large_models_when_minimizing_too():
    penalty = {"metric": "macs", "target": 5e5, "weight": -0.5}
    reward = compute_reward({"metric": "loss", "goal": "minimize", "penalties": [penalty]}, METRICS)
    assert reward == pytest.approx(0.3 * 2 ** 0.5) and reward > 0.3  # a larger loss is worse


def test_missing_metric_and_non_finite_results_are_errors():
    with pytest.raises(ValueError, match="latencyMs"):
        compute_reward({"metric": "accuracy", "penalties": [{"metric": "latencyMs", "target": 1, "weight": -1}]},
                       {"accuracy": 0.5})
    with pytest.raises(ValueError, match="not finite"):
        compute_reward({"metric": "accuracy"}, {"accuracy": math.inf})
    # A measured 0 (a latency rounded down) neither zeroes nor explodes the reward.
    assert math.isfinite(compute_reward({"metric": "accuracy", "penalties": [
        {"metric": "latencyMs", "target": 1, "weight": -1}]}, {"accuracy": 0.5, "latencyMs": 0.0}))


@pytest.mark.parametrize("penalties, where", [
    ([{"metric": "flops", "target": 1, "weight": -1}], "objective.penalties[0].metric"),
    ([{"metric": "macs", "target": 0, "weight": -1}], "objective.penalties[0].target"),
    ([{"metric": "macs", "target": 1, "weight": "a"}], "objective.penalties[0].weight"),
    ([{"metric": "macs", "target": 1, "weight": -1}] * 5, "objective.penalties"),
    ("macs", "objective.penalties"),
])
def test_malformed_penalties_are_named(penalties, where):
    with pytest.raises(ValueError, match=rf"^{where.replace('[', '.').replace(']', '.')}"):
        check_penalties(penalties)
