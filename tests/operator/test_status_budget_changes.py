"""Status folding, budget decisions and spec changes (pure)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from kubenas.api.validation import with_defaults
from kubenas.operator.budget import elapsed_seconds, experiment_outcome, trials_to_start
from kubenas.operator.changes import compare
from kubenas.operator.status import fold, set_condition, status_patch, trial_details, trial_summary

SPEC = with_defaults({"objective": {"metric": "accuracy"}, "searchSpace": {"type": "chain"},
                      "strategy": {"type": "random"}, "budget": {"maxTrials": 6, "parallelTrials": 2,
                                                                  "maxFailedTrials": 1},
                      "trial": {"dataset": {"name": "digits"}}})


def s(index, phase, reward=None):
    return {"name": f"e-{index}", "index": index, "phase": phase, "reward": reward, "architecture": "a",
            "acknowledged": phase in ("Succeeded", "Failed", "EarlyStopped"), "values": ()}


def test_fold_is_bounded_and_ranks_by_goal():
    summaries = [s(i, "Succeeded", i / 10000) for i in range(5000)] + [s(5000, "Running"), s(5001, "Failed")]
    status = fold(summaries, "maximize")
    assert status["trials"] == {"created": 5002, "pending": 0, "running": 1, "succeeded": 5000, "failed": 1,
                                "earlyStopped": 0}
    assert status["bestTrial"]["name"] == "e-4999"
    assert len(status["topTrials"]) == 10 and status["topTrials"][0]["name"] == "e-4999"
    assert len(json.dumps(status)) < 4000  # bounded, whatever the number of trials
    assert fold(summaries, "minimize")["bestTrial"]["name"] == "e-0"
    assert fold([], "maximize")["bestTrial"] is None


def test_fold_reads_details_of_the_best_trial_only():
    summaries = [s(i, "Succeeded", i / 100) for i in range(50)]
    asked = []

    def details(name):
        asked.append(name)
        return {"hyperparameters": {"learningRate": 0.1}, "metrics": {"loss": 0.2}}

    best = fold(summaries, "maximize", details)["bestTrial"]
    assert asked == ["e-49"]
    assert best["hyperparameters"] == {"learningRate": 0.1} and best["metrics"] == {"loss": 0.2}


def test_trial_summary_ignores_garbage():
    trial = {"metadata": {"name": "e-0"}, "spec": {"index": 0, "objective": {"metric": "accuracy"},
                                                   "architecture": {"type": "chain", "layers": [{"op": "identity"}]}},
             "status": {"phase": "Succeeded", "reward": float("nan"), "metrics": {"a": 1, "b": "x"},
                        "history": [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2}]}}
    summary = trial_summary(trial)
    assert summary["reward"] is None and summary["values"] == (0.5, None)
    assert summary["architecture"] == "identity" and summary["acknowledged"] is False
    assert trial_details(trial)["metrics"] == {"a": 1}


def test_trial_summary_keeps_only_what_folding_reads():
    """Per-trial memory of the operator: no hyperparameters, metrics or history of running trials."""
    trial = {"metadata": {"name": "e-1"},
             "spec": {"index": 1, "architecture": {"type": "chain", "layers": [{"op": "identity"}]},
                      "hyperparameters": {"learningRate": 0.1}},
             "status": {"phase": "Running", "metrics": {"a": 1}, "history": [{"epoch": 1, "accuracy": 0.5}]}}
    summary = trial_summary(trial)
    assert set(summary) == {"name", "index", "phase", "reward", "acknowledged", "architecture"}
    done = {**trial, "status": {"phase": "Succeeded", "reward": 0.5, "history": [{"accuracy": 0.5}],
                                "conditions": [{"type": "Finished", "status": "True"}]}}
    assert trial_summary(done)["acknowledged"] is True and trial_summary(done)["values"] == (0.5,)


def test_conditions_keep_transition_time_unless_status_changes():
    c1 = set_condition([], "Running", "True", "R", "m", now="t1")
    c2 = set_condition(c1, "Running", "True", "R2", "m2", now="t2")
    assert c2[0]["lastTransitionTime"] == "t1" and c2[0]["reason"] == "R2"
    c3 = set_condition(c2, "Running", "False", "Done", "m3", now="t3")
    assert c3[0]["lastTransitionTime"] == "t3"


def test_status_patch_only_changes():
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": None}) == {"b": 3}
    assert status_patch({"c": 5}, {"c": None}) == {"c": None}


def test_outcomes():
    assert experiment_outcome(SPEC, [s(i, "Succeeded", 0.5) for i in range(5)], 0) is None
    done = experiment_outcome(SPEC, [s(i, "Succeeded", 0.5) for i in range(6)], 0)
    assert (done.phase, done.reason) == ("Succeeded", "MaxTrialsReached")
    failed = experiment_outcome(SPEC, [s(0, "Failed"), s(1, "Failed")], 0)
    assert (failed.phase, failed.reason) == ("Failed", "TooManyFailedTrials")
    target = dict(SPEC, objective={**SPEC["objective"], "target": 0.9})
    assert experiment_outcome(target, [s(0, "Succeeded", 0.95)], 0).reason == "TargetReached"
    deadline = dict(SPEC, budget={**SPEC["budget"], "deadlineSeconds": 60})
    assert experiment_outcome(deadline, [], 61).phase == "Stopped"


def test_trials_to_start_keeps_parallel_in_flight_within_budget():
    assert trials_to_start(SPEC, []) == [0, 1]
    assert trials_to_start(SPEC, [s(0, "Running"), s(1, "Pending")]) == []
    assert trials_to_start(SPEC, [s(0, "Succeeded", 0.1), s(1, "Running")]) == [2]
    five_done = [s(i, "Succeeded", 0.1) for i in range(5)]
    assert trials_to_start(SPEC, five_done) == [5]  # only one left in the budget
    assert trials_to_start(SPEC, five_done + [s(5, "Running")]) == []
    assert trials_to_start(SPEC, [s(0, "Failed"), s(1, "Failed")]) == []  # failures exhausted it
    assert trials_to_start(SPEC, [s(3, "Succeeded", 0.1)]) == [4, 5]  # after the highest index


def test_elapsed():
    now = datetime(2024, 1, 1, 0, 1, tzinfo=timezone.utc)
    assert elapsed_seconds("2024-01-01T00:00:00Z", now) == 60
    assert elapsed_seconds(None, now) == 0


def test_spec_changes():
    new = json.loads(json.dumps(SPEC))
    new["budget"]["maxTrials"] = 20
    del new["budget"]["maxFailedTrials"]  # a derived default must not count as a change
    change = compare(with_defaults({**SPEC, "budget": {"maxTrials": 6, "parallelTrials": 2}}), new)
    assert change.refused == [] and change.applied == {"spec.budget.maxTrials": (6, 20)}
    assert change.effective["budget"]["maxTrials"] == 20
    other = json.loads(json.dumps(SPEC))
    other["strategy"]["seed"] = 5
    other["budget"]["parallelTrials"] = 3
    change = compare(SPEC, other)
    assert change.refused == ["spec.strategy.seed"]
    assert change.effective["budget"]["parallelTrials"] == 3 and change.effective["strategy"]["seed"] == 0
