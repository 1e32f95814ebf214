"""The one shape of kubenas' registries: entries registered once by name, kept in
registration order (the CRD enums' order), each naming its class as ``"module:Class"``,
imported only when it is used. The search spaces (``kubenas.contract.spaces``) and the
strategies (``kubenas.strategies.registry``) are each one ``Registry``."""
from __future__ import annotations

import importlib
from contextlib import contextmanager
from typing import Any, Callable, Generic, Iterator, TypeVar

Entry = TypeVar("Entry")


class Registry(Generic[Entry]):
    """Entries (each with a ``name``) of one kind, ``what`` ("strategy"); ``check`` refuses
    an entry before it is registered (ValueError naming it)."""

    def __init__(self, what: str, check: Callable[[Entry], None] | None = None):
        self.what = what
        self._check = check
        self._entries: dict[str, Entry] = {}

    def register(self, entry: Entry) -> Entry:
        name = getattr(entry, "name")
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        if self._check is not None:
            self._check(entry)
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def entry(self, name: str) -> Entry:
        return self._entries[name]

    def names_where(self, capability: Callable[[Entry], Any]) -> tuple[str, ...]:
        """The names of the entries that have ``capability``, in registration order."""
        return tuple(name for name, entry in self._entries.items() if capability(entry))

    @contextmanager
    def isolated(self) -> Iterator["Registry[Entry]"]:
        """Registrations made inside are undone on leaving (a test's plug-in)."""
        saved = dict(self._entries)
        try:
            yield self
        finally:
            self._entries.clear()
            self._entries.update(saved)


def load_target(target: str) -> type:
    """The class ``"module:Class"`` names, importing its module."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
