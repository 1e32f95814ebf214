"""Search strategies: random search, regularized evolution, REINFORCE and TPE.
Owns proposing and learning from candidates; imports kubenas.contract and kubenas.space (torch only for reinforce).

``make_strategy(spec["strategy"], space, spec["objective"]["goal"])`` builds one. All of
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
from .settings import DEFAULTS, GOALS, STRATEGY_TYPES, check_goal, resolve_fidelity, resolve_settings

__all__ = [
    "DEFAULTS",
    "GOALS",
    "NoFeasibleCandidate",
    "PARETO_STRATEGIES",
    "STRATEGY_TYPES",
    "RandomSearch",
    "RegularizedEvolution",
    "Strategy",
    "TPE",
    "check_pareto_strategy",
    "check_strategy_spec",
    "make_strategy",
    "rebuild",
    "resolve_fidelity",
]


def check_strategy_spec(strategy_spec: Any, goal: str = "maximize") -> dict[str, Any]:
    """Validate ``spec.strategy`` without building anything (no torch needed).

    Returns ``{"type", "seed", "goal", "settings"}`` with every default filled in; raises
    SpaceError with the path of the first bad field.
    """
    kind, seed, settings = resolve_settings(strategy_spec)
    return {"type": kind, "seed": seed, "goal": check_goal(goal), "settings": settings}


# The strategies that can run a Pareto search (objective.pareto): evolution selects by
# non-dominated rank and crowding; random search learns nothing, so any objective suits it.
PARETO_STRATEGIES = ("evolution", "random")


def check_pareto_strategy(kind: str, pareto) -> None:
    """SpaceError at ``objective.pareto`` when the strategy cannot search several objectives."""
    if pareto and kind not in PARETO_STRATEGIES:
        raise SpaceError("objective.pareto", f"strategy {kind} learns from one scalar reward and cannot "
                         f"search several objectives; use strategy.type {' or '.join(PARETO_STRATEGIES)}, "
                         "or fold the costs into the reward with objective.penalties")


def make_strategy(strategy_spec: dict, space: SearchSpace, goal: str = "maximize",
                  constraints: Constraints | None = None, pareto=()) -> Strategy:
    """``constraints`` (``kubenas.space.constraints_from_spec(spec)``): hard limits a proposal never breaks;
    ``pareto`` (``spec.objective.pareto``): costs minimized beside the reward (docs/strategies.md)."""
    checked = check_strategy_spec(strategy_spec, goal)
    check_pareto_strategy(checked["type"], pareto)
    strategy_class = _strategy_class(checked["type"])
    return strategy_class(space, seed=checked["seed"], goal=checked["goal"], settings=checked["settings"],
                          constraints=constraints, pareto=pareto)


def _strategy_class(kind: str) -> type[Strategy]:
    if kind == "random":
        return RandomSearch
    if kind == "evolution":
        return RegularizedEvolution
    if kind == "tpe":
        return TPE
    try:
        from .reinforce import Reinforce  # imports torch
    except ImportError as error:
        raise ImportError(
            "the reinforce strategy needs PyTorch; run it where torch is installed "
            "(pip install 'kubenas[train]' or the controller image with torch)") from error
    return Reinforce
