"""REINFORCE with an LSTM policy: Zoph & Le 2017, "Neural Architecture Search with
Reinforcement Learning", with the controller of ENAS (Pham et al. 2018).

The policy emits the space's decisions one after another: at each step an LSTM cell reads
the embedding of the previous choice, a softmax over the current decision's choices is
sampled, and the choice's own embedding feeds the next step. A continuous decision (of a
``parameters`` space) is a softmax over equal bins of its range, and its value is drawn
inside the chosen bin (kubenas.space.continuous). Decisions that do not matter
given earlier ones (a pooling layer's filters) and decisions with a single choice are
skipped, so neither the sequence nor the gradient carries noise.

Logits are shaped as in ENAS: divided by ``temperature``, then squashed to
``tanhConstant * tanh(.)``, which keeps the policy from collapsing early.

Learning is per trial, as the rewards of an asynchronous search arrive one by one: when a
trial finishes, its architecture's own log-probability under the current policy is pushed
up or down by its own advantage, ``reward - baseline``, where the baseline is an
exponential moving average of earlier rewards (Zoph & Le 2017, Williams 1992); an entropy
bonus keeps exploring; Adam takes one step. The first reward only sets the baseline.
Failed trials teach nothing: a failure may be the cluster's fault (preemption, a node
lost), not the architecture's.

All randomness of a proposal comes from the per-proposal ``random.Random`` (the policy's
probabilities are sampled with it), and parameters change only in ``observe``, in
completion order. Replaying the finished trials through ``rebuild`` therefore performs
the same floating-point operations in the same order and reaches the same parameters on
the same machine; ``state_dict`` stores them bit for bit for everything else.
"""
from __future__ import annotations

import base64
import io
import random
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..space import Candidate, SearchSpace
from .base import Strategy

INIT_RANGE = 0.1  # ENAS initializes every controller parameter uniformly in [-0.1, 0.1]


class LSTMPolicy(nn.Module):
    """The controller network: one LSTM cell shared by all steps, and per-decision
    embeddings and softmax heads (slices of one matrix each, with ``offsets``)."""

    def __init__(self, choice_counts: Sequence[int], hidden_size: int, seed: int):
        super().__init__()
        self.choice_counts = list(choice_counts)
        self.offsets = [sum(self.choice_counts[:p]) for p in range(len(self.choice_counts))]
        total = max(1, sum(self.choice_counts))
        self.start = nn.Parameter(torch.empty(1, hidden_size))  # input of the first step
        self.embeddings = nn.Parameter(torch.empty(total, hidden_size))
        with torch.random.fork_rng(devices=[]):  # LSTMCell's default init draws from the global rng
            self.cell = nn.LSTMCell(hidden_size, hidden_size)
        self.head_weight = nn.Parameter(torch.empty(total, hidden_size))
        self.head_bias = nn.Parameter(torch.empty(total))
        # A private generator: seeding must not touch (or depend on) torch's global rng.
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.uniform_(-INIT_RANGE, INIT_RANGE, generator=generator)

    def step(self, x: torch.Tensor, state, position: int):
        """One LSTM step for decision ``position``: (raw logits, new state)."""
        h, c = self.cell(x, state)
        lo, hi = self.offsets[position], self.offsets[position] + self.choice_counts[position]
        logits = F.linear(h, self.head_weight[lo:hi], self.head_bias[lo:hi]).squeeze(0)
        return logits, (h, c)

    def embed(self, position: int, choice: int) -> torch.Tensor:
        return self.embeddings[self.offsets[position] + choice].unsqueeze(0)


