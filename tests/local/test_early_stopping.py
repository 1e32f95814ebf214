"""The median stopping rule, pure and inside the local runner."""
from kubenas.cli import main
from kubenas.early_stopping import median_stop
from kubenas.space import SearchSpace
from kubenas.strategies import make_strategy

from .conftest import finished_lines, write


def h(*values):
    return [{"epoch": i + 1, "accuracy": v} for i, v in enumerate(values)]


COMPLETED = [h(0.5, 0.7, 0.8), h(0.6, 0.8, 0.9), h(0.4, 0.6, 0.7)]


def test_stops_a_trial_below_the_median_of_running_averages():
    # Running averages at epoch 2: 0.6, 0.7, 0.5 -> median 0.6.
    assert median_stop(h(0.3, 0.5), COMPLETED, "accuracy", "maximize", min_trials=3, start_epoch=2)
    assert not median_stop(h(0.3, 0.65), COMPLETED, "accuracy", "maximize", min_trials=3, start_epoch=2)


def test_waits_for_start_epoch_and_enough_trials():
    assert not median_stop(h(0.1), COMPLETED, "accuracy", "maximize", min_trials=3, start_epoch=2)
    assert not median_stop(h(0.1, 0.1), COMPLETED, "accuracy", "maximize", min_trials=4, start_epoch=2)


def test_minimize_goal_stops_high_losses():
    losses = [[{"loss": v} for v in run] for run in ([1.0, 0.5], [0.8, 0.4], [0.9, 0.6])]
    # Running averages of loss at epoch 2: 0.75, 0.6, 0.75 -> median 0.75.
    assert median_stop([{"loss": 1.2}, {"loss": 0.9}], losses, "loss", "minimize", min_trials=3, start_epoch=2)
    assert not median_stop([{"loss": 1.2}, {"loss": 0.7}], losses, "loss", "minimize", min_trials=3, start_epoch=2)


def test_runner_early_stops_a_hopeless_trial(tmp_path, tiny):
    # Two candidates: one conv layer (learns digits) or identity (a linear model on the
    # globally pooled image, hopeless). With a seed that proposes conv first, the
    # identity trial is stopped by the median rule long before its 200 epochs end.
    space_spec = {"type": "chain", "chain": {"layers": 1, "operations": ["conv", "identity"],
                                              "filters": [16], "kernelSizes": [3], "strides": [1]}}
    space = SearchSpace.from_spec(space_spec)
    seed = next(s for s in range(100)
                if make_strategy({"type": "random", "seed": s}, space).propose(0)["architecture"]["layers"][0]["op"] == "conv")
    tiny["spec"].update(
        searchSpace=space_spec, strategy={"type": "random", "seed": seed},
        budget={"maxTrials": 2, "parallelTrials": 1, "trialTimeoutSeconds": 300},
        earlyStopping={"type": "median", "minTrials": 1, "startEpoch": 1})
    # Enough data and steps that the conv trial clearly learns (its running average soon
    # passes anything the identity trial reaches), so the rule fires whenever it is polled.
    tiny["spec"]["trial"]["dataset"]["limit"] = 400
    tiny["spec"]["trial"]["training"] = {"epochs": 200, "batchSize": 32, "maxTrainBatches": 4,
                                         "optimizer": "adam", "learningRate": 0.01, "measureLatency": False}
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    first, second = finished_lines(run_dir)
    assert first["status"] == "Succeeded" and len(first["history"]) == 200
    assert second["architecture"]["layers"][0]["op"] == "identity"
    assert second["status"] == "EarlyStopped"
    assert 1 <= len(second["history"]) < 200
    assert second["reward"] < first["reward"]
