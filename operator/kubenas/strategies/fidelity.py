"""Successive halving as a fidelity layer over any strategy: ASHA (Li et al. 2020) and its
asynchronous Hyperband (Li et al. 2018; 2020, section 3.3).

The resource is epochs. Rungs are ``minResource * reductionFactor**k`` epochs, capped at
(and always ending with) ``maxResource``. ``type: asha`` (the default) runs one bracket:
every new candidate comes from the wrapped strategy and is first trained to rung 0.
``type: hyperband`` runs one bracket per rung: a bracket starting at rung ``b`` trains its
new candidates straight to rung ``b`` (the last bracket is plain full-fidelity search), so
the search hedges against low fidelities that rank candidates poorly. New candidates go
to the brackets in a fixed cycle, bracket ``b`` (``s = len(rungs) - 1 - b`` halvings)
taking ``ceil(len(rungs) / (s + 1) * eta**s)`` of each cycle's places, Hyperband's
allocation, which gives every bracket about the same compute.

Whenever a worker is free, ``next_job`` looks from the highest rung down for a trial that
is in the top ``1 / reductionFactor`` of the results reported at its rung in its bracket
and not yet promoted, and promotes it: it continues to the next rung's epochs (from its
checkpoint where the trainer can resume; the resource a job adds is ``epochs -
resumed_from``). Only when nothing is promotable does it ask the strategy for a new
candidate. Nothing waits for a rung to fill, so no worker idles.

A finite space can be spent: once the wrapped strategy has proposed every distinct
network (``strategy.exhausted``), a new candidate could only repeat one already trained
(same canonical hash), so the scheduler instead promotes the best not-yet-promoted result
of the highest rung below the top, beyond the ``1 / eta`` quota; only when nothing at all
is left to promote does it let the strategy repeat.

What feeds the strategy: each trial's result at its bracket's first rung, observed once,
so that (under ASHA) the strategy compares every candidate at the same fidelity (a
higher rung's number is not comparable with a rung-0 number, and mixing them would
reward whatever was promoted). Promotions act on every rung's results. The incumbent
(``best``) is the best result at the highest rung that has any.

State is a pure function of the reports in order (plus the wrapped strategy's own),
and every decision is deterministic, so a restarted scheduler replays the reports
(``report`` is idempotent per (index, rung)) and continues exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..contract import fidelity as _contract
from ..contract.fidelity import FIDELITY_TYPES, bracket_cycle  # noqa: F401 (re-exported)
from ..space import Candidate, SpaceError
from .base import Strategy
from .settings import LIBRARY_MAX_RESOURCE, check_fidelity

# The experiments' defaults, plus the scheduler's own horizon (it has no trial.training.epochs).
FIDELITY_DEFAULTS = {**_contract.FIDELITY_DEFAULTS, "maxResource": LIBRARY_MAX_RESOURCE}


def fidelity_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """``strategy.fidelity`` with the defaults filled in; SpaceError naming the bad key.
    The experiments' validator (``strategies.settings.check_fidelity``), with ``maxResource``."""
    return check_fidelity(settings if settings is not None else {}, None)


def rungs(min_resource: int, max_resource: int, reduction_factor: int) -> list[int]:
    """Epochs at each rung (``kubenas.contract.fidelity.rungs``); SpaceError naming the field."""
    try:
        return _contract.rungs(min_resource, max_resource, reduction_factor)
    except ValueError as err:
        path, _, message = str(err).partition(": ")
        raise SpaceError(path, message) from None


@dataclass(frozen=True)
class Job:
    """Train trial ``index`` (``candidate``) up to ``epochs`` epochs, resuming from ``resume_from``."""

    index: int
    candidate: Candidate
    rung: int
    epochs: int
    resume_from: int  # epochs already trained (0 for a new trial)


class SuccessiveHalving:
    """ASHA or asynchronous Hyperband over a proposing strategy: ``next_job()``, then
    ``report(index, rung, reward)``."""

    def __init__(self, strategy: Strategy, settings: dict[str, Any] | None = None):
        settings = fidelity_settings(settings)
        self.strategy = strategy
        self.type = settings["type"]
        self.eta = settings["reductionFactor"]
        self.rungs = rungs(settings["minResource"], settings["maxResource"], self.eta)
        # The first rung of the bracket of each new trial, in a fixed cycle by trial index.
        self.cycle = _contract.brackets(self.type, len(self.rungs), self.eta)
        self.candidates: dict[int, Candidate] = {}
        self.bracket: dict[int, int] = {}  # index -> the first rung of its bracket
        self.results: list[dict[int, float | None]] = [{} for _ in self.rungs]  # rung -> index -> reward
        self.promoted: list[set[int]] = [set() for _ in self.rungs]
        self.in_flight: dict[int, int] = {}  # index -> rung it is training to
        self.next_index = 0

    def next_job(self) -> Job:
        """The next piece of work: a promotion if one is due, else a new candidate at its
        bracket's first rung; once the space is spent, a promotion beyond the quota."""
        promotion = _contract.next_promotion(self.results, self.promoted, self.eta, self.strategy.goal,
                                             self.bracket)
        if promotion is not None:
            index, rung = promotion
            return self._promote(index, rung - 1)
        if self.strategy.exhausted:  # a new candidate would repeat a trained network
            for rung in range(len(self.rungs) - 2, -1, -1):
                index = _contract.best_unpromoted(self.results[rung], self.promoted[rung], self.strategy.goal)
                if index is not None:
                    return self._promote(index, rung)
        index = self.next_index
        self.next_index += 1
        bracket = self.cycle[index % len(self.cycle)]
        self.candidates[index] = self.strategy.propose(index)
        self.bracket[index] = bracket
        self.in_flight[index] = bracket
        return Job(index, self.candidates[index], bracket, self.rungs[bracket], 0)

    def report(self, index: int, rung: int, reward: float | None) -> None:
        """Trial ``index`` finished ``rung`` with ``reward`` (None: failed; it is never promoted)."""
        if index in self.results[rung]:
            return
        self.results[rung][index] = reward
        self.in_flight.pop(index, None)
        if rung == self.bracket[index]:
            self.strategy.observe(index, self.candidates[index], reward)

    def _promote(self, index: int, rung: int) -> Job:
        self.promoted[rung].add(index)
        self.in_flight[index] = rung + 1
        return Job(index, self.candidates[index], rung + 1, self.rungs[rung + 1], self.rungs[rung])

    def _ranked(self, rung: int) -> list[int]:
        """Successful trials at ``rung``, best first; ties: the earlier trial."""
        scored = [(f, index) for index, r in self.results[rung].items()
                  if (f := self.strategy.fitness(r)) is not None]
        scored.sort(key=lambda item: (-item[0], item[1]))
        return [index for _, index in scored]

    def best(self) -> tuple[int, int, float] | None:
        """(index, rung, reward) of the incumbent: the best result at the highest rung with one."""
        for rung in range(len(self.rungs) - 1, -1, -1):
            ranked = self._ranked(rung)
            if ranked:
                return ranked[0], rung, self.results[rung][ranked[0]]
        return None