class Reinforce(Strategy):
    type = "reinforce"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature = self.settings["temperature"]
        self.tanh_constant = self.settings["tanhConstant"]
        self.entropy_weight = self.settings["entropyWeight"]
        self.baseline_decay = self.settings["baselineDecay"]
        self.baseline: float | None = None
        counts = [len(choices) for _, choices in self.space.decisions()]
        self.policy = LSTMPolicy(counts, self.settings["hiddenSize"], seed=self.seed)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.settings["learningRate"])

    # -- the policy ---------------------------------------------------------------------

    def _shape(self, logits: torch.Tensor) -> torch.Tensor:
        if self.temperature is not None:
            logits = logits / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def _rollout(self, rng: random.Random | None = None, encoding: Sequence[int] | None = None):
        """Run the policy over the decisions, sampling with ``rng`` or following ``encoding``.

        Returns (encoding, per-step log-probabilities of every choice, log-probability of
        the choices made, total entropy).
        """
        space: SearchSpace = self.space
        chosen = [0] * len(space)
        x, state = self.policy.start, None
        step_log_probs: list[tuple[int, torch.Tensor]] = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        for position in range(len(space)):
            if self.policy.choice_counts[position] < 2 or not space.is_active(position, chosen):
                continue  # nothing to decide here
            logits, state = self.policy.step(x, state, position)
            log_probs = F.log_softmax(self._shape(logits), dim=-1)
            choice = encoding[position] if encoding is not None else _sample(log_probs, rng)
            chosen[position] = choice
            step_log_probs.append((position, log_probs))
            log_prob = log_prob + log_probs[choice]
            entropy = entropy - (log_probs.exp() * log_probs).sum()
            x = self.policy.embed(position, choice)
        return chosen, step_log_probs, log_prob, entropy

    def _candidate(self, index: int, rng: random.Random) -> Candidate:
        with torch.no_grad():
            encoding, _, _, _ = self._rollout(rng=rng)
        # A continuous decision's token is a bin: its value is drawn inside it with the same rng.
        return self.space.decode(encoding, rng)

    def decision_probabilities(self, candidate: Candidate) -> dict[str, list[float]]:
        """The policy's distribution at each decision it makes on the way to ``candidate``
        (decision name -> probabilities of its choices); for tests and diagnostics."""
        with torch.no_grad():
            _, steps, _, _ = self._rollout(encoding=self.space.encode(candidate))
        names = self.space.decisions()
        return {names[position][0]: log_probs.exp().tolist() for position, log_probs in steps}

    def log_probability(self, candidate: Candidate) -> float:
        """log pi(candidate): the sum over the decisions that matter of log p(choice)."""
        with torch.no_grad():
            _, _, log_prob, _ = self._rollout(encoding=self.space.encode(candidate))
        return float(log_prob)

    # -- learning -------------------------------------------------------------------------

    def _learn(self, index: int, candidate: Candidate, fitness: float) -> None:
        if self.baseline is None:
            self.baseline = fitness  # no history to compare against yet
        advantage = fitness - self.baseline
        _, _, log_prob, entropy = self._rollout(encoding=self.space.encode(candidate))
        loss = -advantage * log_prob - self.entropy_weight * entropy
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.baseline = self.baseline_decay * self.baseline + (1.0 - self.baseline_decay) * fitness

    # -- state ----------------------------------------------------------------------------

    def _extra_state(self) -> dict:
        buffer = io.BytesIO()
        torch.save({"policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict()}, buffer)
        return {"baseline": self.baseline, "parameters": base64.b64encode(buffer.getvalue()).decode("ascii")}

    def _load_extra_state(self, state: dict) -> None:
        raw = base64.b64decode(state["parameters"])
        saved = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        self.policy.load_state_dict(saved["policy"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.baseline = state["baseline"]


def _sample(log_probs: torch.Tensor, rng: random.Random) -> int:
    """Inverse-CDF sampling with the proposal's own rng (not torch's global generator)."""
    threshold = rng.random()
    cumulative = 0.0
    probabilities = log_probs.exp().tolist()
    for choice, probability in enumerate(probabilities):
        cumulative += probability
        if threshold < cumulative:
            return choice
    return len(probabilities) - 1  # rounding left the total a hair below 1
