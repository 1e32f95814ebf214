"""The search-space registry: one entry per kind of space, registered once.

An entry says everything the rest of kubenas needs to know about a kind of space
without importing it: its name (``spec.searchSpace.type``, the key of its block, and
the ``type`` of its architectures), where its ``SearchSpace`` class lives (imported
only when a space is built), the format of its architectures (check, canonical form
for duplicate detection, one-line description, the ops it decides), and its
capabilities: whether the built-in trainer builds its networks (else the user's
``trial.command`` or ``trial.model.builder`` does), and whether a one-shot supernet
shares weights over it.

``kubenas.space.SearchSpace.from_spec``, ``validate_genotype``, the experiment
validation (the space's block, the user-code rule), the CRD enum test
(tests/contract/test_space_registry.py) and the docs table (docs/strategies.md,
"Search spaces") read it. The built-in spaces register in ``kubenas.contract.genotype``,
beside their architecture formats; a new space is a module with its ``SearchSpace``
subclass and format plus one ``register`` call (docs/architecture.md, "Adding a search space").

Part of the contract (imports nothing outside it): the trainer reads which spaces it
builds from here.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from .registry import Registry, load_target


def _as_is(architecture: dict) -> dict:
    return architecture


def _as_json(architecture: dict) -> str:
    return json.dumps({k: v for k, v in architecture.items() if k != "type"}, sort_keys=True,
                      separators=(",", ":"))


def _no_ops(architecture: dict) -> list[str]:
    return []


@dataclass(frozen=True)
class SpaceEntry:
    name: str
    target: str  # "module:Class", a kubenas.space.SearchSpace subclass with from_block(block, hyperparameters, path)
    summary: str  # one line, the docs table's
    # An architecture of this space -> the same architecture, or GenotypeError naming the decision at fault.
    check: Callable[[dict], dict]
    # The form duplicate detection hashes: decisions that do not change the network dropped.
    canonical: Callable[[dict], dict] = _as_is
    describe: Callable[[dict], str] = _as_json  # one line for leaderboards and the experiment status
    ops: Callable[[dict], list[str]] = _no_ops  # the operation at each decision (op-frequency plots)
    built_by_trainer: bool = False  # the built-in trainer builds its networks; else the user's code does
    supernet: bool = False  # spec.oneShot can train a weight-sharing supernet over it

    def load(self) -> type:
        return load_target(self.target)


def _not_a_field(entry: SpaceEntry) -> None:
    if entry.name in ("type", "hyperparameters"):
        raise ValueError(f"search space {entry.name!r}: the name is a field of spec.searchSpace")


SPACES: Registry[SpaceEntry] = Registry("search space", _not_a_field)
register = SPACES.register
space_names = SPACES.names  # in registration order: the CRD enums' order
space_entry = SPACES.entry


def trainer_built_spaces() -> tuple[str, ...]:
    """The spaces whose networks the built-in trainer builds."""
    return SPACES.names_where(lambda entry: entry.built_by_trainer)


def supernet_spaces() -> tuple[str, ...]:
    """The spaces a one-shot supernet shares weights over."""
    return SPACES.names_where(lambda entry: entry.supernet)


from . import genotype as _genotype  # noqa: E402,F401  (registers the built-in spaces)
