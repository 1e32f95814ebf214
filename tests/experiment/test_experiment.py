"""kubenas.experiment: trial records from both sources, the ending rule, the trials to start (pure)."""
from __future__ import annotations

from datetime import datetime, timezone

from kubenas.api.defaults import with_defaults
from kubenas.experiment import (TrialRecord, best, elapsed_seconds, experiment_outcome, from_row, from_trial_object,
                                ranked, strategy_reward)
from kubenas.operator.status import trial_details
from kubenas.experiment.plan import plan_for


def starts(spec, records):
    """The indices of the trials the experiment plan starts now."""
    return [t.index for t in plan_for(spec).next_trials(records)]

SPEC = with_defaults({"objective": {"metric": "accuracy"}, "searchSpace": {"type": "chain"},
                      "strategy": {"type": "random"}, "budget": {"maxTrials": 6, "parallelTrials": 2,
                                                                  "maxFailedTrials": 1},
                      "trial": {"dataset": {"name": "digits"}}})


def s(index, phase, reward=None):
    return TrialRecord(f"e-{index}", index, phase, reward, architecture="a")


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


def test_the_plan_keeps_parallel_in_flight_within_budget():
    assert starts(SPEC, []) == [0, 1]
    assert starts(SPEC, [s(0, "Running"), s(1, "Pending")]) == []
    assert starts(SPEC, [s(0, "Succeeded", 0.1), s(1, "Running")]) == [2]
    five_done = [s(i, "Succeeded", 0.1) for i in range(5)]
    assert starts(SPEC, five_done) == [5]  # only one left in the budget
    assert starts(SPEC, five_done + [s(5, "Running")]) == []
    assert starts(SPEC, [s(0, "Failed"), s(1, "Failed")]) == []  # failures exhausted it
    assert starts(SPEC, [s(3, "Succeeded", 0.1)]) == [4, 5]  # after the highest index


def test_elapsed():
    now = datetime(2024, 1, 1, 0, 1, tzinfo=timezone.utc)
    assert elapsed_seconds("2024-01-01T00:00:00Z", now) == 60
    assert elapsed_seconds(None, now) == 0


def test_record_from_a_trial_ignores_garbage():
    trial = {"metadata": {"name": "e-0"}, "spec": {"index": 0, "objective": {"metric": "accuracy"},
                                                   "architecture": {"type": "chain", "layers": [{"op": "identity"}]}},
             "status": {"phase": "Succeeded", "reward": float("nan"), "metrics": {"a": 1, "b": "x"},
                        "history": [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2}]}}
    summary = from_trial_object(trial)
    assert summary.values.itemsize == 8  # packed doubles, not a tuple of float objects
    assert summary.reward is None and summary.history("accuracy") == [{"accuracy": 0.5}, {"accuracy": None}]
    assert summary.architecture == "identity" and summary.acknowledged is False
    assert trial_details(trial)["metrics"] == {"a": 1}


def test_record_from_a_trial_keeps_only_what_folding_reads():
    """Per-trial memory of the operator: no hyperparameters, metrics or history of running trials."""
    trial = {"metadata": {"name": "e-1"},
             "spec": {"index": 1, "architecture": {"type": "chain", "layers": [{"op": "identity"}]},
                      "hyperparameters": {"learningRate": 0.1}},
             "status": {"phase": "Running", "metrics": {"a": 1}, "history": [{"epoch": 1, "accuracy": 0.5}]}}
    summary = from_trial_object(trial)
    assert len(summary.values) == 0 and "hyperparameters" not in TrialRecord.__slots__
    done = {**trial, "status": {"phase": "Succeeded", "reward": 0.5, "history": [{"accuracy": 0.5}],
                                "conditions": [{"type": "Finished", "status": "True"}]}}
    assert from_trial_object(done).acknowledged is True and list(from_trial_object(done).values) == [0.5]


def test_a_row_and_a_trial_object_of_the_same_trial_are_the_same_record():
    architecture = {"type": "chain", "layers": [{"op": "identity"}]}
    history = [{"epoch": 1, "accuracy": 0.4}, {"epoch": 2, "accuracy": 0.5}]
    row = {"name": "e-2", "index": 2, "status": "Succeeded", "reward": 0.5, "architecture": architecture,
           "history": history}
    trial = {"metadata": {"name": "e-2"}, "spec": {"index": 2, "architecture": architecture},
             "status": {"phase": "Succeeded", "reward": 0.5, "history": history,
                        "conditions": [{"type": "Finished", "status": "True"}]}}
    assert from_row(row) == from_trial_object(trial)
    assert from_row({**row, "reward": float("nan")}).reward is None


def test_ranking_ties_and_what_a_strategy_learns():
    records = [s(3, "Succeeded", 0.9), s(1, "Succeeded", 0.9), s(2, "EarlyStopped", 0.99), s(4, "Failed")]
    assert [r.index for r in ranked(records, "maximize")] == [1, 3]  # ties: lower index first
    assert best(records, "minimize").index == 1 and best([], "maximize") is None
    assert strategy_reward("EarlyStopped", 0.99) == 0.99 and strategy_reward("Failed", 0.5) is None
    assert strategy_reward("Succeeded", float("inf")) is None
