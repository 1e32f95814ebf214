"""Search strategies: random search, regularized evolution, REINFORCE and TPE.
Owns proposing and learning from candidates; imports kubenas.contract and kubenas.space (torch only for reinforce).

``make_strategy(spec["strategy"], space, spec["objective"]["goal"])`` builds one from the
registry (kubenas.strategies.registry: one entry per strategy, with its capabilities). All of
them are seeded, asynchronous, and resumable (``rebuild`` from the trials, or
``state_dict``/``load_state_dict``): see docs/strategies.md.

Torch is needed by ``reinforce`` only and imported when such a strategy is made; to
validate a spec without torch (the operator), use ``check_strategy_spec``.
"""
from __future__ import annotations

from typing import Any

from ..space import Constraints, SearchSpace, SpaceError
from .base import NoFeasibleCandidate, Strategy, rebuild
from .evolution import RegularizedEvolution
from .random_search import RandomSearch
from .tpe import TPE
from .registry import StrategyEntry, pareto_strategies, register, strategy_entry, strategy_names
from .settings import DEFAULTS, GOALS, STRATEGY_TYPES, check_goal, resolve_fidelity, resolve_settings

__all__ = [
    "DEFAULTS",
    "GOALS",
    "NoFeasibleCandidate",
    "STRATEGY_TYPES",
    "StrategyEntry",
    "RandomSearch",
    "RegularizedEvolution",
    "Strategy",
    "TPE",
    "check_pareto_strategy",
    "check_strategy_spec",
    "make_strategy",
    "pareto_strategies",
    "rebuild",
    "register",
    "resolve_fidelity",
    "strategy_entry",
    "strategy_names",
]


def check_strategy_spec(strategy_spec: Any, goal: str = "maximize") -> dict[str, Any]:
    """Validate ``spec.strategy`` without building anything (no torch needed).

    Returns ``{"type", "seed", "goal", "settings"}`` with every default filled in; raises
    SpaceError with the path of the first bad field.
    """
    kind, seed, settings = resolve_settings(strategy_spec)
    return {"type": kind, "seed": seed, "goal": check_goal(goal), "settings": settings}


def check_pareto_strategy(kind: str, pareto) -> None:
    """SpaceError at ``objective.pareto`` when the strategy cannot search several objectives."""
    if pareto and not strategy_entry(kind).pareto:
        able = sorted(pareto_strategies())
        raise SpaceError("objective.pareto", f"strategy {kind} learns from one scalar reward and cannot "
                         f"search several objectives; use strategy.type {' or '.join(able)}, "
                         "or fold the costs into the reward with objective.penalties")


def make_strategy(strategy_spec: dict, space: SearchSpace, goal: str = "maximize",
                  constraints: Constraints | None = None, pareto=()) -> Strategy:
    """``constraints`` (``kubenas.space.constraints_from_spec(spec)``): hard limits a proposal never breaks;
    ``pareto`` (``spec.objective.pareto``): costs minimized beside the reward (docs/strategies.md)."""
    checked = check_strategy_spec(strategy_spec, goal)
    check_pareto_strategy(checked["type"], pareto)
    strategy_class = strategy_entry(checked["type"]).load()
    return strategy_class(space, seed=checked["seed"], goal=checked["goal"], settings=checked["settings"],
                          constraints=constraints, pareto=pareto)
