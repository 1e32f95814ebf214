"""The strategy registry: one entry per strategy, registered once.

An entry says everything the rest of kubenas needs to know about a strategy without
importing it (torch stays unloaded for the operator): its name, where its class lives,
its settings' defaults and reader, and its capabilities. ``make_strategy``, the
experiment validation, the CRD enum test (tests/strategies/test_registry.py) and the
docs table check read it. Adding a strategy is a module with the class plus one
``register`` call (kubenas.strategies.settings registers the built-in ones), and the
name in the CRD's ``spec.strategy.type`` enum (the test names it when it is missing).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kubenas.contract.registry import Registry, load_target

# block, its path ("strategy.<name>"), the defaults -> the settings (SpaceError on nonsense)
SettingsReader = Callable[[dict, str, Mapping[str, Any]], dict]


@dataclass(frozen=True)
class StrategyEntry:
    name: str
    target: str  # "module:Class", imported only when a strategy is made
    summary: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    read_settings: SettingsReader | None = None
    pareto: bool = False  # can search several objectives (objective.pareto)
    continuous: str = "native"  # "native": draws floats; "binned": learns over bins (kubenas.space.continuous)
    needs_torch: bool = False

    def settings(self, block: dict, path: str) -> dict[str, Any]:
        settings = dict(self.defaults)
        if self.read_settings is not None:
            settings.update(self.read_settings(block, path, self.defaults))
        return settings

    def load(self) -> type:
        try:
            return load_target(self.target)
        except ImportError as error:
            if not self.needs_torch:
                raise
            raise ImportError(
                f"the {self.name} strategy needs PyTorch; run it where torch is installed "
                "(pip install 'kubenas[train]' or the controller image with torch)") from error


def _continuous_known(entry: StrategyEntry) -> None:
    if entry.continuous not in ("native", "binned"):
        raise ValueError(f"strategy {entry.name!r}: continuous must be 'native' or 'binned'")


STRATEGIES: Registry[StrategyEntry] = Registry("strategy", _continuous_known)
register = STRATEGIES.register
strategy_names = STRATEGIES.names  # in registration order: the CRD enum's order
strategy_entry = STRATEGIES.entry


def pareto_strategies() -> tuple[str, ...]:
    return STRATEGIES.names_where(lambda entry: entry.pareto)
