"""The contract every search strategy keeps, and the bookkeeping they share.

Strategies run asynchronously (as in the parallel workers of Zoph & Le 2017 and Real et
al. 2019): ``propose`` may be called many times before any reward arrives, ``observe``
takes results in completion order, and a failed trial (reward None) is remembered but
never learned from.

Resuming exactly is a design rule, not an afterthought. A strategy's state is a function
of only (a) the set of candidates proposed so far and (b) the finished trials in
completion order; a proposal is a function of only that state, the seed and the trial
index, because its randomness comes from an rng derived from ``(seed, index)`` instead
of one stream that advances with every call. A controller killed at any moment can
therefore rebuild its strategy from the NASTrial objects (``rebuild``) and propose what
it would have proposed anyway.
"""
from __future__ import annotations

import copy
import logging
import random
from typing import Any

from kubenas.contract import finite_number
from kubenas.contract.pareto import objective_vector

from ..space import NO_CONSTRAINTS, Candidate, CandidateError, Constraints, SearchSpace, SpaceError
from .settings import DEFAULTS

STATE_FORMAT = 1
log = logging.getLogger(__name__)


class NoFeasibleCandidate(SpaceError):
    """No candidate within ``spec.constraints`` was found: the limits leave (almost) nothing."""


class Strategy:
    """Base class: subclasses implement ``_candidate`` and, if they learn, ``_learn``."""

    type = ""
    # How hard a proposal tries to be new before falling back to a local search.
    MAX_RESAMPLES = 100
    MAX_WALK_STEPS = 1000
    # Spaces up to this size are enumerated when random search for an unseen candidate fails.
    MAX_ENUMERATION = 200_000

    def __init__(self, space: SearchSpace, seed: int = 0, goal: str = "maximize",
                 settings: dict[str, Any] | None = None, constraints: Constraints | None = None,
                 pareto: list[str] | tuple[str, ...] = ()):
        self.space = space
        # objective.pareto: costs minimized beside the reward; then a fitness is the
        # objective vector (kubenas.contract.pareto), and only evolution learns from it.
        self.pareto: tuple[str, ...] = tuple(pareto or ())
        self.constraints = constraints or NO_CONSTRAINTS
        self.repeats: list[tuple[int, str]] = []  # (index, why) of proposals that repeat a seen network
        self.seed = seed
        self.goal = goal
        # Validated settings come from make_strategy; direct construction gets the defaults.
        self.settings = {**DEFAULTS.get(self.type, {}), **(settings or {})}
        self._pending: dict[int, Candidate] = {}
        self._observed: set[int] = set()
        self._seen: set[str] = set()  # hashes of in-space candidates ever proposed or observed

    # -- what subclasses provide ---------------------------------------------------------

    def _candidate(self, index: int, rng: random.Random) -> Candidate:
        """One draw of the strategy; may be a duplicate (the caller retries)."""
        raise NotImplementedError

    def _learn(self, index: int, candidate: Candidate, fitness: float) -> None:
        """Take a successful trial into account; ``fitness`` is larger-is-better (with
        ``pareto`` set, a tuple: the reward's fitness, then each cost negated)."""

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, state: dict) -> None:
        pass

    # -- the public contract -------------------------------------------------------------

    def propose(self, index: int) -> Candidate:
        """The candidate for trial ``index``; asking again for a pending index returns the same one."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"a trial index is a non-negative integer, got {index!r}")
        if index in self._pending:
            return copy.deepcopy(self._pending[index])
        if index in self._observed:
            raise ValueError(f"trial {index} has already finished; propose a new index")
        candidate = self._unseen_candidate(index, self.proposal_rng(index))
        self.register_proposal(index, candidate)
        return copy.deepcopy(candidate)

    def register_proposal(self, index: int, candidate: Candidate) -> None:
        """Record a proposal made elsewhere (by an earlier incarnation of the controller)."""
        if index in self._pending or index in self._observed:
            return
        canonical = self._canonical(candidate)
        if canonical is None:  # foreign to the space: keep it as given, it cannot recur
            self._pending[index] = copy.deepcopy(candidate)
            return
        self._pending[index] = canonical
        self._seen.add(self.space.candidate_hash(canonical))

    def observe(self, index: int, candidate: Candidate, reward: float | None, metrics: dict | None = None) -> None:
        """A finished trial; ``reward`` None (or not finite) means it failed. Repeats are ignored.

        ``metrics`` (the trial's measured metrics) give the costs of ``objective.pareto``;
        a trial without one of them is not learned from (it cannot be placed on a front).
        """
        if index in self._observed:
            return
        self._observed.add(index)
        self._pending.pop(index, None)
        canonical = self._canonical(candidate)
        if canonical is None:
            return  # not a member of this space: nothing to learn from or to avoid
        self._seen.add(self.space.candidate_hash(canonical))
        fitness = self.fitness(reward)
        if fitness is not None and self.pareto:
            fitness = objective_vector(fitness, metrics, self.pareto)
            if fitness is None:
                log.warning("trial %d did not measure %s: not learned from", index, ", ".join(self.pareto))
        if fitness is not None:
            self._learn(index, canonical, fitness)

    def state_dict(self) -> dict:
        """Everything needed to continue exactly; JSON-serializable and compact.

        Holds hashes of seen candidates rather than the candidates themselves, so that
        thousands of trials fit a ConfigMap; only pending proposals are kept whole.
        """
        return {
            "format": STATE_FORMAT,
            "type": self.type,
            "seed": self.seed,
            "goal": self.goal,
            "settings": dict(self.settings),
            "space": self.space.fingerprint(),
            "pending": [[index, self._pending[index]] for index in sorted(self._pending)],
            "observed": sorted(self._observed),
            "seen": sorted(self._seen),
            **({"pareto": list(self.pareto)} if self.pareto else {}),
            **self._extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        expected = {"format": STATE_FORMAT, "type": self.type, "seed": self.seed, "goal": self.goal,
                    "settings": self.settings, "space": self.space.fingerprint()}
        for key, value in expected.items():
            if state.get(key) != value:
                raise ValueError(f"cannot restore strategy state: {key} is {state.get(key)!r}, expected {value!r}")
        if list(state.get("pareto") or []) != list(self.pareto):
            raise ValueError(f"cannot restore strategy state: pareto is {state.get('pareto')!r}, "
                             f"expected {list(self.pareto)!r}")
        self._pending = {int(index): candidate for index, candidate in state["pending"]}
        self._observed = set(state["observed"])
        self._seen = set(state["seen"])
        self._load_extra_state(state)

    # -- helpers --------------------------------------------------------------------------

    @property
    def pending(self) -> dict[int, Candidate]:
        """Proposed trials without a result yet (index -> candidate)."""
        return copy.deepcopy(self._pending)

    @property
    def exhausted(self) -> bool:
        """True when every distinct network of the space has been proposed: proposals must repeat."""
        return len(self._seen) >= self.space.network_count(self.MAX_ENUMERATION)

    def is_seen(self, candidate: Candidate) -> bool:
        """Whether a candidate that builds and trains the same way was proposed or observed.

        The hash is of the canonical genotype (``kubenas.contract.genotype.canonical_genotype``):
        a cell edge that cannot reach the output counts as ``none``.
        """
        return self.space.candidate_hash(candidate) in self._seen

    def is_feasible(self, candidate: Candidate) -> bool:
        return self.constraints.violation(candidate) is None

    def _acceptable(self, candidate: Candidate) -> bool:
        return not self.is_seen(candidate) and self.is_feasible(candidate)

    def fitness(self, reward: float | None) -> float | None:
        """Larger-is-better fitness, or None for a failed trial.

        A reward that is not a finite number (a diverged trainer reporting NaN, garbage in
        a status) counts as a failure: one NaN must not poison a population or a policy.
        """
        reward = finite_number(reward)
        if reward is None:
            return None
        return reward if self.goal == "maximize" else -reward

    def proposal_rng(self, index: int) -> random.Random:
        # A string seed is hashed with SHA-512, so this is stable across processes and
        # Python versions (unlike hash()), and independent of every other proposal. The
        # strategy type is left out on purpose: under one seed, evolution's random initial
        # population starts as random search does, which pairs benchmark comparisons.
        return random.Random(f"kubenas/{self.seed}/{index}")

    def _canonical(self, candidate: Candidate) -> Candidate | None:
        try:
            return self.space.canonical(candidate)
        except CandidateError:
            return None

    def _unseen_candidate(self, index: int, rng: random.Random) -> Candidate:
        """Draw until the candidate is new and within the constraints.

        Duplicates (same canonical hash) are never trained twice while an unseen network
        is left; a candidate over a hard constraint is never proposed at all
        (``NoFeasibleCandidate`` when none can be found). A repeat is allowed only when
        every feasible network has been proposed, and is logged with its reason.
        """
        candidate = self._candidate(index, rng)
        for _ in range(self.MAX_RESAMPLES - 1):
            if self._acceptable(candidate):
                return candidate
            candidate = self._candidate(index, rng)
        if not self._acceptable(candidate) and not self.exhausted:
            candidate = self._nearest_unseen(candidate, rng)
        if not self.is_feasible(candidate):
            candidate = self._any_feasible(candidate, rng)
        if self.is_seen(candidate):
            if self.exhausted:
                why = "every distinct network of the space has been proposed"
            elif self.space.size() <= self.MAX_ENUMERATION:  # the enumeration found none
                why = "every network within the constraints has been proposed"
            else:
                why = (f"no unseen feasible candidate found in {self.MAX_RESAMPLES} draws and "
                       f"{self.MAX_WALK_STEPS} mutations")
            self.repeats.append((index, why))
            log.warning("trial %d repeats an architecture already proposed (hash %s): %s",
                        index, self.space.candidate_hash(candidate), why)
        return candidate

    def _nearest_unseen(self, start: Candidate, rng: random.Random) -> Candidate:
        """An unseen feasible candidate near ``start``: what a converged policy or a crowded
        population falls back to, so the search keeps exploring instead of repeating."""
        current = start
        for _ in range(self.MAX_WALK_STEPS):
            current = self.space.mutate(current, rng)
            if self._acceptable(current):
                return current
        unseen = self._enumerated_choice(rng, self._acceptable)
        return current if unseen is None else unseen

    def _enumerated_choice(self, rng: random.Random, accept) -> Candidate | None:
        """A candidate ``accept`` takes, drawn uniformly from a space small enough to list
        (``MAX_ENUMERATION``); None when none is, or the space is too large to list."""
        if self.space.size() > self.MAX_ENUMERATION:
            return None
        accepted = [encoding for encoding in self.space.iter_encodings() if accept(self.space.decode(encoding))]
        return self.space.decode(rng.choice(accepted)) if accepted else None

    def _any_feasible(self, start: Candidate, rng: random.Random) -> Candidate:
        """A feasible candidate, seen or not (the space may hold no unseen feasible one)."""
        for _ in range(self.MAX_RESAMPLES):
            candidate = self.space.sample(rng)
            if self.is_feasible(candidate):
                return candidate
        feasible = self._enumerated_choice(rng, self.is_feasible)
        if feasible is not None:
            return feasible
        raise NoFeasibleCandidate("constraints", f"no candidate of the space satisfies the constraints "
                                  f"(e.g. {self.constraints.violation(start)}); raise the limits")


def rebuild(strategy: Strategy, proposed: list[tuple[int, Candidate]],
            finished: list[tuple[int, Candidate, float | None]]) -> Strategy:
    """Bring a fresh strategy to the state of an uninterrupted run.

    ``proposed``: every trial that exists (index, candidate), finished or not.
    ``finished``: the finished ones as (index, candidate, reward or None[, metrics]), in
    completion order, which is the order in which the uninterrupted strategy observed them.

    Incremental: on a live strategy (or one restored from a checkpoint) indices already
    registered or observed are skipped, so a controller may call this on every pass with
    all current trials and only what is new is applied.
    """
    for index, candidate in sorted(proposed, key=lambda item: item[0]):
        strategy.register_proposal(index, candidate)
    for index, candidate, reward, *metrics in finished:
        strategy.observe(index, candidate, reward, metrics[0] if metrics else None)
    return strategy
