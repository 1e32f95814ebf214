"""When an experiment ends Failed (kubenas.experiment.outcome: one rule for the local runner,
the operator and the controller): a failure every trial would repeat ends it at once, and
a spent budget without a succeeded trial is no result."""
from __future__ import annotations

from kubenas.api.defaults import with_defaults
from kubenas.experiment import experiment_outcome, failure_line, from_row, from_trial_object
from kubenas.experiment import final as final_phase
from kubenas.experiment.plan import plan_for


def starts(spec, records):
    """The indices of the trials the experiment plan starts now."""
    return [t.index for t in plan_for(spec).next_trials(records)]

SPEC = with_defaults({"objective": {"metric": "accuracy"}, "searchSpace": {"type": "chain"},
                      "strategy": {"type": "random"}, "budget": {"maxTrials": 2, "parallelTrials": 2,
                                                                  "maxFailedTrials": 4},
                      "trial": {"dataset": {"name": "digits"}}})
NO_CUDA = "training.device: cuda requested but no CUDA device is available here; set training.device: auto"


def row(index, status, reward=None, reason=None, message=""):
    return from_row({"name": f"e-{index}", "index": index, "status": status, "reward": reward, "reason": reason,
                     "message": message}, details=False)


def test_a_spent_budget_without_a_succeeded_trial_ends_failed_naming_the_last_failure():
    records = [row(0, "Failed", reason="InvalidTrial", message="x: bad"),
               row(1, "Failed", reason="InternalError", message="the program exited with code 1; its last output:\n"
                                                                "Traceback (most recent call last):\nValueError: boom")]
    outcome = experiment_outcome(SPEC, records, 0)
    assert (outcome.phase, outcome.reason) == ("Failed", "NoTrialSucceeded")
    assert outcome.message == ("2 trials finished (budget.maxTrials), none succeeded; the last failure: "
                               "trial e-1 InternalError: ValueError: boom")
    # One success is a result: the same budget ends Succeeded.
    assert experiment_outcome(SPEC, [records[0], row(1, "Succeeded", 0.5)], 0).phase == "Succeeded"
    # Early-stopped trials are not ranked either.
    assert experiment_outcome(SPEC, [row(0, "EarlyStopped", 0.3), row(1, "EarlyStopped", 0.2)], 0).phase == "Failed"


def test_a_failure_every_trial_would_repeat_ends_the_experiment_at_once():
    records = [row(0, "Failed", reason="Unsatisfiable", message=NO_CUDA)]
    outcome = experiment_outcome(dict(SPEC, budget={**SPEC["budget"], "maxTrials": 50}), records, 0)
    assert (outcome.phase, outcome.reason) == ("Failed", "Unsatisfiable")
    assert outcome.message.startswith("trial e-0 failed Unsatisfiable: training.device: cuda requested")
    assert starts(dict(SPEC, budget={**SPEC["budget"], "maxTrials": 50}), records) == []
    # Any other single failure leaves the experiment running (maxFailedTrials decides).
    assert experiment_outcome(SPEC, [row(0, "Failed", reason="InvalidTrial", message="x")], 0) is None


def test_spec_final_ends_by_the_same_rule():
    spec = with_defaults({**SPEC, "final": {"topK": 1, "seeds": 2}})
    assert final_phase.outcome(spec, [row(0, "Failed", reason="Unsatisfiable", message=NO_CUDA)], 0).reason \
        == "Unsatisfiable"
    none = final_phase.outcome(spec, [row(0, "Failed", reason="DataError", message="d"),
                                      row(1, "Failed", reason="DataError", message="d")], 0)
    assert (none.phase, none.reason) == ("Failed", "NoTrialSucceeded")


def test_both_sources_keep_what_a_failed_trial_failed_on():
    message = "the program exited with code 1; its last output:\n  File \"x.py\", line 3\nKeyError: 'lr'\n"
    trial = {"metadata": {"name": "e-0"}, "spec": {"index": 0},
             "status": {"phase": "Failed", "reason": "InternalError", "message": message}}
    assert from_trial_object(trial, details=False).failure == "KeyError: 'lr'" == row(0, "Failed", message=message).failure
    assert row(0, "Succeeded", 0.5, message="stopped early").failure == ""
    assert failure_line("x" * 500, limit=20) == "x" * 17 + "..."
