"""spec.final after a multi-fidelity search (kubenas.experiment.plan: ``Reevaluation``
wrapping ``MultiFidelity``): the two modes compose. Driven through the plan as the local
runner, the controller and the operator drive it, over trial records, in several orders
of completion."""
from __future__ import annotations

import random

import pytest

from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment
from kubenas.contract import FAILED, MAX_TRIALS_REACHED, RUNNING, SUCCEEDED
from kubenas.contract.genotype import genotype_hash
from kubenas.experiment import fidelity, from_row
from kubenas.experiment.plan import MultiFidelity, Reevaluation, plan_for

SEED = 10


def make_spec(max_trials=18, kind="asha", top_k=2, seeds=3, parallel=3):
    return with_defaults({
        "objective": {"metric": "accuracy"},
        "searchSpace": {"type": "chain"},
        "strategy": {"type": "random", "seed": 3,
                     "fidelity": {"type": kind, "minResource": 1, "reductionFactor": 3}},
        "budget": {"maxTrials": max_trials, "parallelTrials": parallel, "maxFailedTrials": 3},
        "trial": {"dataset": {"name": "digits"}, "training": {"epochs": 9, "seed": SEED}},
        "final": {"topK": top_k, "seeds": seeds},
    })


def arch(candidate: int) -> dict:
    return {"type": "chain", "layers": [{"op": "conv", "filters": 8 + candidate, "kernel": 3, "stride": 1}]}


def reward(candidate: int, epochs: int, seed: int) -> float:
    """A learning curve per candidate: better with epochs, ranks shuffled early, a little
    seed noise."""
    rng = random.Random(candidate)
    quality, noise = rng.random(), rng.random()
    return round(quality * epochs / 9 + (1 - epochs / 9) * noise + 0.001 * (seed - SEED), 6)


def run(spec, order_seed: int, restart_every: int | None = None):
    """Drives the plan to the end: starts what it asks for, finishes one trial in flight at
    a time (which one: ``order_seed``), and with ``restart_every`` makes a fresh plan from
    the records every so many steps (a restarted controller). Returns the rows."""
    rng = random.Random(order_seed)
    rows: dict[str, dict] = {}
    candidates: dict[str, int] = {}  # trial -> its candidate
    plan = plan_for(spec)
    for step in range(500):
        if restart_every and step % restart_every == 0:
            plan = plan_for(spec)
        records = [from_row(r, details=False) for r in rows.values()]
        assert plan.outcome(records, 0) is None or not [r for r in rows.values() if r["status"] == RUNNING]
        if plan.outcome(records, 0) is not None:
            return list(rows.values()), plan.outcome(records, 0), plan
        for trial in plan.next_trials(records):
            name = f"e-{trial.index}"
            assert name not in rows, f"{name} asked for twice"
            if trial.proposes is not None:  # a new candidate: the strategy's proposal
                c = trial.proposes
            else:
                c = candidates[trial.copies]
            base = {"architecture": arch(c), "hyperparameters": {}, "training": {"epochs": 9, "seed": SEED}}
            source = {"architecture": arch(c), "hyperparameters": {}} if trial.copies else None
            trial_spec = plan.trial_spec(trial, base, source, None)
            candidates[name] = c
            row = {"name": name, "index": trial.index, "status": RUNNING, "reward": None,
                   "architecture": arch(c), "hyperparameters": {}, "hash": genotype_hash(arch(c), {}),
                   "epochs": trial_spec["training"]["epochs"], "seed": trial_spec["training"]["seed"]}
            if trial_spec.get(fidelity.FIDELITY):
                row[fidelity.FIDELITY] = trial_spec[fidelity.FIDELITY]
            if trial_spec.get("reevaluationOf"):
                row["reevaluationOf"] = trial_spec["reevaluationOf"]
            rows[name] = row
        running = sorted(n for n, r in rows.items() if r["status"] == RUNNING)
        assert running, "nothing in flight and no outcome"
        done = rows[rng.choice(running)]
        done.update(status=SUCCEEDED, reward=reward(candidates[done["name"]], done["epochs"], done["seed"]))
    raise AssertionError("the experiment never ended")


