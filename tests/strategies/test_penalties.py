"""A search asked to penalize large models finds small ones: the strategies see the
penalized reward (kubenas.contract.reward, what the trainer reports) and steer by it."""
from __future__ import annotations

import math

from kubenas.contract.reward import compute_reward
from kubenas.space import SearchSpace
from kubenas.strategies import make_strategy

# 3 conv layers, 6 widths each: 216 architectures; wider is slightly more accurate.
SPACE = {"type": "chain", "chain": {"layers": 3, "operations": ["conv"], "filters": [4, 8, 16, 32, 64, 128],
                                    "kernelSizes": [3], "strides": [1]}}
PENALTY = {"metric": "parameters", "target": 1000, "weight": -0.3}


def measured(architecture: dict) -> dict:
    """A stand-in for the trainer: accuracy grows with width (log), parameters with width squared."""
    widths = [layer["filters"] for layer in architecture["layers"]]
    accuracy = 0.5 + 0.02 * sum(math.log2(w) for w in widths)
    parameters = sum(a * b * 9 for a, b in zip([1] + widths, widths)) + widths[-1] * 10
    return {"accuracy": accuracy, "parameters": parameters}


def search(objective: dict, trials: int = 60) -> tuple[dict, list[int]]:
    space = SearchSpace.from_spec(SPACE)
    strategy = make_strategy({"type": "evolution", "seed": 1, "evolution": {"populationSize": 10, "sampleSize": 4}},
                             space, "maximize")
    best, sizes = None, []
    for index in range(trials):
        candidate = strategy.propose(index)
        metrics = measured(candidate["architecture"])
        reward = compute_reward(objective, metrics)
        strategy.observe(index, candidate, reward)
        sizes.append(metrics["parameters"])
        if best is None or reward > best[0]:
            best = (reward, metrics["parameters"])
    return {"reward": best[0], "parameters": best[1]}, sizes


def test_a_search_with_a_size_penalty_prefers_small_models():
    plain, plain_sizes = search({"metric": "accuracy"})
    small, small_sizes = search({"metric": "accuracy", "penalties": [PENALTY]})
    assert plain["parameters"] > 100_000            # without the penalty the widest wins
    assert small["parameters"] < plain["parameters"] / 50
    # The search is steered, not only re-ranked: its later proposals are smaller.
    assert sum(small_sizes[-20:]) < sum(plain_sizes[-20:]) / 5
