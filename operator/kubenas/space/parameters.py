"""The ``parameters`` space: named decisions a user describes, searched for the user's code.

Decisions are categorical, int (range with step), uniform or logUniform (continuous),
conditional (one of named options, each a list of decisions, possibly empty) and repeat
(``min``..``max`` blocks of a list of decisions). A candidate's architecture is
``{"type": "parameters", "parameters": <assignment>}`` (kubenas.contract.parameters,
docs/byo.md).

To the shared machinery (kubenas.space.base) the space is the fixed sequence of its
*unrolled* decisions, in the order a policy emits them: a conditional's option, then
each option's decisions (in force only under that option); a repeat's count, then block
0's decisions, block 1's, ... up to ``max`` blocks (block k in force when the count is
more than k). Controllers switch the nested decisions on and off exactly as a chain
layer's op switches its filters, so sampling, mutation, crossover, encoding, the policy
and the hash need nothing specific to this space. Each top-level decision, with
everything nested in it, is one gene for crossover.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from kubenas.contract.parameters import MAX_NAME, NAME, OPTION_KEY, PARAMETERS_TYPE

from .base import Decision, SearchSpace, same_value
from .continuous import Continuous
from .errors import CandidateError, SpaceError
from .hyperparameters import Hyperparameter
from .spec import check_int, expect_mapping, is_int, is_number, reject_unknown_keys

PARAMETER_TYPES = ("categorical", "int", "uniform", "logUniform", "conditional", "repeat")
_FIELDS = {
    "categorical": ("name", "type", "values"),
    "int": ("name", "type", "min", "max", "step"),
    "uniform": ("name", "type", "min", "max"),
    "logUniform": ("name", "type", "min", "max"),
    "conditional": ("name", "type", "options"),
    "repeat": ("name", "type", "min", "max", "parameters"),
}
# Bounds (the CRD's maxItems repeat them; tests/api checks that they agree).
MAX_DEPTH = 3  # levels of decision lists: top level, a sub-space, a sub-sub-space
MAX_PARAMETERS = 64  # decisions in one list
MAX_OPTIONS = 16
MAX_VALUES = 256
MAX_INT_VALUES = 4096
MAX_REPEAT = 32
MAX_DECISIONS = 1024  # unrolled, every repeat at its max
MAX_POLICY_CHOICES = 32768  # the policy's softmax outputs over all unrolled decisions


@dataclass(frozen=True)
class Parameter:
    """One decision as the user declared it (sub-spaces parsed recursively)."""

    name: str
    type: str
    values: tuple = ()  # categorical and int values; repeat counts
    continuous: Continuous | None = None
    options: tuple = ()  # conditional: ((name, (Parameter, ...)), ...)
    block: tuple = ()  # repeat: (Parameter, ...)


@dataclass
class _Plan:
    """Where a declared decision sits in the unrolled sequence."""

    parameter: Parameter
    position: int
    children: list = field(default_factory=list)  # per option / per block: list of _Plan


class ParametersSpace(SearchSpace):
    type = PARAMETERS_TYPE

    def __init__(self, parameters: list[Parameter], hyperparameters: list[Hyperparameter],
                 path: str = "searchSpace.parameters"):
        self.parameters = tuple(parameters)
        decisions: list[Decision] = []
        self._plans = [self._unroll(p, p.name, gene, None, frozenset(), decisions)
                       for gene, p in enumerate(self.parameters)]
        if len(decisions) > MAX_DECISIONS:
            raise SpaceError(path, f"unrolls to {len(decisions)} decisions (every repeat at its max); at most "
                             f"{MAX_DECISIONS}: lower a repeat's max or move decisions out of repeated blocks")
        outputs = sum(len(d.choices) for d in decisions)
        if outputs > MAX_POLICY_CHOICES:
            raise SpaceError(path, f"unrolls to {outputs} choices in all; at most {MAX_POLICY_CHOICES}: "
                             "raise int steps, shorten values lists or lower a repeat's max")
        super().__init__(decisions, hyperparameters)

    @classmethod
    def from_block(cls, block: Any, hyperparameters: list[Hyperparameter],
                   path: str = "searchSpace.parameters") -> "ParametersSpace":
        if block is None:
            raise SpaceError(path, "is required for searchSpace.type parameters: list the decisions to search")
        parameters = parse_parameters(block, path, depth=1)
        if not parameters:
            raise SpaceError(path, "must list at least one decision")
        return cls(parameters, hyperparameters, path)

    # -- unrolling ------------------------------------------------------------------------

    def _unroll(self, parameter: Parameter, name: str, gene: int, controller: int | None,
                active_for: frozenset, decisions: list[Decision]) -> _Plan:
        position = len(decisions)
        if parameter.type == "conditional":
            choices = tuple(option for option, _ in parameter.options)
        elif parameter.continuous is not None:
            choices = parameter.continuous.representatives()
        else:
            choices = parameter.values
        decisions.append(Decision(name, choices, gene, controller, active_for, parameter.continuous))
        plan = _Plan(parameter, position)
        if parameter.type == "conditional":
            for k, (option, sub) in enumerate(parameter.options):
                plan.children.append([self._unroll(p, f"{name}.{option}.{p.name}", gene, position,
                                                   frozenset({k}), decisions) for p in sub])
        elif parameter.type == "repeat":
            for block in range(parameter.values[-1]):
                when = frozenset(i for i, count in enumerate(parameter.values) if count > block)
                plan.children.append([self._unroll(p, f"{name}[{block}].{p.name}", gene, position, when, decisions)
                                      for p in parameter.block])
        return plan

    # -- genotype <-> decision values --------------------------------------------------------

    def _genotype(self, values: list) -> dict:
        return {"type": PARAMETERS_TYPE, "parameters": _assemble(self._plans, values)}

    def _architecture_values(self, genotype: dict) -> list:
        values: list = [None] * self._architecture_size
        self._read(self._plans, genotype.get("parameters"), "architecture.parameters", values, ())
        return values

    def _read(self, plans: list[_Plan], given: Any, path: str, values: list, extra: tuple) -> None:
        if not isinstance(given, dict):
            raise CandidateError(path, f"must be an object of decision names to values, got {type(given).__name__}")
        names = [plan.parameter.name for plan in plans]
        for key in given:
            if key not in names and key not in extra:
                raise CandidateError(f"{path}.{key}", f"is not a decision here (expected {', '.join(names) or 'none'})")
        for plan in plans:
            where = f"{path}.{plan.parameter.name}"
            if plan.parameter.name not in given:
                raise CandidateError(where, "is missing")
            value = given[plan.parameter.name]
            kind = plan.parameter.type
            if kind == "conditional":
                option = value.get(OPTION_KEY) if isinstance(value, dict) else None
                options = self.decision(plan.position).choices
                if option not in options:
                    raise CandidateError(f"{where}.{OPTION_KEY}" if isinstance(value, dict) else where,
                                         f"a conditional's value is {{'option': one of {', '.join(options)}, ...}}, "
                                         f"got {value!r}")
                values[plan.position] = option
                self._read(plan.children[options.index(option)], value, where, values, (OPTION_KEY,))
            elif kind == "repeat":
                counts = plan.parameter.values
                if not isinstance(value, list) or not counts[0] <= len(value) <= counts[-1]:
                    got = f"{len(value)} blocks" if isinstance(value, list) else repr(value)
                    raise CandidateError(where, f"must be a list of {counts[0]} to {counts[-1]} blocks, got {got}")
                values[plan.position] = len(value)
                for k, block in enumerate(value):
                    self._read(plan.children[k], block, f"{where}[{k}]", values, ())
            else:
                values[plan.position] = self._leaf(plan, value, where)

    def _leaf(self, plan: _Plan, value: Any, where: str) -> Any:
        decision = self.decision(plan.position)
        if decision.continuous is not None:
            if not decision.continuous.contains(value):
                raise CandidateError(where, f"{value!r} is not a number in [{decision.continuous.low}, "
                                     f"{decision.continuous.high}]")
            return value
        if not any(same_value(choice, value) for choice in decision.choices):
            shown = ", ".join(map(str, decision.choices[:10])) + (", ..." if len(decision.choices) > 10 else "")
            raise CandidateError(where, f"{value!r} is not one of {shown}")
        return value

    # -- size -----------------------------------------------------------------------------

    def size(self) -> int:
        """Distinct candidates, counted on the declared tree (inf with a continuous range)."""
        if self._size is None:
            total = _count(self.parameters)
            for hyperparameter in self.hyperparameters:
                total *= len(hyperparameter.values)
            self._size = total
        return self._size


def _assemble(plans: list[_Plan], values: list) -> dict:
    assignment: dict = {}
    for plan in plans:
        value = values[plan.position]
        if plan.parameter.type == "conditional":
            options = [option for option, _ in plan.parameter.options]
            assignment[plan.parameter.name] = {OPTION_KEY: value,
                                               **_assemble(plan.children[options.index(value)], values)}
        elif plan.parameter.type == "repeat":
            assignment[plan.parameter.name] = [_assemble(plan.children[k], values) for k in range(value)]
        else:
            assignment[plan.parameter.name] = value
    return assignment


def _count(parameters) -> int | float:
    total: int | float = 1
    for parameter in parameters:
        if parameter.type == "conditional":
            total *= sum(_count(sub) for _, sub in parameter.options)
        elif parameter.type == "repeat":
            block = _count(parameter.block)
            total *= sum(block ** count for count in parameter.values)
        elif parameter.continuous is not None:
            total *= math.inf if parameter.continuous.low < parameter.continuous.high else 1
        else:
            total *= len(parameter.values)
    return total


# -- parsing spec.searchSpace.parameters ----------------------------------------------------


def parse_parameters(spec: Any, path: str, depth: int, reserved: tuple = ()) -> list[Parameter]:
    """A list of decisions; SpaceError names the first bad field."""
    if not isinstance(spec, list):
        raise SpaceError(path, f"must be a list of decisions, got {type(spec).__name__}")
    if len(spec) > MAX_PARAMETERS:
        raise SpaceError(path, f"has {len(spec)} decisions; at most {MAX_PARAMETERS} in one list")
    parsed: list[Parameter] = []
    for i, item in enumerate(spec):
        parameter = _parse_parameter(item, f"{path}[{i}]", depth, reserved)
        if any(p.name == parameter.name for p in parsed):
            raise SpaceError(f"{path}[{i}].name", f"{parameter.name!r} is used twice in this list; "
                             "give each decision its own name")
        parsed.append(parameter)
    return parsed


def _check_name(value: Any, where: str, reserved: tuple = ()) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME or not NAME.match(value):
        raise SpaceError(where, f"{value!r} is not a name: use letters, digits and _, not starting with a digit, "
                         f"at most {MAX_NAME} characters")
    if value in reserved:
        raise SpaceError(where, f"{value!r} is reserved here (a conditional's value holds the chosen "
                         f"{OPTION_KEY!r}); rename it")
    return value


def _parse_parameter(item: Any, path: str, depth: int, reserved: tuple) -> Parameter:
    item = expect_mapping(item, path)
    name = _check_name(item.get("name"), f"{path}.name", reserved)
    kind = item.get("type")
    if kind not in PARAMETER_TYPES:
        raise SpaceError(f"{path}.type", f"{kind!r} is not one of {', '.join(PARAMETER_TYPES)}")
    reject_unknown_keys(item, _FIELDS[kind], path)
    if kind in ("conditional", "repeat") and depth >= MAX_DEPTH:
        raise SpaceError(f"{path}.type", f"a {kind} here would nest sub-spaces more than {MAX_DEPTH} levels "
                         "deep; flatten the space")
    if kind == "categorical":
        return Parameter(name, kind, values=_categorical(item, path))
    if kind == "int":
        low, high = _bounds(item, path, integer=True)
        step = check_int(item.get("step", 1), f"{path}.step", 1)
        count = (high - low) // step + 1
        if count > MAX_INT_VALUES:
            raise SpaceError(f"{path}.step", f"{count} values is too many for one decision (at most "
                             f"{MAX_INT_VALUES}); raise step")
        return Parameter(name, kind, values=tuple(range(low, high + 1, step)))
    if kind in ("uniform", "logUniform"):
        low, high = _bounds(item, path, integer=False)
        if kind == "logUniform" and low <= 0:
            raise SpaceError(f"{path}.min", f"must be positive for logUniform, got {low}; use uniform or a "
                             "positive min")
        return Parameter(name, kind, continuous=Continuous(float(low), float(high), log=kind == "logUniform"))
    if kind == "conditional":
        return Parameter(name, kind, options=_options(item, path, depth))
    low, high = _bounds(item, path, integer=True)
    if low < 0 or high > MAX_REPEAT:
        raise SpaceError(f"{path}.{'min' if low < 0 else 'max'}", f"a repeat has 0 to {MAX_REPEAT} blocks, "
                         f"got {low if low < 0 else high}")
    if "parameters" not in item:
        raise SpaceError(f"{path}.parameters", "is required: list the decisions of one block (may be empty)")
    block = parse_parameters(item["parameters"], f"{path}.parameters", depth + 1)
    return Parameter(name, kind, values=tuple(range(low, high + 1)), block=tuple(block))


def _bounds(item: dict, path: str, integer: bool) -> tuple:
    bounds = []
    for key in ("min", "max"):
        if key not in item:
            raise SpaceError(f"{path}.{key}", "is required")
        value = item[key]
        if integer and not is_int(value):
            raise SpaceError(f"{path}.{key}", f"must be an integer, got {value!r}")
        if not is_number(value):
            raise SpaceError(f"{path}.{key}", f"must be a finite number, got {value!r}")
        bounds.append(value)
    low, high = bounds
    if low > high:
        raise SpaceError(f"{path}.min", f"must not exceed max ({low} > {high})")
    return low, high


def _categorical(item: dict, path: str) -> tuple:
    values = item.get("values")
    if not isinstance(values, list) or not values:
        raise SpaceError(f"{path}.values", "must be a non-empty list")
    if len(values) > MAX_VALUES:
        raise SpaceError(f"{path}.values", f"has {len(values)} values; at most {MAX_VALUES}")
    checked: list = []
    for i, value in enumerate(values):
        where = f"{path}.values[{i}]"
        if not (isinstance(value, (str, bool)) or is_number(value)):
            raise SpaceError(where, f"must be a string, a finite number or a boolean, got {value!r}")
        if isinstance(value, str) and len(value) > 253:
            raise SpaceError(where, "is longer than 253 characters")
        if any(same_value(earlier, value) for earlier in checked):
            raise SpaceError(where, f"duplicate value {value!r}")
        checked.append(value)
    return tuple(checked)


def _options(item: dict, path: str, depth: int) -> tuple:
    options = item.get("options")
    where = f"{path}.options"
    if not isinstance(options, list) or not options:
        raise SpaceError(where, "must be a non-empty list of {name, parameters}")
    if len(options) > MAX_OPTIONS:
        raise SpaceError(where, f"has {len(options)} options; at most {MAX_OPTIONS}")
    parsed: list = []
    for i, option in enumerate(options):
        option = expect_mapping(option, f"{where}[{i}]")
        reject_unknown_keys(option, ("name", "parameters"), f"{where}[{i}]")
        name = _check_name(option.get("name"), f"{where}[{i}].name")
        if any(name == earlier for earlier, _ in parsed):
            raise SpaceError(f"{where}[{i}].name", f"{name!r} is used twice; give each option its own name")
        sub = parse_parameters(option.get("parameters", []), f"{where}[{i}].parameters", depth + 1, (OPTION_KEY,))
        parsed.append((name, tuple(sub)))
    return tuple(parsed)
