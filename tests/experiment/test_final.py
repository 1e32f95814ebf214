"""kubenas.experiment.final: which re-evaluation trials, their indices and seeds, the aggregate (pure)."""
from __future__ import annotations

import pytest

from kubenas.api.trials import build_trial_spec
from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment
from kubenas.experiment import final, from_row
from kubenas.experiment.plan import plan_for

SPEC = with_defaults({"objective": {"metric": "accuracy"}, "searchSpace": {"type": "chain"},
                      "strategy": {"type": "random"},
                      "budget": {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 1},
                      "trial": {"dataset": {"name": "digits"}, "training": {"seed": 10}},
                      "final": {"topK": 2, "seeds": 3}})


def arch(n):
    return {"type": "chain", "layers": [{"op": "conv", "filters": 8 * (n + 1), "kernel": 3, "stride": 1}]}


def row(index, reward, architecture=None, status="Succeeded", of=None, seed=None):
    r = {"name": f"e-{index}", "index": index, "architecture": architecture or arch(index), "hyperparameters": {},
         "status": status, "reward": reward}
    if of is not None:
        r.update(reevaluationOf=of, seed=seed)
    return r


def recs(rows):
    return [from_row(r, details=False) for r in rows]


SEARCH = [row(0, 0.80), row(1, 0.95), row(2, 0.90), row(3, 0.95, architecture=arch(1))]  # e-3 duplicates e-1


def test_no_plan_before_the_search_has_finished_nor_without_final():
    assert final.reevaluation_plan(SPEC, SEARCH[:3]) == []
    assert final.reevaluation_plan({**SPEC, "final": None}, SEARCH) == []
    assert final.aggregates(SPEC, SEARCH[:3]) == []


def test_plan_top_k_distinct_candidates_other_seeds_indices_after_the_search():
    plan = final.reevaluation_plan(SPEC, SEARCH)
    # e-1 best, e-3 is the same candidate (skipped), then e-2; seeds 10+1, 10+2
    assert [(p.index, p.of, p.seed) for p in plan] == [(4, "e-1", 11), (5, "e-1", 12), (6, "e-2", 11), (7, "e-2", 12)]
    assert [p.offset for p in plan] == [1, 2, 1, 2]
    assert plan_for(SPEC).planned_trials() == 4 + 2 * 2
    # the same plan from records (what the operator and the controller keep), with a
    # running trial among them that is not finished yet
    running = {"name": "e-4", "index": 4, "status": "Running", "reevaluationOf": "e-1", "architecture": arch(1)}
    records = recs(SEARCH) + recs([running])
    assert [(p.index, p.of) for p in final.reevaluation_plan(SPEC, final.rows_of(records))] == \
        [(p.index, p.of) for p in plan]
    assert final.outcome(SPEC, records, 0) is None


def test_reevaluation_trial_changes_the_seed_only_and_is_marked():
    plan = final.reevaluation_plan(SPEC, SEARCH)
    base = build_trial_spec("e", SPEC, plan[0].index, SEARCH[1])
    trial = final.reevaluation_trial(base, plan[0])
    assert trial["training"]["seed"] == 11 and trial["reevaluationOf"] == "e-1" and trial["index"] == 4
    assert {k: v for k, v in trial.items() if k not in ("training", "reevaluationOf")} == \
        {k: v for k, v in base.items() if k != "training"}
    assert base["training"]["seed"] == 10  # not changed in place


def test_best_is_chosen_on_the_mean_not_the_best_single_run():
    rows = SEARCH + [row(4, 0.70, arch(1), of="e-1", seed=11), row(5, 0.75, arch(1), of="e-1", seed=12),
                     row(6, 0.89, arch(2), of="e-2", seed=11), row(7, 0.91, arch(2), of="e-2", seed=12)]
    top, second = final.aggregates(SPEC, rows)
    assert top.name == "e-2" and top.rewards == (0.90, 0.89, 0.91) and top.n == 3
    assert top.mean == pytest.approx(0.90) and top.std == pytest.approx(0.01)
    assert second.name == "e-1" and second.mean == pytest.approx((0.95 + 0.70 + 0.75) / 3)
    assert top.as_dict()["trials"] == ["e-2", "e-6", "e-7"]


def test_a_failed_reevaluation_is_left_out_of_the_mean():
    rows = SEARCH + [row(4, None, arch(1), status="Failed", of="e-1", seed=11)]
    by_name = {a.name: a for a in final.aggregates(SPEC, rows)}
    assert by_name["e-1"].rewards == (0.95,) and by_name["e-1"].std == 0.0


def test_outcome_succeeds_only_when_every_reevaluation_has_finished():
    assert final.outcome(SPEC, recs(SEARCH[:3]), 0) is None
    assert final.outcome(SPEC, recs(SEARCH), 0) is None  # search done: re-evaluating
    extra = [row(i, 0.9, of="e-1", seed=11) for i in (4, 5, 6)]
    assert final.outcome(SPEC, recs(SEARCH + extra), 0) is None
    done = final.outcome(SPEC, recs(SEARCH + extra + [row(7, 0.9, of="e-2", seed=12)]), 0)
    assert (done.phase, done.reason) == ("Succeeded", "MaxTrialsReached")
    failed = final.outcome(SPEC, recs(SEARCH + [row(i, None, status="Failed", of="e-1") for i in (4, 5)]), 0)
    assert (failed.phase, failed.reason) == ("Failed", "TooManyFailedTrials")
    deadline = dict(SPEC, budget={**SPEC["budget"], "deadlineSeconds": 60})
    assert final.outcome(deadline, recs(SEARCH), 61).phase == "Stopped"
    plain = {**SPEC, "final": None}
    assert final.outcome(plain, recs(SEARCH), 0).phase == "Succeeded"


def experiment(**spec):
    return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "e"},
            "spec": {"objective": {"metric": "accuracy"}, "searchSpace": {"type": "chain"},
                     "strategy": {"type": "random"}, "budget": {"maxTrials": 4},
                     "trial": {"dataset": {"name": "digits"}}, **spec}}


def test_validation_of_spec_final():
    assert validate_experiment(experiment(final={"topK": 2, "seeds": 3})) == []
    paths = [i.path for i in validate_experiment(experiment(final={"topK": 0, "seeds": 1}))]
    assert "spec.final.topK" in paths and "spec.final.seeds" in paths
    with_target = experiment(final={"topK": 1, "seeds": 2}, objective={"metric": "accuracy", "target": 0.9})
    assert [i.path for i in validate_experiment(with_target)] == ["spec.final"]


def test_a_trial_whose_candidate_cannot_be_hashed_is_a_candidate_of_its_own():
    garbage = [dict(row(0, 0.9), architecture={"type": "nonsense"}), row(1, 0.8), row(2, 0.7), row(3, 0.6)]
    records = recs(garbage)
    assert records[0].hash is None  # never a crash while folding
    plan = final.reevaluation_plan(SPEC, final.rows_of(records))
    assert [p.of for p in plan] == ["e-0", "e-0", "e-1", "e-1"]
