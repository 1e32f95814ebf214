"""``spec.searchSpace`` -> SearchSpace."""
from __future__ import annotations

from typing import Any

from kubenas.contract.ops import SPACE_TYPES

from .base import SearchSpace
from .cell import CellSpace
from .chain import ChainSpace
from .errors import SpaceError
from .hyperparameters import parse_hyperparameters
from .parameters import ParametersSpace
from .spec import expect_mapping, reject_unknown_keys

PATH = "searchSpace"


def space_from_spec(spec: Any) -> SearchSpace:
    spec = expect_mapping(spec, PATH)
    # The block of the other type is ignored rather than refused: `type` says which one
    # the user means, and a schema default elsewhere must not break an experiment.
    reject_unknown_keys(spec, ("type", "chain", "cell", "parameters", "hyperparameters"), PATH)
    kind = spec.get("type")
    if kind not in SPACE_TYPES:
        raise SpaceError(f"{PATH}.type", f"{kind!r} is not one of {', '.join(SPACE_TYPES)}")
    hyperparameters = parse_hyperparameters(spec.get("hyperparameters"), f"{PATH}.hyperparameters")
    if kind == "chain":
        return ChainSpace.from_block(spec.get("chain"), hyperparameters, f"{PATH}.chain")
    if kind == "parameters":
        return ParametersSpace.from_block(spec.get("parameters"), hyperparameters, f"{PATH}.parameters")
    return CellSpace.from_block(spec.get("cell"), hyperparameters, f"{PATH}.cell")
