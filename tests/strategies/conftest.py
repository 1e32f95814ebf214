"""Shared fixtures: small search spaces, toy objectives and an asynchronous driver that
plays the controller (k trials in flight, results in a shuffled order, some failures)."""
from __future__ import annotations

import copy
import json
import math
import random

import pytest

from kubenas.space import SearchSpace

CHAIN_SPEC = {
    "type": "chain",
    "chain": {"layers": 4, "operations": ["conv", "dw_conv", "max_pool", "avg_pool", "identity"],
              "filters": [16, 32, 64], "kernelSizes": [3, 5], "strides": [1, 2]},
    "hyperparameters": [
        {"name": "learningRate", "type": "logUniform", "min": 0.001, "max": 0.1},
        {"name": "momentum", "type": "uniform", "min": 0.5, "max": 0.99},
        {"name": "batchSize", "type": "int", "min": 32, "max": 128, "step": 32},
        {"name": "optimizer", "type": "categorical", "values": ["sgd", "adam"]},
    ],
}
CELL_SPEC = {
    "type": "cell",
    "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3"],
             "channels": 16, "cellsPerStage": 1, "stages": 3},
    "hyperparameters": [{"name": "learningRate", "type": "logUniform", "min": 0.01, "max": 0.1, "grid": 4}],
}
# 1 layer: conv with 2 filter sizes x 2 kernels, or identity -> 5 candidates; x 3 learning rates = 15.
TINY_SPEC = {
    "type": "chain",
    "chain": {"layers": 1, "operations": ["conv", "identity"], "filters": [16, 32], "kernelSizes": [3, 5],
              "strides": [1]},
    "hyperparameters": [{"name": "learningRate", "type": "logUniform", "min": 0.01, "max": 0.1, "grid": 3}],
}

# The general space (docs/byo.md): continuous, int, categorical, a conditional with an
# empty option, a repeated block with a conditional inside, plus a searched hyperparameter.
PARAMETERS_SPEC = {
    "type": "parameters",
    "parameters": [
        {"name": "lr", "type": "logUniform", "min": 1.0e-4, "max": 1.0},
        {"name": "dropout", "type": "uniform", "min": 0.0, "max": 0.5},
        {"name": "activation", "type": "categorical", "values": ["relu", "gelu", "tanh"]},
        {"name": "norm", "type": "conditional", "options": [
            {"name": "none", "parameters": []},
            {"name": "batch", "parameters": [{"name": "momentum", "type": "uniform", "min": 0.5, "max": 0.99}]},
            {"name": "group", "parameters": [{"name": "groups", "type": "int", "min": 1, "max": 8}]},
        ]},
        {"name": "layers", "type": "repeat", "min": 1, "max": 4, "parameters": [
            {"name": "width", "type": "int", "min": 16, "max": 128, "step": 16},
            {"name": "kind", "type": "conditional", "options": [
                {"name": "dense", "parameters": []},
                {"name": "residual", "parameters": [{"name": "scale", "type": "uniform", "min": 0.1, "max": 1.0}]},
            ]},
        ]},
    ],
    "hyperparameters": [{"name": "batchSize", "type": "int", "min": 32, "max": 64, "step": 32}],
}
# Finite (no continuous range): 2 x (1 + 3) x (2 + 2**2) = 48 candidates.
FINITE_PARAMETERS_SPEC = {
    "type": "parameters",
    "parameters": [
        {"name": "act", "type": "categorical", "values": ["relu", "gelu"]},
        {"name": "norm", "type": "conditional", "options": [
            {"name": "none"}, {"name": "group", "parameters": [{"name": "groups", "type": "int", "min": 1, "max": 5,
                                                                   "step": 2}]}]},
        {"name": "layers", "type": "repeat", "min": 1, "max": 2, "parameters": [
            {"name": "wide", "type": "categorical", "values": [True, False]}]},
    ],
}


@pytest.fixture
def parameters_space() -> SearchSpace:
    return SearchSpace.from_spec(copy.deepcopy(PARAMETERS_SPEC))


@pytest.fixture
def finite_parameters_space() -> SearchSpace:
    return SearchSpace.from_spec(copy.deepcopy(FINITE_PARAMETERS_SPEC))


@pytest.fixture
def chain_space() -> SearchSpace:
    return SearchSpace.from_spec(copy.deepcopy(CHAIN_SPEC))


@pytest.fixture
def cell_space() -> SearchSpace:
    return SearchSpace.from_spec(copy.deepcopy(CELL_SPEC))


