"""The one shape of kubenas' registries: entries registered once by name, kept in
registration order (the CRD enums' order), each naming its class as ``"module:Class"``,
imported only when it is used. The search spaces (``kubenas.contract.spaces``) and the
strategies (``kubenas.strategies.registry``) keep their entries with these."""
from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

Entry = TypeVar("Entry")


def add(entries: dict[str, Entry], entry: Entry, what: str) -> Entry:
    """Register ``entry`` (which has a ``name``) in ``entries``; ValueError if the name is taken."""
    name = getattr(entry, "name")
    if name in entries:
        raise ValueError(f"{what} {name!r} is registered twice")
    entries[name] = entry
    return entry


def names_where(entries: dict[str, Entry], capability: Callable[[Entry], Any]) -> tuple[str, ...]:
    """The names of the entries that have ``capability``, in registration order."""
    return tuple(name for name, entry in entries.items() if capability(entry))


def load_target(target: str) -> type:
    """The class ``"module:Class"`` names, importing its module."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
