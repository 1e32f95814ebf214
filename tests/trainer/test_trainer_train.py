"""run_trial: results, failures as results, settings, determinism, early stop, timeouts."""
import math
import time

import pytest
import torch

from kubenas_trainer.tasks import classification
from kubenas_trainer.errors import exit_code
from kubenas_trainer.models import build_model
from kubenas_trainer.training.loop import run_trial

CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1},
                                     {"op": "max_pool", "kernel": 3, "stride": 2},
                                     {"op": "dw_conv", "filters": 16, "kernel": 3, "stride": 1}]}
CELL = {"type": "cell", "nodes": 3, "edges": [["conv_3x3"], ["skip_connect", "avg_pool_3x3"]],
        "channels": 4, "cellsPerStage": 1, "stages": 2}


def tiny(architecture=CHAIN, **training):
    return {"architecture": architecture, "dataset": {"name": "digits", "limit": 64},
            "training": {"epochs": 2, "batchSize": 16, "measureLatency": False, **training}}


@pytest.mark.parametrize("architecture", [CHAIN, CELL])
def test_result_has_the_documented_shape(architecture):
    trial = tiny(architecture, measureLatency=True)
    result = run_trial(trial)
    assert result["status"] == "Succeeded", result["message"]
    assert result["reason"] is None and result["device"] == "cpu"
    assert math.isfinite(result["reward"]) and result["reward"] == result["history"][-1]["accuracy"]
    m = result["metrics"]
    for key in ("accuracy", "loss", "testAccuracy", "parameters", "macs", "latencyMs", "wallSeconds",
                "trainImagesPerSecond"):
        assert key in m, key
    model = build_model(architecture, (1, 8, 8), 10)
    assert m["parameters"] == sum(p.numel() for p in model.parameters())
    assert m["latencyMs"] > 0 and m["macs"] > 0
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert set(result["history"][0]) >= {"epoch", "accuracy", "loss", "trainLoss", "seconds"}
    assert exit_code(result) == 0


