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

from ..space import Constraints, SearchSpace
from .base import NoFeasibleCandidate, Strategy, rebuild
from .evolution import RegularizedEvolution
from .random_search import RandomSearch
from .tpe import TPE
from .settings import DEFAULTS, GOALS, STRATEGY_TYPES, check_goal, resolve_settings

__all__ = [
    "DEFAULTS",
    "GOALS",
    "NoFeasibleCandidate",
    "STRATEGY_TYPES",
    "RandomSearch",
    "RegularizedEvolution",
    "Strategy",
    "TPE",
    "check_strategy_spec",
    "make_strategy",
    "rebuild",
]


def check_strategy_spec(strategy_spec: Any, goal: str = "maximize") -> dict[str, Any]:
    """Validate ``spec.strategy`` without building anything (no torch needed).

    Returns ``{"type", "seed", "goal", "settings"}`` with every default filled in; raises
    SpaceError with the path of the first bad field.
    """
    kind, seed, settings = resolve_settings(strategy_spec)
    return {"type": kind, "seed": seed, "goal": check_goal(goal), "settings": settings}


def make_strategy(strategy_spec: dict, space: SearchSpace, goal: str = "maximize",
                  constraints: Constraints | None = None) -> Strategy:
    """``constraints`` (``kubenas.space.constraints_from_spec(spec)``): hard limits a proposal never breaks."""
    checked = check_strategy_spec(strategy_spec, goal)
    strategy_class = _strategy_class(checked["type"])
    return strategy_class(space, seed=checked["seed"], goal=checked["goal"], settings=checked["settings"],
                          constraints=constraints)


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
