"""Bounds on an experiment object: how deeply it may nest, and how large its accepted spec may be."""
from __future__ import annotations

import json
from typing import Any

from .issues import Issue
from .schema import format_path, openapi_schema


# How deeply a NASExperiment may nest lists and maps, in files and in objects read from
# the API server. A real one nests about a dozen levels (a sub-sub-space's values); the
# CRD's schema leaves no field free to nest deeper. Checked without recursion before
# anything else walks the object: Python's own recursion (repr, deepcopy, the JSON
# decoder) fails near 1000 levels, which the API server would store.
MAX_NESTING = 64

SHOWN_PATH_PARTS = 8  # a too-deep path is named by its first parts


def nesting_issue(value: Any, limit: int = MAX_NESTING) -> Issue | None:
    """The first place where ``value`` nests lists and maps more than ``limit`` levels
    deep, as an Issue naming it; None if it does not. Iterative: any depth is safe."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, dict):
            children = node.items()
        elif isinstance(node, list):
            children = enumerate(node)
        else:
            continue
        if depth == limit:
            shown = format_path(path[:SHOWN_PATH_PARTS]) + ("..." if len(path) > SHOWN_PATH_PARTS else "")
            return Issue(shown or "(top level)",
                         f"nests lists and maps more than {limit} levels deep; a NASExperiment needs about a "
                         "dozen: remove the nesting (the field takes plain values)")
        stack.extend((child, path + (key,), depth + 1) for key, child in children
                     if isinstance(child, (dict, list)))
    return None


def max_spec_bytes() -> int:
    """The most characters the accepted spec (defaults filled, as JSON) may take: the
    operator keeps it in status.acceptedSpec, whose maxLength the CRD sets."""
    status = openapi_schema("NASExperiment")["properties"]["status"]["properties"]
    return int(status["acceptedSpec"]["maxLength"])


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


def _largest_part(spec: dict, size: int) -> tuple[list, int]:
    """The path (under spec) and size of the part that makes most of ``spec``'s size,
    followed down while one part holds at least half of its parent."""
    path: list = []
    node = spec
    while isinstance(node, (dict, list)) and node:
        children = list(node.items() if isinstance(node, dict) else enumerate(node))
        sizes = [(_json_size(child), key) for key, child in children]
        biggest, key = max(sizes, key=lambda pair: pair[0])
        if biggest * 2 < size:
            break
        path.append(key)
        node, size = node[key], biggest
    return path, size


def size_issues(spec: dict) -> list[Issue]:
    """The accepted spec must fit status.acceptedSpec, or the operator could never record
    that it accepted it (every status write would be refused)."""
    limit, size = max_spec_bytes(), _json_size(spec)
    if size <= limit:
        return []
    path, part = _largest_part(spec, size)
    where = f"; most of it is {format_path(['spec', *path])} ({part} characters)" if path else ""
    return [Issue("spec", f"is {size} characters as JSON (defaults filled in); the operator keeps the accepted "
                  f"spec in status.acceptedSpec, which holds at most {limit}{where}: shorten it")]
