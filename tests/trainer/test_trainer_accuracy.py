"""A chain and a cell genotype each reach >= 0.95 validation accuracy on digits within 30 s of CPU."""
import pytest

from kubenas_trainer.training.loop import run_trial

CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 32, "kernel": 3, "stride": 1},
                                     {"op": "conv", "filters": 64, "kernel": 3, "stride": 2},
                                     {"op": "conv", "filters": 64, "kernel": 3, "stride": 1}]}
CELL = {"type": "cell", "nodes": 4,
        "edges": [["conv_3x3"], ["skip_connect", "conv_3x3"], ["conv_1x1", "skip_connect", "conv_3x3"]],
        "channels": 16, "cellsPerStage": 1, "stages": 2}


@pytest.mark.slow
@pytest.mark.parametrize("architecture", [CHAIN, CELL], ids=["chain", "cell"])
def test_reaches_95_percent_on_digits_within_30s(architecture):
    trial = {"architecture": architecture, "dataset": {"name": "digits"}, "objective": {"metric": "accuracy"},
             "training": {"epochs": 10, "batchSize": 32, "optimizer": "sgd", "learningRate": 0.05,
                          "device": "cpu", "seed": 0}}
    result = run_trial(trial)
    assert result["status"] == "Succeeded", result["message"]
    assert result["reward"] >= 0.95, result["history"]
    assert result["metrics"]["testAccuracy"] >= 0.93
    assert result["metrics"]["wallSeconds"] < 30
