"""The assignment of a ``parameters`` space: what a user's trial receives (docs/byo.md).

An assignment maps decision names to values::

    {"lr": 0.0031, "activation": "gelu",
     "norm": {"option": "batchnorm", "momentum": 0.912},     # conditional
     "layers": [{"width": 64}, {"width": 208}]}               # repeat (count = length)

In a trial spec it is the architecture: ``{"type": "parameters", "parameters": {...}}``.
This module knows the format only (no space): its shape, a flat view for environment
variables and command substitution, and a one-line summary. Whether an assignment is a
member of a given space is ``kubenas.space``'s business.
"""
from __future__ import annotations

import math
import re
from typing import Any

PARAMETERS_TYPE = "parameters"
OPTION_KEY = "option"  # the chosen option of a conditional decision
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME = 63
MAX_ASSIGNMENT_DEPTH = 8  # objects/lists; a valid space nests at most 3 sub-spaces (6 levels)


class AssignmentError(ValueError):
    """An assignment that is not shaped like one; ``path`` names the bad value."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (str, int, bool))


def check_assignment(assignment: Any, path: str = "parameters") -> dict:
    """Return ``assignment`` if it has the shape of one (names, scalars, option objects,
    lists of blocks), else raise AssignmentError naming the first bad value."""
    _check_object(assignment, path, 1)
    return assignment


def _check_object(value: Any, path: str, depth: int) -> None:
    if depth > MAX_ASSIGNMENT_DEPTH:
        raise AssignmentError(path, f"is nested more than {MAX_ASSIGNMENT_DEPTH} levels deep")
    if not isinstance(value, dict):
        raise AssignmentError(path, f"must be an object of decision names to values, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > MAX_NAME or not NAME.match(key):
            raise AssignmentError(path, f"{key!r} is not a decision name (letters, digits and _, "
                                  f"at most {MAX_NAME} characters)")
        _check_value(item, f"{path}.{key}", depth)


def _check_value(value: Any, path: str, depth: int) -> None:
    if isinstance(value, dict):
        if not isinstance(value.get(OPTION_KEY), str):
            raise AssignmentError(f"{path}.{OPTION_KEY}", "a conditional decision's object names its option")
        _check_object(value, path, depth + 1)
    elif isinstance(value, list):
        for i, block in enumerate(value):
            _check_object(block, f"{path}[{i}]", depth + 1)
    elif not _scalar(value):
        raise AssignmentError(path, f"must be a string, number, boolean, option object or list of blocks, "
                              f"got {value!r}")


def flatten(assignment: dict, prefix: str = "") -> dict[str, Any]:
    """The assignment as flat ``path -> scalar`` pairs, in the assignment's order.

    A conditional gives ``name`` (the option) and ``name.<sub>``; a repeat gives ``name``
    (the count) and ``name[i].<sub>``.
    """
    flat: dict[str, Any] = {}
    for key, value in assignment.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            flat[path] = value.get(OPTION_KEY)
            flat.update(flatten({k: v for k, v in value.items() if k != OPTION_KEY}, f"{path}."))
        elif isinstance(value, list):
            flat[path] = len(value)
            for i, block in enumerate(value):
                flat.update(flatten(block, f"{path}[{i}]."))
        else:
            flat[path] = value
    return flat


def describe_assignment(assignment: dict) -> str:
    """One line for leaderboards: ``lr=0.0031 norm=batchnorm(momentum=0.912) layers=[width=64, width=208]``."""
    return " ".join(f"{key}={_describe(value)}" for key, value in assignment.items())


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        inner = " ".join(f"{k}={_describe(v)}" for k, v in value.items() if k != OPTION_KEY)
        return f"{value.get(OPTION_KEY)}({inner})" if inner else str(value.get(OPTION_KEY))
    if isinstance(value, list):
        return "[" + ", ".join(" ".join(f"{k}={_describe(v)}" for k, v in block.items()) for block in value) + "]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
