"""Training hyperparameters searched jointly with the architecture.

Every hyperparameter becomes one finite decision. Continuous ranges are discretized to a
grid (log-spaced for ``logUniform``), as the policy network of Zoph & Le (2017) needs a
softmax over a finite set, and so that random search, evolution and REINFORCE all search
the same finite space, in which a duplicate is an exact match that need not be retrained.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from kubenas.contract.settings import SEARCHABLE, SETTINGS, Setting

from .errors import SpaceError
from .spec import check_int, expect_mapping, is_int, is_number, read_int, reject_unknown_keys

HYPERPARAMETER_TYPES = ("logUniform", "uniform", "int", "categorical")
DEFAULT_GRID_POINTS = 8
MAX_GRID_POINTS = 100  # the CRD's maximum for hyperparameters[].grid (tests/contract)
MAX_CHOICES = 4096
# Grid values keep 4 significant digits: readable in trial specs and leaderboards
# (0.001931, not 0.0019306977288832496) and exactly stable through JSON.
SIGNIFICANT_DIGITS = 4

# Which hyperparameter types make sense for a setting of each kind (kubenas.contract.settings).
_TYPES_FOR_KIND = {
    "float": ("logUniform", "uniform", "categorical"),
    "int": ("int", "categorical"),
    "choice": ("categorical",),
}
_FIELDS_FOR_TYPE = {
    "logUniform": ("name", "type", "min", "max", "grid"),
    "uniform": ("name", "type", "min", "max", "grid"),
    "int": ("name", "type", "min", "max", "step"),
    "categorical": ("name", "type", "values"),
}


@dataclass(frozen=True)
class Hyperparameter:
    name: str
    type: str
    values: tuple  # the finite set searched, in a fixed order


def parse_hyperparameters(spec: Any, path: str = "searchSpace.hyperparameters") -> list[Hyperparameter]:
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise SpaceError(path, "must be a list")
    parsed: list[Hyperparameter] = []
    for i, item in enumerate(spec):
        hyperparameter = parse_hyperparameter(item, f"{path}[{i}]")
        if any(h.name == hyperparameter.name for h in parsed):
            raise SpaceError(f"{path}[{i}].name", f"{hyperparameter.name!r} is listed twice")
        parsed.append(hyperparameter)
    return parsed


def parse_hyperparameter(item: Any, path: str) -> Hyperparameter:
    item = expect_mapping(item, path)
    name = item.get("name")
    if name not in SEARCHABLE:
        raise SpaceError(f"{path}.name", f"{name!r} is not one of {', '.join(SEARCHABLE)}")
    meaning = SETTINGS[name]
    kind = item.get("type")
    if kind not in _TYPES_FOR_KIND[meaning.kind]:
        raise SpaceError(f"{path}.type", f"{name} takes type {' or '.join(_TYPES_FOR_KIND[meaning.kind])}, got {kind!r}")
    reject_unknown_keys(item, _FIELDS_FOR_TYPE[kind], path)
    if kind == "categorical":
        values = _categorical_values(item, path, meaning)
    elif kind == "int":
        values = _integer_values(item, path, meaning)
    else:
        values = _grid_values(item, path, meaning, logarithmic=kind == "logUniform")
    return Hyperparameter(name=name, type=kind, values=values)


def _check_meaning(value: Any, where: str, meaning: Setting) -> Any:
    """A value the trainer accepts for this setting (the same limits: kubenas.contract.settings)."""
    if meaning.kind == "choice":
        if value not in meaning.choices:
            raise SpaceError(where, f"{value!r} is not one of {', '.join(meaning.choices)}")
        return value
    if meaning.kind == "int" and not is_int(value):
        raise SpaceError(where, f"must be an integer, got {value!r}")
    if not is_number(value):
        raise SpaceError(where, f"must be a finite number, got {value!r}")
    problem = meaning.limit.violation(value) if meaning.limit else None
    if problem:
        raise SpaceError(where, problem)
    return value


def _categorical_values(item: dict, path: str, meaning: Setting) -> tuple:
    values = item.get("values")
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{path}.values", "must be a non-empty list")
    checked: list = []
    for i, value in enumerate(values):
        value = _check_meaning(value, f"{path}.values[{i}]", meaning)
        if value in checked:
            raise SpaceError(f"{path}.values[{i}]", f"duplicate value {value!r}")
        checked.append(value)
    return tuple(checked)


def _min_max(item: dict, path: str, meaning: Setting) -> tuple:
    for key in ("min", "max"):
        if key not in item:
            raise SpaceError(f"{path}.{key}", "is required")
    low = _check_meaning(item["min"], f"{path}.min", meaning)
    high = _check_meaning(item["max"], f"{path}.max", meaning)
    if low > high:
        raise SpaceError(f"{path}.min", f"must not exceed max ({low} > {high})")
    return low, high


def _integer_values(item: dict, path: str, meaning: Setting) -> tuple:
    low, high = _min_max(item, path, meaning)
    step = read_int(item, "step", path, default=1, low=1)
    count = (high - low) // step + 1
    if count > MAX_CHOICES:
        raise SpaceError(path, f"{count} values is too many for one decision (at most {MAX_CHOICES}); raise step")
    return tuple(range(low, high + 1, step))


def _grid_values(item: dict, path: str, meaning: Setting, logarithmic: bool) -> tuple:
    low, high = _min_max(item, path, meaning)
    if logarithmic and low <= 0:
        raise SpaceError(f"{path}.min", f"must be positive for logUniform, got {low}")
    points = item.get("grid", DEFAULT_GRID_POINTS)
    check_int(points, f"{path}.grid", 2, MAX_GRID_POINTS)
    if low == high:
        return (float(low),)
    if logarithmic:
        raw = [math.exp(math.log(low) + (math.log(high) - math.log(low)) * k / (points - 1)) for k in range(points)]
    else:
        raw = [low + (high - low) * k / (points - 1) for k in range(points)]
    # The ends are exactly what the user wrote; interior points are rounded.
    raw[0], raw[-1] = low, high
    values: list[float] = []
    for value in raw:
        if value not in (low, high):
            value = min(max(float(f"{value:.{SIGNIFICANT_DIGITS}g}"), low), high)
        value = float(value)
        if value not in values:  # rounding can merge neighbours of a very narrow range
            values.append(value)
    return tuple(values)
