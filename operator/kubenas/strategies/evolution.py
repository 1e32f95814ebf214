"""Regularized (aging) evolution, Real et al. 2019, "Regularized Evolution for Image
Classifier Architecture Search" (AmoebaNet).

Until ``populationSize`` trials have succeeded, proposals are random. Then each proposal
runs a tournament: ``sampleSize`` members drawn at random, the fittest is the parent, and
the child is the parent with one decision mutated (optionally after uniform crossover
with the winner of a second tournament). Each finished child joins the population and the
*oldest* member leaves, whatever its fitness: aging is what regularizes the search, since
a model survives only by having descendants that keep scoring well, not by one lucky
evaluation.

With several objectives (``objective.pareto``), a fitness is an objective vector and the
tournament is NSGA-II's crowded comparison (Deb et al. 2002): the contender on the best
non-dominated front of the living population wins, ties broken by the larger crowding
distance (the sparser region of its front). Aging is unchanged: the oldest still dies.

Asynchronous like the paper's workers: children join in completion order, so "oldest"
means earliest to finish. Failed trials never join.
"""
from __future__ import annotations

import random
from collections import deque

from kubenas.contract.pareto import rank_and_crowding

from ..space import Candidate
from .base import Strategy


class RegularizedEvolution(Strategy):
    type = "evolution"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.population_size: int = self.settings["populationSize"]
        self.sample_size: int = self.settings["sampleSize"]
        self.crossover_probability: float = self.settings["crossoverProbability"]
        # (index, candidate, fitness), oldest on the left; fitness is a tuple with pareto.
        self._population: deque[tuple[int, Candidate, float | tuple]] = deque()

    @property
    def population(self) -> list[tuple[int, Candidate, float]]:
        """The living members, oldest first, as (trial index, candidate, fitness)."""
        return list(self._population)

    def _candidate(self, index: int, rng: random.Random) -> Candidate:
        if len(self._population) < self.population_size:
            return self.space.sample(rng)
        parent = self._tournament(rng)
        if self.crossover_probability > 0 and rng.random() < self.crossover_probability:
            parent = self.space.crossover(parent, self._tournament(rng), rng)
        return self.space.mutate(parent, rng)

    def _tournament(self, rng: random.Random) -> Candidate:
        members = list(self._population)
        if self.pareto:  # rank and crowding among the whole living population
            crowded = rank_and_crowding([member[2] for member in members])
            members = [(index, candidate, (-rank, distance))
                       for (index, candidate, _), (rank, distance) in zip(members, crowded)]
        contenders = rng.sample(members, self.sample_size)
        # max keeps the first of equals, and the contenders' order comes from rng.
        return max(contenders, key=lambda member: member[2])[1]

    def _learn(self, index: int, candidate: Candidate, fitness: float) -> None:
        self._population.append((index, candidate, fitness))
        if len(self._population) > self.population_size:
            self._population.popleft()  # the oldest dies, not the worst

    def _extra_state(self) -> dict:
        return {"population": [[index, candidate, list(fitness) if isinstance(fitness, tuple) else fitness]
                               for index, candidate, fitness in self._population]}

    def _load_extra_state(self, state: dict) -> None:
        self._population = deque((int(i), c, tuple(map(float, f)) if isinstance(f, list) else float(f))
                                 for i, c, f in state["population"])
