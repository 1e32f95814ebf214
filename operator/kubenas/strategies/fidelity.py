"""Asynchronous successive halving (ASHA, Li et al. 2020) as a fidelity layer over any strategy.

The resource is epochs. Rungs are ``minResource * reductionFactor**k`` epochs, capped at
(and always ending with) ``maxResource``. Every new candidate comes from the wrapped
strategy and is first trained to rung 0. Whenever a worker is free, ``next_job`` looks
from the highest rung down for a trial that is in the top ``1 / reductionFactor`` of the
results reported at its rung and not yet promoted, and promotes it: it continues to the
next rung's epochs (from its checkpoint where the trainer can resume; the resource a job
adds is ``epochs - resumed_from``). Only when nothing is promotable does it ask the
strategy for a new candidate. Nothing waits for a rung to fill, so no worker idles.

What feeds the strategy: each trial's rung-0 result, observed once, so that the strategy
compares every candidate at the same fidelity (a higher rung's number is not comparable
with a rung-0 number, and mixing them would reward whatever was promoted). Promotions
act on every rung's results. The incumbent (``best``) is the best result at the highest
rung that has any.

State is a pure function of the reports in order (plus the wrapped strategy's own),
and every decision is deterministic, so a restarted scheduler replays the reports
(``report`` is idempotent per (index, rung)) and continues exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..contract import fidelity as _contract
from ..space import Candidate, SpaceError
from .base import Strategy

# The bench's (bench/search_efficiency.py) resource is the curves table's 9 epochs; an
# experiment's maxResource defaults to its trial.training.epochs (kubenas.api.validation).
FIDELITY_DEFAULTS = {"minResource": _contract.FIDELITY_DEFAULTS["minResource"], "maxResource": 9,
                     "reductionFactor": _contract.FIDELITY_DEFAULTS["reductionFactor"]}


def rungs(min_resource: int, max_resource: int, reduction_factor: int) -> list[int]:
    """Epochs at each rung (``kubenas.contract.fidelity.rungs``); SpaceError on nonsense."""
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
    """ASHA over a proposing strategy: ``next_job()``, then ``report(index, rung, reward)``."""

    def __init__(self, strategy: Strategy, settings: dict[str, Any] | None = None):
        settings = {**FIDELITY_DEFAULTS, **(settings or {})}
        self.strategy = strategy
        self.eta = settings["reductionFactor"]
        self.rungs = rungs(settings["minResource"], settings["maxResource"], self.eta)
        self.candidates: dict[int, Candidate] = {}
        self.results: list[dict[int, float | None]] = [{} for _ in self.rungs]  # rung -> index -> reward
        self.promoted: list[set[int]] = [set() for _ in self.rungs]
        self.in_flight: dict[int, int] = {}  # index -> rung it is training to
        self.next_index = 0

    def next_job(self) -> Job:
        """The next piece of work: a promotion if one is due, else a new candidate at rung 0."""
        for rung in range(len(self.rungs) - 2, -1, -1):
            index = self._promotable(rung)
            if index is not None:
                self.promoted[rung].add(index)
                self.in_flight[index] = rung + 1
                return Job(index, self.candidates[index], rung + 1, self.rungs[rung + 1], self.rungs[rung])
        index = self.next_index
        self.next_index += 1
        self.candidates[index] = self.strategy.propose(index)
        self.in_flight[index] = 0
        return Job(index, self.candidates[index], 0, self.rungs[0], 0)

    def report(self, index: int, rung: int, reward: float | None) -> None:
        """Trial ``index`` finished ``rung`` with ``reward`` (None: failed; it is never promoted)."""
        if index in self.results[rung]:
            return
        self.results[rung][index] = reward
        self.in_flight.pop(index, None)
        if rung == 0:
            self.strategy.observe(index, self.candidates[index], reward)

    def _promotable(self, rung: int) -> int | None:
        return _contract.promotable(self.results[rung], self.promoted[rung], self.eta, self.strategy.goal)

    def best(self) -> tuple[int, int, float] | None:
        """(index, rung, reward) of the incumbent: the best result at the highest rung with one."""
        for rung in range(len(self.rungs) - 1, -1, -1):
            scored = [(self.strategy.fitness(r), -index, index, r) for index, r in self.results[rung].items()
                      if self.strategy.fitness(r) is not None]
            if scored:
                _, _, index, reward = max(scored)
                return index, rung, reward
        return None
