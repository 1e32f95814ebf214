"""The search-space machinery shared by the chain and cell spaces.

A space is a fixed-length sequence of categorical *decisions*, the representation of
Zoph & Le (2017) and ENAS (Pham et al. 2018): a policy network emits one decision after
another, evolution mutates one decision at a time (Real et al. 2019), and a candidate is
encoded as the list of chosen indices.

Some decisions only matter given an earlier one (a layer's ``filters`` only when its
``op`` is a convolution). Such a decision names its *controller* and the controller
choices that switch it on. An inactive decision is encoded as 0 and never sampled, so
that every candidate has exactly one encoding, candidates that build the same network
are the same candidate, and a policy gradient is never spent on a choice that changed
nothing.

A decision may be *continuous* (a float in a range, ``Decision.continuous``): its value
is kept as drawn, while its token for the policy is the bin it falls in
(``kubenas.space.continuous``); its ``choices`` are the bins' centres.

Decisions are grouped into *genes* (a chain layer, a cell edge, one hyperparameter):
crossover inherits whole genes, so a child never gets a kernel size from one parent's
convolution and the op from the other's pooling layer.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from kubenas.contract.genotype import GenotypeError, genotype_hash, validate_genotype

from .continuous import Continuous
from .errors import CandidateError
from .hyperparameters import Hyperparameter

Candidate = dict  # {"architecture": genotype, "hyperparameters": {name: value}}


@dataclass(frozen=True)
class Decision:
    name: str  # "layers[2].kernel", "edges[1][0]", "hyperparameters.learningRate"
    choices: tuple
    gene: int
    controller: int | None = None  # position of the decision that switches this one on
    active_for: frozenset = frozenset()  # controller choice indices under which it matters
    continuous: Continuous | None = None  # a float range; choices are then its bins' centres


def same_value(choice: Any, value: Any) -> bool:
    """Equality that survives a JSON/YAML round trip (32 == 32.0) but not bool/int punning."""
    if isinstance(choice, bool) or isinstance(value, bool):
        return type(choice) is type(value) and choice == value
    if isinstance(choice, (int, float)) and isinstance(value, (int, float)):
        return choice == value or math.isclose(choice, value, rel_tol=1e-9, abs_tol=0.0)
    return choice == value


class SearchSpace:
    """A finite space of candidates ``{"architecture": genotype, "hyperparameters": {...}}``.

    Subclasses (ChainSpace, CellSpace) declare the architecture decisions and translate
    between decision values and genotypes; everything else lives here.
    """

    type: str = ""

    def __init__(self, architecture_decisions: list[Decision], hyperparameters: list[Hyperparameter]):
        first_gene = 1 + max((d.gene for d in architecture_decisions), default=-1)
        hyperparameter_decisions = [
            Decision(name=f"hyperparameters.{h.name}", choices=h.values, gene=first_gene + k)
            for k, h in enumerate(hyperparameters)
        ]
        self.hyperparameters = list(hyperparameters)
        self._decisions: list[Decision] = list(architecture_decisions) + hyperparameter_decisions
        self._architecture_size = len(architecture_decisions)
        self._genes: list[list[int]] = self._group_genes()
        for position, decision in enumerate(self._decisions):
            # Enumeration, mutation and the policy rely on this ordering.
            if decision.controller is not None:
                controller = self._decisions[decision.controller]
                assert decision.controller < position and controller.gene == decision.gene, decision
        self._size: int | None = None
        self._network_count: int | None = None

    # -- construction -----------------------------------------------------------------

    @staticmethod
    def from_spec(search_space_spec: dict) -> "SearchSpace":
        """Build a space from an experiment's ``spec.searchSpace``; raises SpaceError."""
        from .factory import space_from_spec  # the subclasses import this module

        return space_from_spec(search_space_spec)

    def _group_genes(self) -> list[list[int]]:
        genes: dict[int, list[int]] = {}
        for position, decision in enumerate(self._decisions):
            genes.setdefault(decision.gene, []).append(position)
        return [genes[g] for g in sorted(genes)]

    # -- what subclasses provide --------------------------------------------------------

    def _genotype(self, values: list) -> dict:
        """The genotype for architecture decision values (None where inactive)."""
        raise NotImplementedError

    def _architecture_values(self, genotype: dict) -> list:
        """Decision values read from a genotype (None where inactive); CandidateError if foreign."""
        raise NotImplementedError

    # -- the decision view (used by the policy network) --------------------------------

    def decisions(self) -> list[tuple[str, tuple]]:
        """``[(name, choices), ...]`` in the order a policy emits them."""
        return [(d.name, d.choices) for d in self._decisions]

    def fixed_fields(self) -> dict:
        """Genotype fields the space fixes rather than searches (the cell skeleton)."""
        return {}

    def fingerprint(self) -> str:
        """A hash of everything that defines the space, to refuse restoring foreign state."""
        payload = {"type": self.type, "decisions": [[d.name, list(d.choices)] if d.continuous is None else
                                                    [d.name, ["log" if d.continuous.log else "uniform",
                                                              d.continuous.low, d.continuous.high]]
                                                    for d in self._decisions],
                   "fixed": self.fixed_fields()}
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def decision(self, position: int) -> Decision:
        return self._decisions[position]

    def __len__(self) -> int:
        return len(self._decisions)

    def is_active(self, position: int, encoding: Sequence[int]) -> bool:
        """Whether decision ``position`` matters, given at least the decisions before it."""
        decision = self._decisions[position]
        if decision.controller is None:
            return True
        return (self.is_active(decision.controller, encoding)
                and encoding[decision.controller] in decision.active_for)

    def active_mask(self, encoding: Sequence[int]) -> list[bool]:
        return [self.is_active(p, encoding) for p in range(len(self._decisions))]

    # -- encoding -------------------------------------------------------------------------

    def encode(self, candidate: Candidate) -> list[int]:
        """The candidate's decision indices (inactive decisions as 0, continuous ones as
        their bin); CandidateError if foreign."""
        return [self._index_of(position, value) for position, value in enumerate(self._values(candidate))]

    def _values(self, candidate: Candidate) -> list:
        """The candidate's decision values as given (None where inactive); CandidateError if foreign."""
        if not isinstance(candidate, dict) or not isinstance(candidate.get("architecture"), dict):
            raise CandidateError("architecture", "a candidate is {'architecture': {...}, 'hyperparameters': {...}}")
        try:
            genotype = validate_genotype(candidate["architecture"])
        except GenotypeError as error:
            raise CandidateError(f"architecture.{error.path}", error.message) from None
        if genotype["type"] != self.type:
            raise CandidateError("architecture.type", f"the space is {self.type!r}, got {genotype['type']!r}")
        return self._architecture_values(genotype) + self._hyperparameter_values(candidate.get("hyperparameters"))

    def decode(self, encoding: Sequence[int], rng: random.Random | None = None) -> Candidate:
        """The candidate for decision indices; values of inactive decisions are ignored.

        A continuous decision's index is a bin: its value is drawn inside the bin with
        ``rng`` (the policy's proposals), or is the bin's centre without one.
        """
        encoding = self._checked_encoding(encoding)
        return self._compose([self._value_at(p, encoding, rng) for p in range(len(encoding))])

    def _value_at(self, position: int, encoding: Sequence[int], rng: random.Random | None) -> Any:
        if not self.is_active(position, encoding):
            return None
        decision = self._decisions[position]
        if decision.continuous is not None:
            return decision.continuous.draw_in_bin(encoding[position], rng)
        return decision.choices[encoding[position]]

    def _compose(self, values: list) -> Candidate:
        """The candidate for decision values (None where inactive)."""
        architecture_values = values[: self._architecture_size]
        hyperparameter_values = values[self._architecture_size:]
        return {
            "architecture": self._genotype(architecture_values),
            "hyperparameters": {h.name: v for h, v in zip(self.hyperparameters, hyperparameter_values)},
        }

    def canonical(self, candidate: Candidate) -> Candidate:
        """The candidate as this space writes it (irrelevant fields dropped, grid values
        exact, continuous values as floats)."""
        values, _ = self._canonical_values(candidate)
        return self._compose(values)

    def _canonical_values(self, candidate: Candidate) -> tuple[list, list[int]]:
        """(values, encoding) of a member: the space's own choice objects, floats for
        continuous decisions, None where inactive; CandidateError if foreign."""
        given = self._values(candidate)
        encoding = [self._index_of(position, value) for position, value in enumerate(given)]
        values = []
        for position, value in enumerate(given):
            decision = self._decisions[position]
            if not self.is_active(position, encoding):
                values.append(None)
            elif decision.continuous is not None:
                values.append(float(value))
            else:
                values.append(decision.choices[encoding[position]])
        return values, encoding

    def contains(self, candidate: Candidate) -> bool:
        try:
            self.encode(candidate)
        except CandidateError:
            return False
        return True

    def candidate_hash(self, candidate: Candidate) -> str:
        """A stable hash that is equal exactly for candidates that build and train the same way."""
        if self.contains(candidate):
            candidate = self.canonical(candidate)
        try:
            return genotype_hash(candidate["architecture"], candidate.get("hyperparameters"))
        except GenotypeError as error:
            raise CandidateError(f"architecture.{error.path}", error.message) from None

    def _hyperparameter_values(self, given: Any) -> list:
        given = {} if given is None else given
        if not isinstance(given, dict):
            raise CandidateError("hyperparameters", "must be an object")
        for name in given:
            if name not in {h.name for h in self.hyperparameters}:
                raise CandidateError(f"hyperparameters.{name}", "is not searched in this space")
        missing = [h.name for h in self.hyperparameters if h.name not in given]
        if missing:
            raise CandidateError(f"hyperparameters.{missing[0]}", "is missing")
        return [given[h.name] for h in self.hyperparameters]

    def _index_of(self, position: int, value: Any) -> int:
        decision = self._decisions[position]
        if value is None:  # inactive decision
            return 0
        prefix = "" if decision.name.startswith("hyperparameters.") else "architecture."
        if decision.continuous is not None:
            if not decision.continuous.contains(value):
                raise CandidateError(prefix + decision.name, f"{value!r} is not a number in "
                                     f"[{decision.continuous.low}, {decision.continuous.high}]")
            return decision.continuous.bin_of(value)
        for index, choice in enumerate(decision.choices):
            if same_value(choice, value):
                return index
        raise CandidateError(prefix + decision.name, f"{value!r} is not one of {', '.join(map(str, decision.choices))}")

    def _checked_encoding(self, encoding: Sequence[int]) -> list[int]:
        encoding = list(encoding)
        if len(encoding) != len(self._decisions):
            raise CandidateError("", f"expected {len(self._decisions)} decisions, got {len(encoding)}")
        for position, index in enumerate(encoding):
            choices = self._decisions[position].choices
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(choices):
                raise CandidateError(self._decisions[position].name, f"index {index!r} is outside 0..{len(choices) - 1}")
        return encoding

    # -- sampling and variation -----------------------------------------------------------

    def sample(self, rng: random.Random) -> Candidate:
        """Each active decision uniformly at random, in order (the policy's prior);
        continuous decisions uniformly in their (log) range."""
        encoding = [0] * len(self._decisions)
        values: list = [None] * len(self._decisions)
        for position in range(len(self._decisions)):
            if self.is_active(position, encoding):
                self._draw(position, encoding, values, rng)
        return self._compose(values)

    def _draw(self, position: int, encoding: list[int], values: list, rng: random.Random) -> None:
        decision = self._decisions[position]
        if decision.continuous is not None:
            values[position] = decision.continuous.draw(rng)
            encoding[position] = decision.continuous.bin_of(values[position])
        else:
            encoding[position] = rng.randrange(len(decision.choices))
            values[position] = decision.choices[encoding[position]]

    def mutate(self, candidate: Candidate, rng: random.Random) -> Candidate:
        """Change exactly one active decision to another of its choices (Real et al. 2019).

        When the changed decision switches others on (identity -> conv needs filters, a
        kernel and a stride), those were never decided, so they are drawn fresh; those it
        switches off are dropped. A space with nothing to change returns a copy.
        A continuous decision takes a Gaussian step (``Continuous.perturb``).
        """
        values, encoding = self._canonical_values(candidate)
        mutable = [p for p, d in enumerate(self._decisions)
                   if len(d.choices) > 1 and self.is_active(p, encoding)]
        if not mutable:
            return copy.deepcopy(self._compose(values))
        position = rng.choice(mutable)
        was_active = self.active_mask(encoding)
        decision = self._decisions[position]
        if decision.continuous is not None:
            values[position] = decision.continuous.perturb(values[position], rng)
            encoding[position] = decision.continuous.bin_of(values[position])
        else:
            current = encoding[position]
            encoding[position] = rng.choice([i for i in range(len(decision.choices)) if i != current])
            values[position] = decision.choices[encoding[position]]
        for later in range(position + 1, len(self._decisions)):
            now_active = self.is_active(later, encoding)
            if now_active and not was_active[later]:
                self._draw(later, encoding, values, rng)
            elif not now_active:
                encoding[later], values[later] = 0, None
        return self._compose(values)

    def crossover(self, a: Candidate, b: Candidate, rng: random.Random) -> Candidate:
        """Uniform crossover of whole genes (layers, edges, hyperparameters)."""
        child, _ = self._canonical_values(a)
        values_b, _ = self._canonical_values(b)
        for gene in self._genes:
            if rng.random() < 0.5:
                for position in gene:
                    child[position] = values_b[position]
        return self._compose(child)

    # -- size and enumeration ---------------------------------------------------------------

    def size(self) -> int:
        """The number of distinct candidates (may be astronomically large; exact int),
        or ``math.inf`` when a continuous range is searched."""
        if any(len(d.choices) > 1 for d in self._decisions if d.continuous is not None):
            return math.inf  # type: ignore[return-value]
        if self._size is None:
            self._size = math.prod(sum(1 for _ in self._gene_configurations(gene)) for gene in self._genes)
        return self._size

    def network_count(self, limit: int = 200_000) -> int:
        """The number of distinct candidate hashes: candidates that build and train differently.

        Smaller than ``size()`` where decisions can be dead (a cell edge into a node that
        cannot reach the output). Counted by enumeration for spaces of at most ``limit``
        candidates (cached); larger spaces report ``size()``, an upper bound.
        """
        if self.size() > limit:
            return self.size()
        if self._network_count is None:
            self._network_count = len({self.candidate_hash(self.decode(e)) for e in self.iter_encodings()})
        return self._network_count

    def iter_encodings(self) -> Iterator[list[int]]:
        """Every distinct candidate's encoding, in lexicographic gene order (small spaces only)."""
        per_gene = [list(self._gene_configurations(gene)) for gene in self._genes]
        for combination in itertools.product(*per_gene):
            encoding = [0] * len(self._decisions)
            for gene, configuration in zip(self._genes, combination):
                for position, index in zip(gene, configuration):
                    encoding[position] = index
            yield encoding

    def _gene_configurations(self, gene: list[int]) -> Iterator[tuple[int, ...]]:
        # Controllers always sit in the same gene, before the decisions they switch.
        def extend(k: int, encoding: list[int]) -> Iterator[tuple[int, ...]]:
            if k == len(gene):
                yield tuple(encoding[p] for p in gene)
                return
            position = gene[k]
            options = range(len(self._decisions[position].choices)) if self.is_active(position, encoding) else (0,)
            for index in options:
                encoding[position] = index
                yield from extend(k + 1, encoding)
            encoding[position] = 0

        yield from extend(0, [0] * len(self._decisions))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(decisions={len(self._decisions)}, size={self.size()})"
