"""Strategy settings: every default in one place, each with its source, and validation.

Torch-free, so that the operator can validate an experiment's ``spec.strategy`` without
loading the learned strategies.
"""
from __future__ import annotations

from typing import Any

from ..contract import fidelity as fidelity_contract
from ..space.errors import SpaceError
from ..space.spec import expect_mapping, is_int, read_int, read_number, reject_unknown_keys
from .registry import StrategyEntry, register, strategy_entry, strategy_names

GOALS = ("maximize", "minimize")
DEFAULT_SEED = 0

DEFAULTS: dict[str, dict[str, Any]] = {
    "random": {},
    # Regularized (aging) evolution, Real et al. 2019 (AmoebaNet). Their CIFAR-10 search
    # used P=100, S=25 for 20k models; kubenas budgets are tens to hundreds of trials, so
    # the population is scaled down keeping S/P = 1/4. Real et al. mutate only; crossover
    # is off by default.
    "evolution": {
        "populationSize": 16,
        "sampleSize": 4,
        "crossoverProbability": 0.0,
    },
    # The LSTM controller of ENAS (Pham et al. 2018) trained with REINFORCE (Williams 1992)
    # as in Zoph & Le 2017. Entropy weight 1e-4 is the ENAS CIFAR-10 search scripts'
    # setting; temperature 5.0 and tanh constant 2.5 the logit shaping of the ENAS paper.
    # Adam's learning rate is 0.01, not ENAS's 0.0035: with one update per trial and budgets
    # of ~100 trials, 0.0035 barely moves the policy from uniform; on the exhaustive tabular
    # benchmark (bench/RESULTS.md, "Search efficiency (tabular)") 0.01 cut the mean regret
    # at 100 trials from 0.79 to 0.70 points (random search: 0.85) on 150 fresh seeds. 64 hidden units sit between Zoph & Le's 35 and ENAS's 100: our
    # sequences are short. ENAS decays its baseline by 0.99 over many thousands of
    # controller steps; with a few hundred trials 0.95 lets the baseline keep up.
    "reinforce": {
        "learningRate": 0.01,
        "hiddenSize": 64,
        "entropyWeight": 0.0001,
        "baselineDecay": 0.95,
        "temperature": 5.0,
        "tanhConstant": 2.5,
    },
    # Tree-structured Parzen estimator (Bergstra et al. 2011) with Optuna's TPESampler
    # defaults where they apply to categorical decisions: 10 random startup trials, 24
    # candidates per proposal, prior weight 1.0, and the good set the best 10 % of the
    # trials, at most 25 (Optuna's default gamma(n) = min(ceil(0.1 n), 25)).
    "tpe": {
        "startupTrials": 10,
        "candidates": 24,
        "gamma": 0.1,
        "maxGood": 25,
        "priorWeight": 1.0,
    },
}


def strategy_type(spec: dict) -> str:
    kind = spec.get("type")
    if kind not in strategy_names():
        raise SpaceError("strategy.type", f"{kind!r} is not one of {', '.join(strategy_names())}")
    return kind


def check_goal(goal: Any) -> str:
    if goal not in GOALS:
        raise SpaceError("objective.goal", f"{goal!r} is not one of {', '.join(GOALS)}")
    return goal


def read_seed(spec: dict) -> int:
    seed = spec.get("seed")
    if seed is None:
        return DEFAULT_SEED
    if not is_int(seed):
        raise SpaceError("strategy.seed", f"must be an integer, got {seed!r}")
    return seed


def resolve_settings(spec: Any) -> tuple[str, int, dict[str, Any]]:
    """``(type, seed, settings)`` with defaults filled in; SpaceError on nonsense."""
    spec = expect_mapping(spec, "strategy")
    kind = strategy_type(spec)
    reject_unknown_keys(spec, ("type", "seed", "fidelity") + strategy_names(), "strategy")
    block = spec.get(kind)
    block = expect_mapping({} if block is None else block, f"strategy.{kind}")
    path = f"strategy.{kind}"
    entry = strategy_entry(kind)
    reject_unknown_keys(block, entry.defaults, path)
    return kind, read_seed(spec), entry.settings(block, path)


def _evolution(block: dict, path: str, defaults: dict) -> dict:
    population = read_int(block, "populationSize", path, defaults["populationSize"], low=2)
    sample = read_int(block, "sampleSize", path, defaults["sampleSize"], low=1)
    if sample > population:
        raise SpaceError(f"{path}.sampleSize", f"must not exceed populationSize ({sample} > {population})")
    crossover = read_number(block, "crossoverProbability", path, defaults["crossoverProbability"], low=0.0, high=1.0)
    return {"populationSize": population, "sampleSize": sample, "crossoverProbability": crossover}