@pytest.fixture
def tiny_space() -> SearchSpace:
    return SearchSpace.from_spec(copy.deepcopy(TINY_SPEC))


def toy_reward(candidate: dict) -> float:
    """Convolutions are good, learning rates near 0.01 are good: a landscape with a slope."""
    architecture = candidate["architecture"]
    if architecture["type"] == "parameters":
        return parameters_reward(architecture["parameters"])
    if architecture["type"] == "chain":
        good = sum(layer["op"] == "conv" for layer in architecture["layers"]) / len(architecture["layers"])
    else:
        edges = [op for row in architecture["edges"] for op in row]
        good = sum(op == "conv_3x3" for op in edges) / len(edges)
    learning_rate = candidate["hyperparameters"].get("learningRate", 0.01)
    return good - abs(math.log10(learning_rate) + 2.0) / 10.0


def parameters_reward(p: dict) -> float:
    """Learning rates near 0.01, gelu, batch norm, many wide residual layers are good
    (for PARAMETERS_SPEC; FINITE_PARAMETERS_SPEC's decisions count where they exist)."""
    layers = p.get("layers", [])
    width = sum(layer.get("width", 64) + 64 * bool(layer.get("wide")) for layer in layers) / (128 * 4)
    residual = sum(layer.get("kind", {}).get("option") == "residual" for layer in layers) / 4
    return (width + residual + 0.5 * (p.get("activation") == "gelu")
            + 0.5 * (p.get("norm", {}).get("option") == "batch") - abs(math.log10(p.get("lr", 0.01)) + 2.0) / 2.0)


class AsyncRun:
    """Plays the controller: keeps ``parallel`` trials in flight and finishes one at a time,
    chosen by a seeded rng (so completion order differs from proposal order), failing every
    trial whose index is in ``fail``."""

    def __init__(self, strategy, parallel: int = 3, order_seed: int = 0, reward=toy_reward, fail=()):
        self.strategy = strategy
        self.parallel = parallel
        self.order_rng = random.Random(order_seed)
        self.reward = reward
        self.fail = set(fail)
        self.next_index = 0
        self.in_flight: list[tuple[int, dict]] = []
        self.proposed: list[tuple[int, dict]] = []
        self.finished: list[tuple[int, dict, float | None]] = []

    def fill(self) -> None:
        while len(self.in_flight) < self.parallel:
            candidate = self.strategy.propose(self.next_index)
            self.in_flight.append((self.next_index, candidate))
            self.proposed.append((self.next_index, candidate))
            self.next_index += 1

    def finish_one(self) -> None:
        index, candidate = self.in_flight.pop(self.order_rng.randrange(len(self.in_flight)))
        reward = None if index in self.fail else self.reward(candidate)
        self.finished.append((index, candidate, reward))
        self.strategy.observe(index, candidate, reward)

    def run(self, steps: int) -> "AsyncRun":
        for _ in range(steps):
            self.fill()
            self.finish_one()
        self.fill()
        return self

    def fork(self, strategy) -> "AsyncRun":
        """The same controller state driving another strategy object."""
        twin = copy.copy(self)
        twin.strategy = strategy
        twin.order_rng = copy.deepcopy(self.order_rng)
        twin.fail = set(self.fail)
        twin.in_flight = list(self.in_flight)
        twin.proposed = list(self.proposed)
        twin.finished = list(self.finished)
        return twin

    def assert_restores_exactly(self, make, steps: int = 10) -> None:
        """A new strategy, ``make()``, that loads this run's state_dict through JSON (as the
        controller's ConfigMap stores it) and takes over the same controller state proposes
        what this run goes on to propose over ``steps`` more trials, and ends in its state."""
        strategy = make()
        strategy.load_state_dict(json.loads(json.dumps(self.strategy.state_dict())))
        resumed = self.fork(strategy)
        self.run(steps)
        resumed.run(steps)
        assert resumed.proposed == self.proposed
        assert json.dumps(strategy.state_dict(), sort_keys=True) == json.dumps(self.strategy.state_dict(),
                                                                               sort_keys=True)


@pytest.fixture
def async_run():
    """The AsyncRun class (fixtures are how test modules share helpers without imports)."""
    return AsyncRun


@pytest.fixture
def reward():
    return toy_reward


@pytest.fixture
def specs():
    return {"chain": copy.deepcopy(CHAIN_SPEC), "cell": copy.deepcopy(CELL_SPEC), "tiny": copy.deepcopy(TINY_SPEC),
            "parameters": copy.deepcopy(PARAMETERS_SPEC), "finite_parameters": copy.deepcopy(FINITE_PARAMETERS_SPEC)}
