"""constraints.maxLatencyMs: the trainer measures the built, untrained network on its device
and refuses it before training (ConstraintViolated); within the limit the trial trains
exactly as without it; the experiment does not count such refusals as failures."""
from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment
from kubenas.api.trials import build_trial_spec
from kubenas.contract import CONSTRAINT_VIOLATED, FAILED, SUCCEEDED, TOO_MANY_FAILED_TRIALS
from kubenas.experiment import experiment_outcome, from_row
from kubenas_trainer.errors import exit_code
from kubenas_trainer.training.loop import run_trial

from .test_trainer_train import tiny


def test_a_network_slower_than_the_limit_is_refused_before_training():
    trial = {**tiny(), "constraints": {"maxLatencyMs": 1e-6}}
    result = run_trial(trial)
    assert result["status"] == FAILED and result["reason"] == CONSTRAINT_VIOLATED
    assert result["history"] == []  # not one epoch trained
    assert result["metrics"]["latencyMs"] > 1e-6
    assert "constraints.maxLatencyMs" in result["message"] and "not trained" in result["message"]
    assert exit_code(result) == 7


def test_within_the_limit_the_trial_trains_exactly_as_without_it():
    plain = run_trial(tiny(deterministic=True))
    limited = run_trial({**tiny(deterministic=True), "constraints": {"maxLatencyMs": 1e6}})
    assert limited["status"] == SUCCEEDED
    assert limited["reward"] == plain["reward"]
    assert [h["loss"] for h in limited["history"]] == [h["loss"] for h in plain["history"]]
    assert limited["metrics"]["latencyMs"] > 0  # measured, although measureLatency is false


def test_a_bad_limit_in_a_trial_is_an_invalid_trial():
    result = run_trial({**tiny(), "constraints": {"maxLatencyMs": -1}})
    assert result["reason"] == "InvalidTrial" and "constraints.maxLatencyMs" in result["message"]


def experiment(limit):
    return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "lat"},
            "spec": {"objective": {"metric": "accuracy"}, "strategy": {"type": "random"},
                     "budget": {"maxTrials": 4, "maxFailedTrials": 0},
                     "constraints": {"maxLatencyMs": limit},
                     "trial": {"dataset": {"name": "digits"}},
                     "searchSpace": {"type": "chain", "chain": {"layers": 2, "filters": [8, 16],
                                                               "kernelSizes": [3], "strides": [1, 2]}}}}


def test_the_limit_is_validated_and_handed_to_every_trial():
    assert validate_experiment(experiment(2.5)) == []
    for bad in (0, -1, "fast"):
        issues = validate_experiment(experiment(bad))
        assert [i.path for i in issues] == ["spec.constraints.maxLatencyMs"], issues
    trial = build_trial_spec("lat", experiment(2.5)["spec"], 0, {"architecture": tiny()["architecture"]})
    assert trial["constraints"] == {"maxLatencyMs": 2.5}
    assert "constraints" not in build_trial_spec("x", {**experiment(1)["spec"], "constraints": {}}, 0,
                                                 {"architecture": tiny()["architecture"]})


def test_refused_candidates_use_the_trial_budget_not_the_failure_budget():
    spec = with_defaults(experiment(2.5)["spec"])
    rows = [{"name": f"lat-{i}", "index": i, "status": FAILED, "reason": CONSTRAINT_VIOLATED} for i in range(3)]
    assert experiment_outcome(spec, [from_row(r) for r in rows], 0.0) is None
    rows.append({"name": "lat-3", "index": 3, "status": FAILED, "reason": "Diverged"})
    outcome = experiment_outcome(spec, [from_row(r) for r in rows], 0.0)
    assert outcome.reason == TOO_MANY_FAILED_TRIALS and outcome.message.startswith("1 trials failed")
