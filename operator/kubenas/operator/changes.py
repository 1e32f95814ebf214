"""Spec changes while an experiment runs (pure).

Only ``budget.maxTrials`` and ``budget.parallelTrials`` may change after the operator
accepted a spec: both take effect at once. Any other change is refused: the accepted
spec (annotation ``kubenas.io/accepted-spec``) stays in force, and the experiment gets
a ``SpecChangeRefused`` condition naming the fields.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

from kubenas.api.defaults import with_defaults

MUTABLE = (("budget", "maxTrials"), ("budget", "parallelTrials"))


@dataclass
class SpecChange:
    effective: dict                              # the accepted spec with the allowed changes applied
    applied: dict = field(default_factory=dict)  # "spec.budget.maxTrials" -> (old, new)
    refused: list[str] = field(default_factory=list)  # field paths


def diff_paths(a, b, prefix: str = "spec") -> list[str]:
    """Paths where two JSON values differ (dicts recursively, lists as a whole)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += diff_paths(a.get(key), b.get(key), f"{prefix}.{key}")
        return out
    return [] if a == b else [prefix]


def compare(accepted: dict, spec: dict) -> SpecChange:
    """What a new ``spec`` changes relative to the ``accepted`` one (with defaults)."""
    new = copy.deepcopy(spec)
    effective = copy.deepcopy(accepted)
    applied = {}
    for block, key in MUTABLE:
        old_value = accepted.get(block, {}).get(key)
        new_value = (new.get(block) or {}).get(key)
        if new_value is not None and new_value != old_value:
            applied[f"spec.{block}.{key}"] = (old_value, new_value)
            effective[block][key] = new_value
        # Compare the rest as if the mutable fields had not changed, so that defaults
        # derived from them (maxFailedTrials) do not count as a change.
        if old_value is not None:
            new.setdefault(block, {})[key] = old_value
    refused = diff_paths(accepted, with_defaults(new))
    return SpecChange(effective=effective, applied=applied, refused=refused)
