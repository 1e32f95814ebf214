"""A continuous decision: a float in ``[low, high]``, uniform or log-uniform.

Random search and evolution search it continuously (``draw``, ``perturb``). The policy
network needs a softmax over a finite set, so for it the (log) range is cut into
``POLICY_BINS`` equal bins: a decision's *token* is the bin its value falls in
(``bin_of``), and a value for a token chosen by the policy is drawn uniformly inside
that bin (``draw_in_bin``), or is the bin's centre when no rng is given. Proposals stay
continuous whichever strategy makes them, and a finished trial's value is credited to
the bin it falls in.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

POLICY_BINS = 16
# Drawn values keep 6 significant digits: practically continuous, readable in trial
# specs and leaderboards, and exactly stable through JSON.
SIGNIFICANT_DIGITS = 6
# Evolution's mutation step: a Gaussian with this fraction of the (log) range as its sigma.
MUTATION_SIGMA = 0.1


@dataclass(frozen=True)
class Continuous:
    low: float
    high: float
    log: bool = False

    @property
    def bins(self) -> int:
        return 1 if self.low == self.high else POLICY_BINS

    def _u(self, value: float) -> float:  # into the space the bins are equal in
        return math.log(value) if self.log else value

    def _value(self, u: float) -> float:
        return math.exp(u) if self.log else u

    def _edge(self, k: int) -> float:
        lo, hi = self._u(self.low), self._u(self.high)
        return lo + (hi - lo) * k / self.bins

    def _rounded(self, value: float) -> float:
        value = float(f"{value:.{SIGNIFICANT_DIGITS}g}")
        return min(max(value, self.low), self.high)

    def contains(self, value) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and math.isfinite(value) and self.low <= value <= self.high

    def representatives(self) -> tuple:
        """One value per bin (its centre): the decision's choices as the policy sees them."""
        return tuple(self._rounded(self._value((self._edge(k) + self._edge(k + 1)) / 2)) for k in range(self.bins))

    def bin_of(self, value: float) -> int:
        if self.bins == 1:
            return 0
        lo, hi = self._u(self.low), self._u(self.high)
        return min(self.bins - 1, max(0, int((self._u(value) - lo) / (hi - lo) * self.bins)))

    def draw(self, rng: random.Random) -> float:
        return self._rounded(self._value(rng.uniform(self._u(self.low), self._u(self.high))))

    def draw_in_bin(self, k: int, rng: random.Random | None) -> float:
        if rng is None:
            return self.representatives()[k]
        raw = self._value(rng.uniform(self._edge(k), self._edge(k + 1)))
        rounded = self._rounded(raw)
        return rounded if self.bin_of(rounded) == k else min(max(raw, self.low), self.high)

    def perturb(self, value: float, rng: random.Random) -> float:
        """A Gaussian step of MUTATION_SIGMA of the (log) range, reflected at the bounds."""
        lo, hi = self._u(self.low), self._u(self.high)
        u = self._u(value) + rng.normalvariate(0.0, MUTATION_SIGMA * (hi - lo))
        width = hi - lo
        if width > 0:
            u = (u - lo) % (2 * width)  # reflect: fold into [0, 2w), mirror the upper half
            u = lo + (u if u <= width else 2 * width - u)
        return self._rounded(self._value(min(max(u, lo), hi)))
