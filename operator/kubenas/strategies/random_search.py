"""Random search: each active decision uniformly at random.

A strong baseline for NAS (Li & Talwalkar 2019; Yang et al. 2020); every other strategy
should be benchmarked against it under the same seed and budget.
"""
from __future__ import annotations

import random

from ..space import Candidate
from .base import Strategy


class RandomSearch(Strategy):
    type = "random"

    def _candidate(self, index: int, rng: random.Random) -> Candidate:
        return self.space.sample(rng)