def _reinforce(block: dict, path: str, defaults: dict) -> dict:
    return {
        "learningRate": read_number(block, "learningRate", path, defaults["learningRate"], low=0.0, low_open=True),
        "hiddenSize": read_int(block, "hiddenSize", path, defaults["hiddenSize"], low=1, high=1024),
        "entropyWeight": read_number(block, "entropyWeight", path, defaults["entropyWeight"], low=0.0),
        "baselineDecay": read_number(block, "baselineDecay", path, defaults["baselineDecay"],
                                     low=0.0, high=1.0, high_open=True),
        # null switches the logit shaping off, as ENAS allows.
        "temperature": read_number(block, "temperature", path, defaults["temperature"],
                                   low=0.0, low_open=True, allow_none=True),
        "tanhConstant": read_number(block, "tanhConstant", path, defaults["tanhConstant"],
                                    low=0.0, low_open=True, allow_none=True),
    }


def _tpe(block: dict, path: str, defaults: dict) -> dict:
    return {
        "startupTrials": read_int(block, "startupTrials", path, defaults["startupTrials"], low=1),
        "candidates": read_int(block, "candidates", path, defaults["candidates"], low=1, high=10000),
        "gamma": read_number(block, "gamma", path, defaults["gamma"], low=0.0, high=1.0, low_open=True),
        "maxGood": read_int(block, "maxGood", path, defaults["maxGood"], low=1),
        "priorWeight": read_number(block, "priorWeight", path, defaults["priorWeight"], low=0.0, low_open=True),
    }


register(StrategyEntry(
    "random", "kubenas.strategies.random_search:RandomSearch", "each active decision uniformly",
    DEFAULTS["random"], pareto=True))  # learns nothing, so any objective suits it
register(StrategyEntry(
    "evolution", "kubenas.strategies.evolution:RegularizedEvolution", "regularized (aging) evolution",
    DEFAULTS["evolution"], _evolution, pareto=True))  # selects by non-dominated rank and crowding
register(StrategyEntry(
    "reinforce", "kubenas.strategies.reinforce:Reinforce", "REINFORCE with an LSTM policy (ENAS controller)",
    DEFAULTS["reinforce"], _reinforce, continuous="binned", needs_torch=True))
register(StrategyEntry(
    "tpe", "kubenas.strategies.tpe:TPE", "tree-structured Parzen estimator",
    DEFAULTS["tpe"], _tpe, continuous="binned"))

# The built-in strategies, for code that wants a constant; the registry is the source.
STRATEGY_TYPES = strategy_names()


def check_fidelity(block: Any, max_epochs: int) -> dict[str, Any]:
    """A ``strategy.fidelity`` block with defaults filled in; SpaceError names the field.

    The one validator of the block. ``max_epochs`` is the experiment's
    ``trial.training.epochs``: the last rung, so ``maxResource`` is not a setting (a second
    truth) and ``minResource`` must leave a rung to promote to. Returns ``type``,
    ``minResource``, ``reductionFactor`` and ``maxResource``.
    """
    path = "strategy.fidelity"
    block = expect_mapping(block, path)
    defaults = dict(fidelity_contract.FIDELITY_DEFAULTS)
    reject_unknown_keys(block, defaults, path)
    kind = block.get("type", defaults["type"])
    if kind not in fidelity_contract.FIDELITY_TYPES:
        raise SpaceError(f"{path}.type", f"{kind!r} is not one of {', '.join(fidelity_contract.FIDELITY_TYPES)}")
    settings = {"type": kind,
                "minResource": read_int(block, "minResource", path, defaults["minResource"], low=1),
                "reductionFactor": read_int(block, "reductionFactor", path, defaults["reductionFactor"], low=2)}
    if settings["minResource"] >= max_epochs:
        raise SpaceError(f"{path}.minResource", f"{settings['minResource']} epochs leaves nothing to promote "
                         f"to: the last rung trains trial.training.epochs ({max_epochs}); lower minResource "
                         f"or raise epochs")
    settings["maxResource"] = max_epochs
    try:
        fidelity_contract.rungs(settings["minResource"], settings["maxResource"], settings["reductionFactor"])
    except ValueError as err:
        where, _, message = str(err).partition(": ")
        raise SpaceError(where, message) from None
    return settings


def resolve_fidelity(spec: Any, max_epochs: int) -> dict[str, Any] | None:
    """``spec.strategy.fidelity`` with defaults and ``rungs`` filled in, or None without it.

    The resource is training epochs; the last rung trains ``max_epochs``, the experiment's
    ``trial.training.epochs`` (kubenas.contract.fidelity). SpaceError names the field.
    """
    spec = expect_mapping(spec, "strategy")
    block = spec.get("fidelity")
    if block is None:
        return None
    settings = check_fidelity(block, max_epochs)
    settings["rungs"] = fidelity_contract.rungs(settings["minResource"], max_epochs, settings["reductionFactor"])
    return settings
