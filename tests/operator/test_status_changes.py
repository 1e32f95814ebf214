"""Status folding and spec changes (pure)."""
from __future__ import annotations

import json

from kubenas.api.defaults import with_defaults
from kubenas.operator.changes import compare
from kubenas.operator.status import fold, set_condition, status_patch

from ..experiment.test_experiment import SPEC, s


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


def test_conditions_keep_transition_time_unless_status_changes():
    c1 = set_condition([], "Running", "True", "R", "m", now="t1")
    c2 = set_condition(c1, "Running", "True", "R2", "m2", now="t2")
    assert c2[0]["lastTransitionTime"] == "t1" and c2[0]["reason"] == "R2"
    c3 = set_condition(c2, "Running", "False", "Done", "m3", now="t3")
    assert c3[0]["lastTransitionTime"] == "t3"


def test_status_patch_only_changes():
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": None}) == {"b": 3}
    assert status_patch({"c": 5}, {"c": None}) == {"c": None}


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
