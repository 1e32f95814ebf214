"""trial.checkpoint and training.scheduleEpochs: a resumed trial continues its training exactly."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from kubenas.contract import artifacts as art
from kubenas_trainer.reporting.artifacts import Policy, publish_result
from kubenas_trainer.errors import InvalidTrial
from kubenas_trainer.settings import resolve_trial
from kubenas_trainer.training.loop import run_trial

CHAIN = {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1},
                                     {"op": "max_pool", "kernel": 3, "stride": 2}]}
OTHER = {"type": "chain", "layers": [{"op": "conv", "filters": 4, "kernel": 3, "stride": 1}]}


def trial(epochs, *, schedule=9, save=False, resume=None, architecture=CHAIN):
    t = {"architecture": architecture, "dataset": {"name": "digits", "limit": 96},
         "training": {"epochs": epochs, "scheduleEpochs": schedule, "batchSize": 16, "measureLatency": False,
                      "momentum": 0.9, "warmupEpochs": 1}}
    if save or resume:
        t["checkpoint"] = {"save": save, "resumeFrom": resume}
    return t


def _curve(result):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in result["history"]]


def _weights(path):
    return torch.load(path, weights_only=True)["stateDict"]


def test_resuming_gives_exactly_the_straight_run(tmp_path):
    straight = run_trial(trial(9), weights_path=tmp_path / "straight.pt")
    first = run_trial(trial(3, save=True), checkpoint_path=tmp_path / "a.pt")
    assert first["metrics"]["resumedFromEpoch"] == 0 and first["checkpoint"] == str(tmp_path / "a.pt")
    second = run_trial(trial(9, resume=str(tmp_path / "a.pt")), weights_path=tmp_path / "resumed.pt")
    assert second["status"] == "Succeeded", second["message"]
    assert second["metrics"]["resumedFromEpoch"] == 3 and second["metrics"]["epochsTrained"] == 6
    assert _curve(second) == _curve(straight)  # bit for bit, not approximately
    assert second["reward"] == straight["reward"]
    assert second["history"][:3] == first["history"]  # the earlier epochs keep their own seconds
    a, b = _weights(tmp_path / "straight.pt"), _weights(tmp_path / "resumed.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_chained_resumes_one_three_nine(tmp_path):
    straight = run_trial(trial(9))
    run_trial(trial(1, save=True), checkpoint_path=tmp_path / "1.pt")
    mid = run_trial(trial(3, save=True, resume=str(tmp_path / "1.pt")), checkpoint_path=tmp_path / "3.pt")
    assert mid["metrics"]["resumedFromEpoch"] == 1
    last = run_trial(trial(9, resume=str(tmp_path / "3.pt")))
    assert _curve(last) == _curve(straight)


def test_schedule_epochs_trains_a_prefix_of_the_longer_schedule():
    straight, prefix = run_trial(trial(9)), run_trial(trial(3))
    assert _curve(prefix) == _curve(straight)[:3]
    alone = run_trial(trial(3, schedule=3))
    assert alone["history"][-1]["learningRate"] < prefix["history"][-1]["learningRate"]


def test_missing_checkpoint_restarts(tmp_path):
    result = run_trial(trial(2, resume=str(tmp_path / "nothing.pt")))
    assert result["status"] == "Succeeded"
    assert result["metrics"]["resumedFromEpoch"] == 0 and result["metrics"]["epochsTrained"] == 2
    assert "trained from scratch" in result["message"]
    assert _curve(result) == _curve(run_trial(trial(2)))


def test_another_network_or_an_epoch_past_the_end_is_refused(tmp_path):
    run_trial(trial(2, save=True), checkpoint_path=tmp_path / "c.pt")
    other = run_trial(trial(4, resume=str(tmp_path / "c.pt"), architecture=OTHER))
    assert other["status"] == "Failed" and other["reason"] == "InvalidTrial"
    assert "different architecture" in other["message"]
    lr = trial(4, resume=str(tmp_path / "c.pt"))
    lr["hyperparameters"] = {"learningRate": 0.01}
    assert "training.learningRate" in run_trial(lr)["message"]
    done = run_trial(trial(2, resume=str(tmp_path / "c.pt")))
    assert done["reason"] == "InvalidTrial" and "holds epoch 2" in done["message"]


def test_early_stop_saves_the_epoch_reached(tmp_path):
    stopped = run_trial(trial(5, save=True), checkpoint_path=tmp_path / "s.pt",
                        on_epoch=lambda r: "stop" if r["epoch"] == 2 else None)
    assert stopped["status"] == "EarlyStopped"
    assert torch.load(tmp_path / "s.pt", weights_only=True)["epoch"] == 2
    seen = []
    resumed = run_trial(trial(4, resume=str(tmp_path / "s.pt")), on_epoch=lambda r: seen.append(r["epoch"]))
    assert seen == [3, 4] and [h["epoch"] for h in resumed["history"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("training, checkpoint, field", [
    ({"epochs": 4, "scheduleEpochs": 3}, None, "training.scheduleEpochs"),
    ({"epochs": 2, "warmupEpochs": 3, "scheduleEpochs": 4}, None, None),
    ({"epochs": 2, "warmupEpochs": 3}, None, "training.warmupEpochs"),
    ({}, {"save": "yes"}, "checkpoint.save"),
    ({}, {"resume": "x"}, "checkpoint.resume"),
    ({}, {"resumeFrom": 3}, "checkpoint.resumeFrom"),
])
def test_settings_name_the_field(training, checkpoint, field):
    t = {"architecture": CHAIN, "training": training, **({"checkpoint": checkpoint} if checkpoint else {})}
    if field is None:
        assert resolve_trial(t).training["scheduleEpochs"] == 4
        return
    with pytest.raises(InvalidTrial, match=field):
        resolve_trial(t)
    assert resolve_trial({"architecture": CHAIN, "training": {"epochs": 3}}).training["scheduleEpochs"] == 3


def test_save_needs_a_place():
    result = run_trial(trial(1, save=True))
    assert result["reason"] == "InvalidTrial" and "checkpoint.save" in result["message"]


@pytest.mark.parametrize("save", [True, False])
def test_cli_writes_checkpoint_only_when_asked(tmp_path, save):
    spec = tmp_path / "t.json"
    spec.write_text(json.dumps({**trial(1), **({"checkpoint": {"save": True}} if save else {})}))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "kubenas_trainer", "--trial", str(spec), "--out", str(out),
                           "--export-model"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / art.CHECKPOINT_FILE).exists() == save
    assert (out / "model.pt").exists()


def test_checkpoint_goes_to_the_artifacts_and_resumes_from_there(tmp_path):
    root = tmp_path / "store" / "exp"
    policy = Policy(str(root), "pvc://claim/exp", models=art.MODELS_NONE)
    first = run_trial(trial(2, save=True), checkpoint_path=tmp_path / "out" / art.CHECKPOINT_FILE)
    published = publish_result(policy, "exp-0", trial(2), first, None)
    where = art.join(str(root), "exp-0", art.CHECKPOINT_FILE)
    assert published["checkpoint"] == where and (root / "exp-0" / art.CHECKPOINT_FILE).exists()
    assert not (root / "exp-0" / art.MODEL_FILE).exists()  # models: none keeps no model, still the checkpoint
    url = "file://" + where
    resumed = run_trial(trial(4, resume=url))
    assert resumed["metrics"]["resumedFromEpoch"] == 2
    assert _curve(resumed) == _curve(run_trial(trial(4)))


def test_checkpoint_location_rule():
    s3 = {"url": "s3://bucket/prefix"}
    assert art.checkpoint_location(s3, "exp", "exp-3") == "s3://bucket/prefix/exp/exp-3/checkpoint.pt"
    pvc = {"persistentVolumeClaim": {"claimName": "c", "path": "p"}}
    assert art.checkpoint_location(pvc, "exp", "exp-3") == f"{art.MOUNT_PATH}/exp-3/checkpoint.pt"
