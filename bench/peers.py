"""Searchers that are not kubenas', for bench/search_efficiency.py: each ``ask()``s for an
encoding (one choice index per decision of the table's space) and is ``tell()``-ed its
reward (None: failed). They know nothing of kubenas' canonical hashing; the driver
(``budgeted.run_peer``) decides whether a repeat is trained again ("as-is") or answered
from a cache at no cost ("behind a repeat cache", keyed by the canonical network hash).

- ``OptunaTPE``: Optuna's TPESampler with its defaults (Bergstra et al. 2011; Watanabe
  2023), one categorical parameter per decision, through Optuna's ask/tell interface.
- ``RegularizedEvolution``: Real et al. (2019) written from the paper, independent of
  kubenas.strategies: random until the population is full, then a tournament of S picks a
  parent, the child changes one random decision, the oldest member dies. No deduplication.
- ``LocalSearch``: White et al. (2021): from a random start, evaluate every one-decision
  neighbour, move to the best if it improves, else restart from a new random point.
- ``ForestSurrogate``: a random-forest surrogate on the one-hot encoding (SMAC-style,
  Hutter et al. 2011): after 10 random points, fit, score a pool of random unseen
  encodings by expected improvement (mean and spread over the trees), train the best.
"""
from __future__ import annotations

import math
import random
from collections import deque


class Peer:
    def __init__(self, choices: list[int], seed: int):
        self.choices = choices  # number of choices of each decision
        self.rng = random.Random(f"peer/{type(self).__name__}/{seed}")
        self.seed = seed

    def random_encoding(self) -> tuple[int, ...]:
        return tuple(self.rng.randrange(n) for n in self.choices)

    def ask(self) -> tuple[int, ...]:
        raise NotImplementedError

    def tell(self, encoding: tuple[int, ...], reward: float | None) -> None:
        pass


class OptunaTPE(Peer):
    def __init__(self, choices, seed):
        super().__init__(choices, seed)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self.pending: dict[tuple, list] = {}

    def ask(self):
        trial = self.study.ask()
        encoding = tuple(trial.suggest_categorical(f"d{i}", list(range(n))) for i, n in enumerate(self.choices))
        self.pending.setdefault(encoding, []).append(trial)
        return encoding

    def tell(self, encoding, reward):
        trial = self.pending[encoding].pop()
        if reward is None:
            self.study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(trial, reward)


class RegularizedEvolution(Peer):
    def __init__(self, choices, seed, population: int = 16, sample: int = 4):
        super().__init__(choices, seed)
        self.size, self.sample = population, sample
        self.population: deque = deque()

    def ask(self):
        if len(self.population) < self.size:
            return self.random_encoding()
        contenders = self.rng.sample(list(self.population), self.sample)
        parent = max(contenders, key=lambda member: member[1])[0]
        child = list(parent)
        position = self.rng.choice([i for i, n in enumerate(self.choices) if n > 1])
        child[position] = self.rng.choice([c for c in range(self.choices[position]) if c != parent[position]])
        return tuple(child)

    def tell(self, encoding, reward):
        if reward is None:
            return
        self.population.append((encoding, reward))
        if len(self.population) > self.size:
            self.population.popleft()


class LocalSearch(Peer):
    def __init__(self, choices, seed):
        super().__init__(choices, seed)
        self.seen: dict[tuple, float | None] = {}
        self.current: tuple | None = None
        self.queue: list[tuple] = []

    def _neighbours(self, point):
        out = [point[:i] + (c,) + point[i + 1:] for i, n in enumerate(self.choices) for c in range(n)
               if c != point[i]]
        self.rng.shuffle(out)
        return [n for n in out if n not in self.seen]

    def ask(self):
        while True:
            if self.current is None:
                start = self.random_encoding()
                if start in self.seen:
                    continue
                self.current = start
                return start
            if self.queue:
                return self.queue.pop()
            # every neighbour evaluated: move to the best if it improves, else restart
            neighbours = [n for n in (self.current[:i] + (c,) + self.current[i + 1:]
                                      for i, k in enumerate(self.choices) for c in range(k) if c != self.current[i])]
            best = max(neighbours, key=lambda n: _score(self.seen.get(n)))
            if _score(self.seen.get(best)) > _score(self.seen.get(self.current)):
                self.current = best
                self.queue = self._neighbours(best)
            else:
                self.current = None

    def tell(self, encoding, reward):
        self.seen[encoding] = reward
        if encoding == self.current and not self.queue:
            self.queue = self._neighbours(encoding)


def _score(reward):
    return -math.inf if reward is None else reward


class ForestSurrogate(Peer):
    # refit every REFIT results and train the REFIT best of the pool by EI (batched for the
    # shared 2-core bench machine; per-trial refits gave the same regret on 1 seed, 10x slower)
    INITIAL, POOL, TREES, REFIT = 10, 300, 16, 10

    def __init__(self, choices, seed):
        super().__init__(choices, seed)
        self.x: list[tuple] = []
        self.y: list[float] = []
        self.seen: set[tuple] = set()
        self.queue: list[tuple] = []

    def _onehot(self, encodings):
        import numpy as np

        width = sum(self.choices)
        out = np.zeros((len(encodings), width))
        for row, encoding in enumerate(encodings):
            offset = 0
            for value, n in zip(encoding, self.choices):
                out[row, offset + value] = 1.0
                offset += n
        return out

    def ask(self):
        if len(self.y) < self.INITIAL:
            return self.random_encoding()
        while self.queue:
            encoding = self.queue.pop(0)
            if encoding not in self.seen:
                return encoding
        self.queue = self._batch()
        return self.queue.pop(0) if self.queue else self.random_encoding()

    def _batch(self) -> list[tuple]:
        import numpy as np
        from scipy.stats import norm
        from sklearn.ensemble import RandomForestRegressor

        forest = RandomForestRegressor(n_estimators=self.TREES, random_state=self.seed * 7919 + len(self.y),
                                       max_features=0.5).fit(self._onehot(self.x), np.array(self.y))
        pool = list({e for e in (self.random_encoding() for _ in range(self.POOL)) if e not in self.seen})
        if not pool:
            return []
        per_tree = np.stack([tree.predict(self._onehot(pool)) for tree in forest.estimators_])
        mean, std = per_tree.mean(0), per_tree.std(0) + 1e-9
        z = (mean - max(self.y)) / std
        ei = (mean - max(self.y)) * norm.cdf(z) + std * norm.pdf(z)
        return [pool[i] for i in np.argsort(-ei)[: self.REFIT]]

    def tell(self, encoding, reward):
        self.seen.add(encoding)
        self.x.append(encoding)
        self.y.append(0.0 if reward is None else reward)


PEERS = {"optuna-tpe": OptunaTPE, "regevo": RegularizedEvolution, "local-search": LocalSearch,
         "rf-surrogate": ForestSurrogate}