def test_same_seed_same_result_other_seed_differs():
    a, b = run_trial(tiny(seed=5)), run_trial(tiny(seed=5))
    c = run_trial(tiny(seed=6))
    strip = lambda r: [(h["loss"], h["trainLoss"], h["accuracy"]) for h in r["history"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert strip(a) != strip(c)


def test_hyperparameters_override_training():
    trial = tiny(epochs=3, learningRate=0.1)
    trial["hyperparameters"] = {"epochs": 1, "learningRate": 0.02, "batchSize": 32.0}
    result = run_trial(trial)
    assert len(result["history"]) == 1
    # cosine over one epoch of 2 batches (64 examples / 32): after the last step the LR is 0
    assert result["history"][0]["learningRate"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("optimizer,schedule", [("sgd", "step"), ("adam", "cosine"), ("adamw", "constant")])
def test_optimizers_and_schedules(optimizer, schedule):
    result = run_trial(tiny(CELL, optimizer=optimizer, schedule=schedule, labelSmoothing=0.1, warmupEpochs=1,
                            gradientClipNorm=5.0, nesterov=optimizer == "sgd", maxTrainBatches=2))
    assert result["status"] == "Succeeded", result["message"]
    assert result["metrics"]["trainImagesPerSecond"] > 0


def test_nan_producing_setting_is_a_failed_result():
    result = run_trial(tiny(learningRate=1e30, epochs=3))
    assert result["status"] == "Failed" and result["reason"] == "Diverged"
    assert "learningRate" in result["message"] and result["reward"] is None
    assert exit_code(result) == 3


@pytest.mark.parametrize("patch,reason,field", [
    ({"architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 2, "stride": 1}]}},
     "InvalidArchitecture", "architecture.layers[0].kernel"),
    ({"architecture": {"type": "cell"}}, "InvalidArchitecture", "architecture.nodes"),
    ({"training": {"optimizer": "rmsprop"}}, "InvalidTrial", "training.optimizer"),
    ({"training": {"epochs": 0}}, "InvalidTrial", "training.epochs"),
    ({"training": {"batchSize": "big"}}, "InvalidTrial", "training.batchSize"),
    ({"hyperparameters": {"dropout": 0.5}}, "InvalidTrial", "hyperparameters.dropout"),
    ({"objective": {"metric": "testAccuracy"}}, "InvalidTrial", "objective.metric"),
    ({"timeoutSeconds": -1}, "InvalidTrial", "timeoutSeconds"),
    ({"dataset": {"name": "mnist", "path": "/nonexistent/kubenas"}}, "DataError", "dataset.path"),
    ({"dataset": {"name": "svhn"}}, "InvalidTrial", "dataset.name"),
])
def test_bad_trials_fail_with_a_reason_naming_the_field(patch, reason, field):
    result = run_trial({**tiny(), **patch})
    assert result["status"] == "Failed" and result["reason"] == reason
    assert field in result["message"]
    assert exit_code(result) == (6 if reason == "DataError" else 2)


def test_timeout_stops_between_batches():
    heavy = {"type": "chain", "layers": [{"op": "conv", "filters": 96, "kernel": 3, "stride": 1}] * 4}
    trial = {"architecture": heavy, "dataset": {"name": "digits"}, "timeoutSeconds": 0.5,
             "training": {"epochs": 1, "batchSize": 2, "measureLatency": False}}
    start = time.monotonic()
    result = run_trial(trial)
    assert result["reason"] == "Timeout", result
    assert "in epoch 1, batch" in result["message"] and result["history"] == []
    # ~575 batches in the epoch: it stopped long before the end of it
    assert time.monotonic() - start < 10
    assert exit_code(result) == 5


def test_deadline_argument_applies():
    result = run_trial(tiny(), deadline=time.monotonic())
    assert result["status"] == "Failed" and result["reason"] == "Timeout"


def test_on_epoch_stop_ends_early():
    records = []

    def on_epoch(record):
        records.append(record)
        return "stop"

    result = run_trial(tiny(epochs=5), on_epoch=on_epoch)
    assert result["status"] == "EarlyStopped" and len(records) == 1
    assert result["reward"] == records[0]["accuracy"] and len(result["history"]) == 1
    assert exit_code(result) == 0


def test_loss_objective_is_the_reward():
    result = run_trial({**tiny(), "objective": {"metric": "loss", "goal": "minimize"}})
    assert result["reward"] == result["history"][-1]["loss"]


def test_out_of_memory_and_crashes_become_results(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(classification, "build_model", oom)
    result = run_trial(tiny())
    assert result["reason"] == "OutOfMemory" and exit_code(result) == 4

    def bug(*args, **kwargs):
        raise ZeroDivisionError("oops")

    monkeypatch.setattr(classification, "build_model", bug)
    result = run_trial(tiny())
    assert result["reason"] == "InternalError" and "ZeroDivisionError" in result["message"]
    assert exit_code(result) == 1


def test_failing_callback_is_an_internal_error():
    result = run_trial(tiny(), on_epoch=lambda record: 1 / 0)
    assert result["reason"] == "InternalError" and "on_epoch" in result["message"]


def test_max_train_batches_and_weights(tmp_path):
    result = run_trial(tiny(maxTrainBatches=1, epochs=1), weights_path=tmp_path / "w.pt")
    assert result["status"] == "Succeeded"
    assert result["metrics"]["trainImagesPerSecond"] > 0
    saved = torch.load(tmp_path / "w.pt", weights_only=True)
    model = build_model(saved["architecture"], tuple(saved["inputShape"]), saved["numClasses"])
    model.load_state_dict(saved["stateDict"])
    assert saved["classes"] == [str(i) for i in range(10)]


def test_penalties_shape_the_reward_and_measure_what_they_need():
    """objective.penalties is applied by the trainer: latencyMs is measured for a latency
    penalty even with measureLatency false; the metrics keep the unpenalized values."""
    penalties = [{"metric": "parameters", "target": 100, "weight": -0.5},
                 {"metric": "latencyMs", "target": 1000.0, "weight": -0.01}]
    result = run_trial({**tiny(), "objective": {"metric": "accuracy", "penalties": penalties}})
    m = result["metrics"]
    assert result["status"] == "Succeeded" and "latencyMs" in m, result["message"]
    expected = m["accuracy"] * (m["parameters"] / 100) ** -0.5 * (max(m["latencyMs"], 1e-12) / 1000.0) ** -0.01
    assert result["reward"] == pytest.approx(expected) and m["accuracy"] == result["history"][-1]["accuracy"]


def test_malformed_penalties_fail_the_trial_as_invalid():
    result = run_trial({**tiny(), "objective": {"penalties": [{"metric": "flops", "target": 1, "weight": -1}]}})
    assert (result["status"], result["reason"]) == ("Failed", "InvalidTrial")
    assert "objective.penalties[0].metric" in result["message"]


def test_what_the_machine_lacks_is_unsatisfiable_before_any_training(monkeypatch):
    """Whatever the candidate, no trial can train on CUDA here: reason Unsatisfiable (exit 9),
    which ends the experiment (kubenas.experiment.outcome), not one more InvalidTrial."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = run_trial(tiny(device="cuda"))
    assert (result["status"], result["reason"], exit_code(result)) == ("Failed", "Unsatisfiable", 9)
    assert result["message"].startswith("training.device: cuda requested but no CUDA device is available")
    assert result["history"] == []
