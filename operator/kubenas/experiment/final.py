"""Re-evaluating the best candidates with more training seeds (``spec.final``): pure decisions.

One trial's reward is one draw of a noisy number (the training seed decides the initial
weights and the batch order). With ``final: {topK, seeds}``, once the search is over
(its ``budget.maxTrials`` trials have finished; with ``strategy.fidelity``, its budget is
spent: every candidate proposed and nothing left to promote), each of the ``topK`` best
distinct candidates of the search (architecture + hyperparameters, by the objective) is
trained ``seeds - 1`` more times, with training seeds ``s + 1 .. s + seeds - 1`` (``s``:
the original trial's seed). Those re-evaluation trials come on top of the search's, with
the indices after its last trial (``start``, which is ``maxTrials`` for a plain search):
candidate of rank ``k`` (0 = best), seed offset ``j`` (1..seeds-1) gets ``start + k *
(seeds - 1) + j - 1``. They are ordinary trials of the same candidate marked
``reevaluationOf: <original trial>`` (the mark, not the index, tells them from the
search's); a strategy never observes them.

After a multi-fidelity search the candidates are those trained to the last rung (the full
``trial.training.epochs``): a result at a lower rung is a shorter training, not comparable
with a re-evaluation's full one. The original run of such a candidate is its last-rung
trial (continued from the rungs below on one schedule, the same run as one trained
straight through), and its re-evaluations train the full epochs from scratch.

Each candidate is then summarised as the mean and sample standard deviation of the
rewards of its original and its re-evaluation trials that succeeded; the best candidate
is the one with the best mean. The experiment succeeds once every re-evaluation trial
has finished. Rows are trials.jsonl lines (or ``row_from_trial_object`` of NASTrials).
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

from kubenas.contract import MAX_TRIALS_REACHED, STOPPED, SUCCEEDED, DEADLINE_EXCEEDED
from kubenas.contract.genotype import genotype_hash

from . import fidelity
from .outcome import Outcome, experiment_outcome, failed_outcome
from .ranking import ranked
from .record import DUPLICATE_OF, REEVALUATION_OF, TrialRecord, from_row



@dataclass(frozen=True)
class Reevaluation:
    """One re-evaluation trial to create."""

    index: int
    of: str       # the original (search) trial's name
    seed: int     # its training seed (the original's seed + offset)
    offset: int = 1  # 1 .. seeds - 1


@dataclass(frozen=True)
class Aggregate:
    """A re-evaluated candidate: its original trial and the rewards of all its runs."""

    name: str                      # the original trial
    index: int
    trials: tuple[str, ...]        # original first, then the succeeded re-evaluations by index
    rewards: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.rewards)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.rewards)

    @property
    def std(self) -> float:
        """The sample standard deviation (0 with one run)."""
        return statistics.stdev(self.rewards) if self.n > 1 else 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "index": self.index, "trials": list(self.trials),
                "rewards": list(self.rewards), "mean": self.mean, "std": self.std, "n": self.n}


def is_search(record: TrialRecord) -> bool:
    """A trial of the search, not a re-evaluation (which carries the mark)."""
    return not record.reevaluation_of


def search_rows(spec: dict, rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if not r.get(REEVALUATION_OF)]


def reevaluation_rows(spec: dict, rows: Sequence[dict]) -> list[dict]:
    return [r for r in rows if r.get(REEVALUATION_OF)]


def _full_runs(spec: dict, rows: Sequence[dict]) -> list[dict]:
    """The search rows that trained a candidate the full ``trial.training.epochs``: every
    one for a plain search, the last rung's after a multi-fidelity one."""
    rows = search_rows(spec, rows)
    ladder = fidelity.plan(spec)
    if ladder is None:
        return rows
    last = len(ladder.rungs) - 1
    return [r for r in rows if from_row(r, details=False).rung == last]


