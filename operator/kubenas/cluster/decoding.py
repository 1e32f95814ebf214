"""JSON from the API server, decoded whatever its nesting.

Python's JSON decoder recurses and gives up near 1000 levels of nesting (RecursionError);
the API server stores and serves up to 10,000. The CRDs leave no field a tenant could
nest that deeply (docs/security.md), but an object stored under an older schema, or one
written by a component with more rights, would otherwise stop every list and watch that
carries it, for every tenant. :func:`loads` decodes such a document anyway, without
recursion, with each list or map deeper than ``MAX_DEPTH`` replaced by :data:`TOO_DEEP`:
the object is delivered, its nesting is named by validation (kubenas.api.bounds,
nesting_issue) and only its own experiment fails.

Documents of ordinary depth take ``json.loads`` itself; the slow path runs only after it
raised RecursionError.
"""
from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 128  # lists and maps, counted from the document (a list answer adds 2)
TOO_DEEP = "<nested too deep: not read>"

_TOKEN = re.compile(r"""\s*(?:
    (?P<open>[\[{]) | (?P<close>[\]}]) | (?P<sep>[,:]) |
    (?P<string>"(?:[^"\\]|\\.)*") |
    (?P<scalar>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null)
)""", re.VERBOSE)
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_MISSING = object()


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads``, except that nesting deeper than Python's recursion limit is read
    too, cut at ``MAX_DEPTH`` (see the module's doc)."""
    try:
        return json.loads(data)
    except RecursionError:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        return bounded_loads(text)


def bounded_loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Decode ``text`` iteratively; every list or map that would sit deeper than
    ``max_depth`` is read as the string :data:`TOO_DEEP`. ValueError if it is not JSON."""
    stack: list[list] = []  # [container, pending key of a map (or _MISSING)]
    root: Any = _MISSING
    pos = 0

    def put(value: Any) -> None:
        nonlocal root
        if not stack:
            if root is not _MISSING:
                raise ValueError(f"extra data at character {pos}")
            root = value
            return
        frame = stack[-1]
        if isinstance(frame[0], list):
            frame[0].append(value)
        elif frame[1] is _MISSING:
            raise ValueError(f"a map value without a key at character {pos}")
        else:
            frame[0][frame[1]] = value
            frame[1] = _MISSING

    while True:
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip():
                raise ValueError(f"not JSON at character {pos}")
            break
        pos = match.end()
        kind, token = match.lastgroup, match.group(match.lastgroup)
        if kind == "open":
            if len(stack) >= max_depth:
                pos = _skip_container(text, pos)
                put(TOO_DEEP)
                continue
            container: list | dict = [] if token == "[" else {}
            put(container)
            stack.append([container, _MISSING])
        elif kind == "close":
            if not stack or (token == "]") != isinstance(stack[-1][0], list):
                raise ValueError(f"unbalanced {token} at character {pos}")
            stack.pop()
        elif kind == "string":
            value = json.loads(token)
            frame = stack[-1] if stack else None
            if frame is not None and isinstance(frame[0], dict) and frame[1] is _MISSING:
                frame[1] = value  # a key
            else:
                put(value)
        elif kind == "scalar":
            put(json.loads(token))
    if stack or root is _MISSING:
        raise ValueError("the document ends inside a list or map")
    return root


def _skip_container(text: str, pos: int) -> int:
    """The position after the list or map whose opening bracket ends at ``pos``."""
    depth = 1
    for match in _STRUCTURE.finditer(text, pos):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    raise ValueError("the document ends inside a list or map")
