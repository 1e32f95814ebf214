"""Hard constraints on candidates (``spec.constraints``), checked before anything is trained.

    constraints:
      maxParameters: 20000     # trainable parameters of the network the trainer builds
      maxMacs: 500000          # multiply-accumulates per sample
      maxLatencyMs: 2.5        # batch-1 inference on the trial's device (checked by the trainer)
      inputShape: [3, 64, 64]  # only for data read from files (npz, image-folder)
      numClasses: 5            # idem

The numbers come from the genotype alone (``kubenas.contract.cost.architecture_cost``,
the trainer's own counting without torch), so a strategy can refuse a candidate the
moment it draws it: a constrained search never trains a network over its limits.

Latency is not a function of the genotype alone: it depends on the device. ``maxLatencyMs``
is checked by the trainer, on the trial's own device, on the network it has built and not
yet trained (latency does not depend on the weights): a candidate over the limit fails
``ConstraintViolated`` before its first training step (``max_latency_ms``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubenas.contract.cost import DATASET_SHAPES, architecture_cost

from .errors import SpaceError
from .spec import check_int, expect_mapping, reject_unknown_keys

FIELDS = ("maxParameters", "maxMacs", "maxLatencyMs", "inputShape", "numClasses")
_LIMITS = (("maxParameters", "parameters"), ("maxMacs", "macs"))


@dataclass(frozen=True)
class Constraints:
    """Limits on what a candidate may cost; ``violation(candidate)`` says which one it breaks."""

    input_shape: tuple[int, int, int] = (1, 1, 1)
    num_classes: int = 2
    max_parameters: int | None = None
    max_macs: int | None = None

    @property
    def active(self) -> bool:
        return self.max_parameters is not None or self.max_macs is not None

    def cost(self, candidate: dict) -> dict[str, int]:
        return architecture_cost(candidate["architecture"], self.input_shape, self.num_classes)

    def violation(self, candidate: dict) -> str | None:
        """None if the candidate is within every limit, else e.g. 'parameters 31234 > maxParameters 20000'."""
        if not self.active:
            return None
        cost = self.cost(candidate)
        for field, metric in _LIMITS:
            limit = getattr(self, "max_parameters" if field == "maxParameters" else "max_macs")
            if limit is not None and cost[metric] > limit:
                return f"{metric} {cost[metric]} > {field} {limit}"
        return None


NO_CONSTRAINTS = Constraints()


def cheapest_violation(constraints: Constraints, space) -> str | None:
    """The limit that even the cheapest network of a cell space breaks (None if it fits or unknown).

    A cell costs its skeleton plus a non-negative amount per live edge, so where the space
    offers an op that costs nothing (``none``, ``skip_connect``, a pool) the network with
    every edge set to it is the cheapest there is, and a limit below it is unsatisfiable.
    Other spaces (chain: a layer's cost depends on the previous layer's width) are not
    bounded here; there the strategy raises ``NoFeasibleCandidate`` when it finds nothing.
    """
    free = [op for op in ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")
            if space.type == "cell" and op in space.operations]
    if not constraints.active or not free:
        return None
    edges = [[free[0]] * (i + 1) for i in range(space.nodes - 1)]
    genotype = {"type": "cell", "nodes": space.nodes, "edges": edges, **space.skeleton}
    return constraints.violation({"architecture": genotype, "hyperparameters": {}})


def max_latency_ms(spec: dict) -> float | None:
    """``spec.constraints.maxLatencyMs`` (milliseconds, > 0), or None; SpaceError naming it."""
    value = (spec.get("constraints") or {}).get("maxLatencyMs") if isinstance(spec.get("constraints"), dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value != value:
        raise SpaceError("constraints.maxLatencyMs", f"must be a number of milliseconds > 0, got {value!r}")
    return float(value)


def constraints_from_spec(spec: dict) -> Constraints:
    """The ``Constraints`` of an experiment spec (``spec.constraints``, ``spec.trial.dataset``).

    Raises SpaceError naming the field: a bad limit, or a dataset read from files whose
    shape the spec does not state.
    """
    block = spec.get("constraints")
    if block is None:
        return NO_CONSTRAINTS
    path = "constraints"
    block = expect_mapping(block, path)
    reject_unknown_keys(block, FIELDS, path)
    limits: dict[str, Any] = {}
    for field, _ in _LIMITS:
        if block.get(field) is not None:
            limits[field] = check_int(block[field], f"{path}.{field}", low=1)
    max_latency_ms(spec)  # checked by the trainer, on the trial's device
    if not limits:
        return NO_CONSTRAINTS
    dataset = ((spec.get("trial") or {}).get("dataset") or {}).get("name")
    shape, classes = DATASET_SHAPES.get(dataset, (None, None))
    if block.get("inputShape") is not None:
        given = block["inputShape"]
        if not isinstance(given, list) or len(given) != 3:
            raise SpaceError(f"{path}.inputShape", f"must be [channels, height, width], got {given!r}")
        shape = tuple(check_int(v, f"{path}.inputShape[{i}]", low=1) for i, v in enumerate(given))
    if block.get("numClasses") is not None:
        classes = check_int(block["numClasses"], f"{path}.numClasses", low=2)
    if shape is None or classes is None:
        missing = "inputShape" if shape is None else "numClasses"
        raise SpaceError(f"{path}.{missing}", f"dataset {dataset!r} has no fixed shape: state "
                         f"constraints.inputShape [channels, height, width] and constraints.numClasses")
    return Constraints(input_shape=shape, num_classes=classes, max_parameters=limits.get("maxParameters"),
                       max_macs=limits.get("maxMacs"))