def trial_seed(spec: dict, row: dict) -> int:
    """The training seed a trial ran with: a searched ``seed`` hyperparameter, else
    ``trial.training.seed`` (spec with defaults)."""
    hyperparameters = row.get("hyperparameters") or {}
    return int(hyperparameters.get("seed", spec["trial"]["training"]["seed"]))


def top_candidates(spec: dict, rows: Sequence[dict]) -> list[dict]:
    """The rows of the ``final.topK`` best distinct candidates of the search, best first
    (a duplicate of a better trial is skipped: same architecture and hyperparameters)."""
    final = spec.get("final")
    if not final:
        return []
    search = _full_runs(spec, rows)
    by_name = {r["name"]: r for r in search}
    out, seen = [], set()
    for record in ranked([from_row(r, details=False) for r in search], spec["objective"]["goal"]):
        row = by_name[record.name]
        key = row.get("hash") or _candidate_key(row)
        if key in seen:
            continue
        seen.add(key)
        out.append(row)
        if len(out) == final["topK"]:
            break
    return out


def _candidate_key(row: dict) -> str:
    """The candidate's hash; a trial whose candidate cannot be hashed is a candidate of its own."""
    try:
        return genotype_hash(row.get("architecture") or {}, row.get("hyperparameters") or {})
    except Exception:  # noqa: BLE001 - garbage in a spec must not stop the ending rule
        return f"trial:{row.get('name')}"


def search_finished(spec: dict, rows: Sequence[dict]) -> bool:
    """The search is over (rows are finished trials): all its ``maxTrials`` trials have
    finished, or with ``strategy.fidelity`` its budget is spent. A trial in flight has no
    row, which reads as a candidate not yet proposed or a promotion not yet made: not over."""
    search = search_rows(spec, rows)
    if fidelity.plan(spec) is not None:
        return fidelity.budget_spent(spec, [from_row(r, details=False) for r in search])
    return len(search) >= spec["budget"]["maxTrials"]


def first_index(spec: dict, rows: Sequence[dict]) -> int:
    """The index of the first re-evaluation: after the search's last trial (``maxTrials``
    for a plain search, whose trials are 0 .. maxTrials - 1)."""
    indices = [r["index"] for r in search_rows(spec, rows) if isinstance(r.get("index"), int)]
    return max(indices, default=spec["budget"]["maxTrials"] - 1) + 1


def reevaluation_plan(spec: dict, rows: Sequence[dict]) -> list[Reevaluation]:
    """Every re-evaluation trial of the experiment (made or not), once the search has
    finished; [] before, and without ``spec.final``. Deterministic in the rows."""
    final = spec.get("final")
    if not final or not search_finished(spec, rows):
        return []
    extra = final["seeds"] - 1
    start = first_index(spec, rows)
    return [Reevaluation(index=start + rank * extra + j - 1, of=row["name"], seed=trial_seed(spec, row) + j, offset=j)
            for rank, row in enumerate(top_candidates(spec, rows)) for j in range(1, extra + 1)]


def reevaluation_trial(trial_spec: dict, reevaluation: Reevaluation) -> dict:
    """A re-evaluation's trial spec from the one ``build_trial_spec`` made of the original
    candidate under ``reevaluation.index``: another training seed, and the mark."""
    trial = copy.deepcopy(trial_spec)
    trial["training"]["seed"] = reevaluation.seed
    if "seed" in trial["hyperparameters"]:  # a searched seed wins over training.seed
        trial["hyperparameters"]["seed"] = reevaluation.seed
    trial[REEVALUATION_OF] = reevaluation.of
    return trial


