"""``spec.searchSpace`` -> SearchSpace, through the space registry (kubenas.contract.spaces)."""
from __future__ import annotations

from typing import Any

from kubenas.contract.spaces import space_entry, space_names

from .base import SearchSpace
from .errors import SpaceError
from .hyperparameters import parse_hyperparameters
from .spec import expect_mapping, reject_unknown_keys

PATH = "searchSpace"


def space_from_spec(spec: Any) -> SearchSpace:
    spec = expect_mapping(spec, PATH)
    # The block of another type is ignored rather than refused: `type` says which one
    # the user means, and a schema default elsewhere must not break an experiment.
    # (The experiment validation refuses it, naming it.)
    names = space_names()
    reject_unknown_keys(spec, ("type", *names, "hyperparameters"), PATH)
    kind = spec.get("type")
    if kind not in names:
        raise SpaceError(f"{PATH}.type", f"{kind!r} is not one of {', '.join(names)}")
    hyperparameters = parse_hyperparameters(spec.get("hyperparameters"), f"{PATH}.hyperparameters")
    return space_entry(kind).load().from_block(spec.get(kind), hyperparameters, f"{PATH}.{kind}")
