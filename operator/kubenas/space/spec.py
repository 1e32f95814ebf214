"""Readers for spec fields that report the exact path of a bad value.

Kubernetes' structural schema already checks types in the cluster, but ``kubenas run``
and direct API users may pass anything, and a precise path is what makes an error
actionable (``searchSpace.chain.filters[1]: must be an integer ...``).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from kubenas.contract.settings import Limit

from .errors import SpaceError

_MISSING = object()


def is_int(value: Any) -> bool:
    # bool is an int subclass, but `true` is never a sensible layer count.
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def expect_mapping(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise SpaceError(path, f"must be an object, got {type(value).__name__}")
    return value


def reject_unknown_keys(mapping: dict, allowed: Iterable[str], path: str) -> None:
    allowed = tuple(allowed)
    for key in mapping:
        if key not in allowed:
            raise SpaceError(f"{path}.{key}", f"unknown field (expected one of {', '.join(allowed)})")


def read_int(mapping: dict, key: str, path: str, default: Any = _MISSING,
             low: int | None = None, high: int | None = None) -> int:
    value = mapping.get(key, _MISSING)
    where = f"{path}.{key}"
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise SpaceError(where, "is required")
        return default
    return check_int(value, where, low, high)


def check_int(value: Any, where: str, low: int | None = None, high: int | None = None) -> int:
    if not is_int(value):
        raise SpaceError(where, f"must be an integer, got {value!r}")
    check_range(value, where, low, high)
    return value


def read_number(mapping: dict, key: str, path: str, default: Any = _MISSING,
                low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False, allow_none: bool = False):
    value = mapping.get(key, _MISSING)
    where = f"{path}.{key}"
    if value is _MISSING or (value is None and not allow_none):
        if default is _MISSING:
            raise SpaceError(where, "is required")
        return default
    if value is None:
        return None
    if not is_number(value):
        raise SpaceError(where, f"must be a finite number, got {value!r}")
    check_range(value, where, low, high, low_open, high_open)
    return float(value)


def check_range(value: float, where: str, low: float | None = None, high: float | None = None,
                low_open: bool = False, high_open: bool = False) -> None:
    problem = Limit(low, high, low_open, high_open).violation(value)
    if problem:
        raise SpaceError(where, problem)


def read_list(mapping: dict, key: str, path: str, default: Iterable[Any],
              check_item: Callable[[Any, str], Any]) -> tuple:
    """A non-empty list without duplicates, each item checked by ``check_item(item, path)``."""
    value = mapping.get(key, _MISSING)
    where = f"{path}.{key}"
    if value is _MISSING or value is None:
        return tuple(default)
    if not isinstance(value, list) or not value:
        raise SpaceError(where, "must be a non-empty list")
    items = []
    for i, item in enumerate(value):
        item = check_item(item, f"{where}[{i}]")
        if item in items:
            raise SpaceError(f"{where}[{i}]", f"duplicate value {item!r}")
        items.append(item)
    return tuple(items)


def one_of(choices: tuple) -> Callable[[Any, str], Any]:
    """An item checker accepting only members of ``choices``."""

    def check(item: Any, where: str) -> Any:
        if isinstance(item, bool) or item not in choices:
            raise SpaceError(where, f"{item!r} is not one of {', '.join(map(str, choices))}")
        return item

    return check
