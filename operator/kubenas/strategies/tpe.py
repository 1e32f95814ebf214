"""Tree-structured Parzen estimator over the space's decisions (Bergstra et al. 2011), torch-free.

After ``startupTrials`` successful trials drawn at random, the successful trials are split
into the best ``ceil(gamma * n)`` ("good", at most ``maxGood``) and the rest ("bad"). For
each decision there are two categorical densities, l (good) and g (bad): counts plus a
uniform prior of total weight ``priorWeight``. A proposal draws ``candidates`` encodings
from l, decision by decision in the space's order (inactive decisions are skipped, so a
conv's filters are only drawn under a conv), and keeps the one with the largest
``sum(log l - log g)`` over its active decisions (the expected-improvement criterion of
TPE), preferring candidates not proposed before. The decisions are modelled independently, as Optuna's default (univariate)
TPESampler does; structure enters through the active-decision mask.

State is the list of (encoding, fitness) of successful trials, which ``observe`` replays,
so ``rebuild`` and ``state_dict`` resume it exactly like the other strategies.
"""
from __future__ import annotations

import math
import random

from ..space import Candidate
from .base import Strategy


class TPE(Strategy):
    type = "tpe"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.observations: list[tuple[list[int], float]] = []  # successful trials, completion order
        self._cache: tuple[int, tuple] | None = None  # (observations used, densities)

    def _learn(self, index: int, candidate: Candidate, fitness: float) -> None:
        self.observations.append((self.space.encode(candidate), fitness))

    def _extra_state(self) -> dict:
        return {"observations": [[encoding, fitness] for encoding, fitness in self.observations]}

    def _load_extra_state(self, state: dict) -> None:
        self.observations = [(list(encoding), float(fitness)) for encoding, fitness in state["observations"]]

    def _densities(self) -> tuple[list[list[float]], list[list[float]]]:
        if self._cache is None or self._cache[0] != len(self.observations):
            self._cache = (len(self.observations), self._fit())
        return self._cache[1]

    def _fit(self) -> tuple[list[list[float]], list[list[float]]]:
        s = self.settings
        ranked = sorted(self.observations, key=lambda item: -item[1])  # stable: ties keep completion order
        n_good = min(s["maxGood"], max(1, math.ceil(s["gamma"] * len(ranked))))
        groups = [[e for e, _ in ranked[:n_good]], [e for e, _ in ranked[n_good:]]]
        out = []
        for group in groups:
            per_decision = []
            for position, (_, choices) in enumerate(self.space.decisions()):
                k = len(choices)
                counts = [s["priorWeight"] / k] * k
                for encoding in group:
                    if self.space.is_active(position, encoding):
                        counts[encoding[position]] += 1.0
                total = sum(counts)
                per_decision.append([c / total for c in counts])
            out.append(per_decision)
        return out[0], out[1]

    def _candidate(self, index: int, rng: random.Random) -> Candidate:
        if len(self.observations) < self.settings["startupTrials"]:
            return self.space.sample(rng)
        good, bad = self._densities()
        best, best_score, best_unseen = None, -math.inf, False
        for _ in range(self.settings["candidates"]):
            encoding = [0] * len(self.space)
            score = 0.0
            for position in range(len(self.space)):
                if not self.space.is_active(position, encoding):
                    continue
                weights = good[position]
                choice = rng.choices(range(len(weights)), weights=weights)[0]
                encoding[position] = choice
                score += math.log(weights[choice]) - math.log(bad[position][choice])
            # prefer the best candidate not proposed before: a repeat would be redrawn anyway
            unseen = not self.is_seen(self.space.decode(encoding))
            if (unseen, score) > (best_unseen, best_score):
                best, best_score, best_unseen = encoding, score, unseen
        return self.space.decode(best)