@pytest.mark.parametrize("kind", ["asha", "hyperband"])
@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_the_best_full_runs_are_reevaluated_after_the_multi_fidelity_search(kind, order_seed):
    spec = make_spec(kind=kind)
    rows, outcome, plan = run(spec, order_seed)
    assert isinstance(plan, Reevaluation) and isinstance(plan.search, MultiFidelity)
    assert (outcome.phase, outcome.reason) == (SUCCEEDED, MAX_TRIALS_REACHED)
    assert "spec.final" in outcome.message

    search = [r for r in rows if not r.get("reevaluationOf")]
    extra = sorted((r for r in rows if r.get("reevaluationOf")), key=lambda r: r["index"])
    # After the search's last trial, as one block (promotions took the indices after maxTrials).
    assert min(r["index"] for r in extra) == max(r["index"] for r in search) + 1
    assert [r["index"] for r in extra] == list(range(extra[0]["index"], extra[0]["index"] + 4))
    # The top 2 of the trials trained the full 9 epochs (the last rung), best first, 2 more seeds each.
    full = sorted((r for r in search if r["epochs"] == 9), key=lambda r: (-r["reward"], r["index"]))
    assert len(full) >= 2
    assert [(r["reevaluationOf"], r["seed"]) for r in extra] == \
        [(full[0]["name"], SEED + 1), (full[0]["name"], SEED + 2), (full[1]["name"], SEED + 1), (full[1]["name"], SEED + 2)]
    assert all(r["epochs"] == 9 and fidelity.FIDELITY not in r for r in extra)  # from scratch, full epochs

    records = [from_row(r, details=False) for r in rows]
    assert [plan.strategy_index(r) for r in records if r.reevaluation_of] == [None] * 4
    assert not any(plan.may_stop_early(r) for r in records if r.reevaluation_of)
    # The strategy still observes each candidate's first rung.
    observed = sorted(plan.strategy_index(r) for r in records if plan.strategy_index(r) is not None)
    assert observed == list(range(spec["budget"]["maxTrials"]))

    aggregates = plan.aggregates(records)
    assert [a.name for a in aggregates][:2] and {a.name for a in aggregates} == {full[0]["name"], full[1]["name"]}
    best = aggregates[0]
    assert best.n == 3 and best.trials[0] == best.name
    means = {a.name: a.mean for a in aggregates}
    for a in aggregates:
        original = next(r for r in rows if r["name"] == a.name)
        runs = [original["reward"]] + [r["reward"] for r in extra if r["reevaluationOf"] == a.name]
        assert means[a.name] == pytest.approx(sum(runs) / 3)
    assert plan.planned_trials() == fidelity.planned_trials(spec) + 4


def test_a_restarted_plan_decides_the_same_trials():
    spec = make_spec()
    straight, _, _ = run(spec, order_seed=5)
    restarted, _, _ = run(spec, order_seed=5, restart_every=1)
    assert straight == restarted


def test_no_reevaluation_while_a_promotion_is_in_flight():
    spec = make_spec(parallel=9)
    rows, _, _ = run(spec, order_seed=7)
    # Take back the last promotion to the full epochs: the search is not over while it runs.
    last = max((r for r in rows if r["epochs"] == 9 and not r.get("reevaluationOf")), key=lambda r: r["index"])
    before = [dict(r, status=RUNNING, reward=None) if r["name"] == last["name"] else r
              for r in rows if not r.get("reevaluationOf")]
    plan = plan_for(spec)
    records = [from_row(r, details=False) for r in before]
    assert plan.next_trials(records) == [] and plan.outcome(records, 0) is None


def test_a_failed_reevaluation_counts_against_max_failed_trials_and_is_left_out_of_the_mean():
    spec = make_spec()
    rows, _, _ = run(spec, order_seed=0)
    extra = sorted((r for r in rows if r.get("reevaluationOf")), key=lambda r: r["index"])
    rows = [dict(r, status=FAILED, reward=None) if r["name"] == extra[0]["name"] else r for r in rows]
    plan = plan_for(spec)
    records = [from_row(r, details=False) for r in rows]
    assert plan.outcome(records, 0).phase == SUCCEEDED
    top = next(a for a in plan.aggregates(records) if a.name == extra[0]["reevaluationOf"])
    assert top.n == 2


def test_validation_accepts_fidelity_with_final_and_bounds_top_k_by_the_full_runs():
    def experiment(top_k, max_trials=9, kind="asha"):
        return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "e"},
                "spec": {"objective": {"metric": "accuracy"}, "searchSpace": {"type": "chain"},
                         "strategy": {"type": "random", "fidelity": {"type": kind, "reductionFactor": 3}},
                         "budget": {"maxTrials": max_trials},
                         "trial": {"dataset": {"name": "digits"}, "training": {"epochs": 9}},
                         "final": {"topK": top_k, "seeds": 2}}}

    assert validate_experiment(experiment(1)) == []  # 9 candidates, rungs 1, 3, 9: 1 reaches 9 epochs
    [issue] = validate_experiment(experiment(2))
    assert issue.path == "spec.final.topK"
    assert "trains to the full 9 epochs" in issue.message and "lower final.topK to at most 1" in issue.message
    [issue] = validate_experiment(experiment(1, max_trials=8))
    assert "raise budget.maxTrials" in issue.message
    assert validate_experiment(experiment(2, max_trials=18)) == []
    assert validate_experiment(experiment(3, kind="hyperband", max_trials=30)) == []