def aggregates(spec: dict, rows: Sequence[dict]) -> list[Aggregate]:
    """The re-evaluated candidates, best mean first (ties: lower index first); [] without
    ``spec.final`` or before the search has finished."""
    goal = spec["objective"]["goal"]
    runs: dict[str, list[tuple[int, str, float]]] = {}
    for row in reevaluation_rows(spec, rows):
        reward = from_row(row, details=False).reward
        if row.get("status") == SUCCEEDED and reward is not None and row.get(REEVALUATION_OF):
            runs.setdefault(row[REEVALUATION_OF], []).append((row["index"], row["name"], reward))
    out = []
    for row in top_candidates(spec, rows) if search_finished(spec, rows) else []:
        extra = sorted(runs.get(row["name"], []))
        original = from_row(row, details=False).reward
        out.append(Aggregate(name=row["name"], index=row["index"],
                             trials=(row["name"], *(name for _, name, _ in extra)),
                             rewards=(original, *(reward for _, _, reward in extra))))
    sign = -1.0 if goal == "maximize" else 1.0
    return sorted(out, key=lambda a: (sign * a.mean, a.index))


def rows_of(records: Sequence[TrialRecord]) -> list[dict]:
    """Finished trial records as the rows the decisions above read (name, index, status,
    reward, hash, reevaluationOf): what the operator and the controller, which keep
    records rather than rows, hand them. A ``seed`` hyperparameter is not in a record:
    a plan made from these has the seeds of ``trial.training.seed``; the controller
    computes a re-evaluation's seed from its original trial (``trial_seed``)."""
    return [{"name": r.name, "index": r.index, "status": r.phase, "reward": r.reward, "hash": r.hash,
             **({REEVALUATION_OF: r.reevaluation_of} if r.reevaluation_of else {}),
             **({fidelity.FIDELITY: {"candidate": r.candidate, "rung": r.rung}} if r.candidate is not None else {}),
             **({DUPLICATE_OF: r.duplicate_of} if r.duplicate_of else {})}
            for r in records if r.finished]


def outcome(spec: dict, records: Sequence[TrialRecord], elapsed_seconds: float,
            searched: Callable[[Sequence[TrialRecord], float], Outcome | None] | None = None) -> Outcome | None:
    """:func:`kubenas.experiment.experiment_outcome` with ``spec.final``: the search part
    decides as without it, over the search's trials (``searched``: the search plan's
    ending rule, default ``experiment_outcome``); once it is over, the experiment
    succeeds once every re-evaluation trial has finished. Failed trials of both parts
    count against ``maxFailedTrials``; ``deadlineSeconds`` stops the re-evaluation too.
    ``records`` are every trial's (the local runner's finished rows, the operator's book)."""
    records = list(records)
    rows = rows_of(records)
    final = spec.get("final")
    if not final:
        return experiment_outcome(spec, records, elapsed_seconds)
    budget = spec["budget"]
    failed = failed_outcome(spec, records)
    if failed is not None:
        return failed
    searched = searched or (lambda search, elapsed: experiment_outcome(spec, search, elapsed))
    decided = searched([r for r in records if is_search(r)], elapsed_seconds)
    if decided is None or decided.reason != MAX_TRIALS_REACHED:
        return decided
    plan = reevaluation_plan(spec, rows)
    done = {r.index for r in records if r.finished}
    if plan and all(p.index in done for p in plan):
        return Outcome(SUCCEEDED, MAX_TRIALS_REACHED,
                       f"{decided.message}; the top {len(plan) // (final['seeds'] - 1)} re-evaluated with "
                       f"{final['seeds']} seeds each ({len(plan)} more trial{'s' * (len(plan) != 1)}, spec.final)")
    deadline = budget.get("deadlineSeconds")
    if deadline is not None and elapsed_seconds >= deadline:
        return Outcome(STOPPED, DEADLINE_EXCEEDED,
                       f"ran {elapsed_seconds:.0f}s during the re-evaluation, budget.deadlineSeconds is {deadline}")
    return None


__all__ = ["REEVALUATION_OF", "Aggregate", "Reevaluation", "aggregates", "first_index", "is_search", "outcome",
           "reevaluation_plan", "reevaluation_trial", "rows_of", "search_finished", "top_candidates", "trial_seed"]
