"""The one-shot supernet (kubenas_trainer.models.supernet): the weight-sharing invariant, its
training by uniform path sampling (and resume), batch-norm recalibration, and the
inherited-weight scoring of a batch of candidates."""
import random

import pytest
import torch
from torch import nn

from kubenas_trainer.models import build_model
from kubenas_trainer.settings import resolve_trial
from kubenas_trainer.models.supernet import (CellSupernet, calibration_batches, extract, recalibrate_bn,
                                      score_candidates, train_supernet)
from kubenas_trainer.tasks import open_task

SPACE = {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3"], "channels": 4,
         "stages": 2, "cellsPerStage": 1}


def genotype(edges):
    return {"type": "cell", "nodes": 4, "edges": [list(r) for r in edges], "channels": 4, "stages": 2,
            "cellsPerStage": 1}


def digits_task(**training):
    arch = genotype([["conv_3x3"], ["conv_3x3"] * 2, ["conv_3x3"] * 3])
    cfg = resolve_trial({"architecture": arch, "dataset": {"name": "digits"},
                         "training": {"batchSize": 64, "optimizer": "adam", "learningRate": 0.01,
                                      "device": "cpu", **training}})
    return open_task(cfg.task, cfg.dataset, 0, torch.device("cpu")), cfg.training


def warmed_supernet(seed=0):
    torch.manual_seed(seed)
    net = CellSupernet(SPACE, 1, lambda c: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 3)))
    rng = random.Random(seed)
    net.train()
    with torch.no_grad():  # non-trivial BN running statistics on every op
        for _ in range(20):
            net.path = net.sample_path(rng)
            net(torch.randn(8, 1, 8, 8))
    return net.eval()


@pytest.mark.parametrize("seed", range(6))
def test_a_path_forward_equals_the_standalone_network_with_its_weights_copied_in(seed):
    net = warmed_supernet(seed)
    rng = random.Random(100 + seed)
    edges = net.sample_path(rng) if seed else (("none",), ("conv_3x3", "none"), ("skip_connect", "none", "conv_1x1"))
    arch = genotype(edges)
    standalone = build_model(arch, (1, 8, 8), 3)
    standalone.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    extract(net, arch, standalone).eval()
    net.path = edges
    x = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(net(x), standalone(x), rtol=0, atol=1e-6)
        other = next(p for p in (net.sample_path(rng) for _ in range(50)) if p != edges)
        net.path = other  # and a different path is a different function
        assert not torch.allclose(net(x), standalone(x), atol=1e-4)


def test_a_path_naming_an_op_outside_the_space_is_refused():
    net = warmed_supernet()
    with pytest.raises(ValueError, match="sep_conv_3x3"):
        net.path = (("sep_conv_3x3",), ("none", "none"), ("none", "none", "none"))
    with pytest.raises(ValueError, match="rows"):
        net.path = (("none",),)


def test_supernet_trains_by_uniform_sampling_and_resumes_from_its_checkpoint(tmp_path):
    task, training = digits_task()
    torch.manual_seed(0)
    net = task.build_supernet(SPACE)
    calib = calibration_batches(task, training, 2, seed=0)
    arch = genotype([["conv_3x3"], ["conv_3x3", "skip_connect"], ["none", "conv_3x3", "conv_1x1"]])
    before = score_candidates(task, net, [arch], calibration=calib, training=training)[0]
    ckpt = tmp_path / "supernet.pt"

    class Killed(Exception):
        pass

    def kill_after_third(epoch, _):
        if epoch == 3:
            raise Killed  # the pod dies after the checkpoint of epoch 3

    with pytest.raises(Killed):
        train_supernet(task, net, training, epochs=5, seed=0, checkpoint_path=ckpt, on_epoch=kill_after_third)
    assert ckpt.exists()
    after = score_candidates(task, net, [arch], calibration=calib, training=training)[0]
    # a candidate it never trained as such (paths are sampled) is better with the inherited weights
    assert after["loss"] < before["loss"] - 0.02, (before, after)

    # The restarted trial (a fresh process: a new module) resumes after epoch 3 and lands on
    # the same weights as one that trained its 5 epochs straight.
    torch.manual_seed(1)
    resumed = task.build_supernet(SPACE)
    info = train_supernet(task, resumed, training, epochs=5, seed=0, checkpoint_path=ckpt)
    assert info["resumedFromEpoch"] == 3
    torch.manual_seed(0)
    straight = task.build_supernet(SPACE)
    score_candidates(task, straight, [arch], calibration=calib, training=training)  # as the first run did
    train_supernet(task, straight, training, epochs=5, seed=0, checkpoint_path=tmp_path / "other.pt")
    for (k, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_bn_recalibration_replaces_the_running_statistics_with_the_paths_own():
    net = warmed_supernet()
    net.path = (("conv_3x3",), ("conv_1x1", "none"), ("skip_connect", "conv_3x3", "none"))
    bn = net.last_act[0]
    old = bn.running_mean.clone(), bn.running_var.clone()
    batches = [torch.randn(16, 1, 8, 8) * 3 + 1 for _ in range(3)]
    recalibrate_bn(net, batches, lambda model, x: model(x))
    assert not net.training
    assert not torch.allclose(bn.running_mean, old[0]) and not torch.allclose(bn.running_var, old[1])
    # the cumulative average of exactly these batches: recalibrating again gives the same statistics
    again = bn.running_mean.clone()
    recalibrate_bn(net, batches, lambda model, x: model(x))
    torch.testing.assert_close(bn.running_mean, again)
    assert bn.momentum == 0.1  # the training momentum is restored


def test_scoring_a_batch_of_candidates_gives_one_score_per_candidate_in_order():
    task, training = digits_task(maxTrainBatches=4)
    torch.manual_seed(0)
    net = task.build_supernet(SPACE)
    train_supernet(task, net, training, epochs=2, seed=0)
    calib = calibration_batches(task, training, 2, seed=0)
    rng = random.Random(3)
    archs = [genotype(net.sample_path(rng)) for _ in range(4)]
    archs.append(genotype([["none"], ["none", "none"], ["none", "none", "none"]]))  # the output is zero
    scores = score_candidates(task, net, archs, calibration=calib, training=training)
    assert len(scores) == 5 and all(set(s) == {"accuracy", "loss"} for s in scores)
    assert scores[-1]["accuracy"] < 0.2  # a constant network guesses
    # scores depend on the candidate alone, not on who was scored before it
    alone = score_candidates(task, net, [archs[2]], calibration=calib, training=training)[0]
    assert alone == scores[2]


def test_a_supernet_trial_then_a_score_trial_return_a_score_per_candidate(tmp_path):
    from kubenas_trainer.models.supernet import run_oneshot_trial

    base = {"architecture": genotype([["conv_3x3"], ["conv_3x3"] * 2, ["conv_3x3"] * 3]),
            "dataset": {"name": "digits"}, "training": {"batchSize": 64, "maxTrainBatches": 3, "device": "cpu"}}
    ckpt = tmp_path / "supernet.pt"
    trained = run_oneshot_trial({**base, "oneshot": {"kind": "supernet", "space": SPACE, "epochs": 2}}, ckpt)
    assert trained["status"] == "Succeeded" and ckpt.exists() and trained["metrics"]["epochs"] == 2
    rng = random.Random(0)
    net = CellSupernet(SPACE, 1, lambda c: nn.Identity())
    candidates = [genotype(net.sample_path(rng)) for _ in range(3)]
    scored = run_oneshot_trial({**base, "oneshot": {"kind": "score", "space": SPACE, "candidates": candidates,
                                                    "bnRecalibrationBatches": 2}}, ckpt)
    # one objective value (accuracy) per candidate, in order; the reward is the batch's best
    assert len(scored["scores"]) == 3 and all(0 <= v <= 1 for v in scored["scores"])
    assert scored["reward"] == max(scored["scores"]) and scored["metrics"]["candidates"] == 3
    assert 0 <= trained["reward"] <= 1 and trained["metrics"]["pathsScored"] == 8  # mean over sampled paths
    bad = run_oneshot_trial({**base, "oneshot": {"kind": "search"}}, ckpt)
    assert bad["status"] == "Failed" and "oneshot.kind" in bad["message"]


def test_the_trainer_cli_runs_a_supernet_trial_and_a_score_trial_reading_its_checkpoint(tmp_path):
    import json

    from kubenas_trainer.cli import main

    base = {"architecture": genotype([["conv_3x3"], ["conv_3x3"] * 2, ["conv_3x3"] * 3]),
            "dataset": {"name": "digits"}, "training": {"batchSize": 64, "maxTrainBatches": 2, "device": "cpu"}}
    (tmp_path / "supernet.json").write_text(json.dumps(
        {**base, "oneshot": {"kind": "supernet", "space": SPACE, "epochs": 1}}))
    assert main(["--trial", str(tmp_path / "supernet.json"), "--out", str(tmp_path / "s")]) == 0
    candidates = [genotype([["conv_1x1"], ["skip_connect", "conv_3x3"], ["none", "none", "conv_3x3"]]),
                  genotype([["none"], ["none", "none"], ["none", "none", "none"]])]
    (tmp_path / "score.json").write_text(json.dumps(
        {**base, "oneshot": {"kind": "score", "space": SPACE, "candidates": candidates,
                             "supernetCheckpoint": str(tmp_path / "s" / "checkpoint.pt")}}))
    assert main(["--trial", str(tmp_path / "score.json"), "--out", str(tmp_path / "b")]) == 0
    result = json.loads(next((tmp_path / "b").glob("result*.json")).read_text())
    assert result["status"] == "Succeeded" and len(result["scores"]) == 2
    (tmp_path / "orphan.json").write_text(json.dumps(
        {**base, "oneshot": {"kind": "score", "space": SPACE, "candidates": candidates}}))
    assert main(["--trial", str(tmp_path / "orphan.json"), "--out", str(tmp_path / "o")]) != 0


def test_a_replaced_supernet_pod_resumes_from_the_kept_checkpoint(tmp_path):
    """The cluster trainer keeps the supernet's checkpoint in spec.artifacts after every
    epoch (``store``); a new pod with an empty local folder resumes from it after the pod
    running it died mid-training, and ends with the weights of an uninterrupted run."""
    from kubenas_trainer.models.supernet import run_oneshot_trial

    class PodKilled(Exception):
        pass

    def kill_after_first_epoch(record):
        assert set(record) == {"epoch", "trainLoss"}
        raise PodKilled

    trial = {"architecture": genotype([["conv_3x3"], ["conv_3x3"] * 2, ["conv_3x3"] * 3]),
             "dataset": {"name": "digits"}, "training": {"batchSize": 64, "maxTrainBatches": 2, "device": "cpu"},
             "oneshot": {"kind": "supernet", "space": SPACE, "epochs": 2}}
    store = str(tmp_path / "artifacts" / "exp-0" / "checkpoint.pt")
    for pod in ("pod1", "pod2", "pod3"):
        (tmp_path / pod).mkdir()
    with pytest.raises(PodKilled):
        run_oneshot_trial(trial, tmp_path / "pod1" / "checkpoint.pt", store=store, on_epoch=kill_after_first_epoch)
    assert torch.load(store, weights_only=True)["epoch"] == 1
    resumed = run_oneshot_trial(trial, tmp_path / "pod2" / "checkpoint.pt", store=store)
    assert resumed["status"] == "Succeeded" and resumed["metrics"]["resumedFromEpoch"] == 1
    straight = run_oneshot_trial(trial, tmp_path / "pod3" / "checkpoint.pt", store=str(tmp_path / "other.pt"))
    assert straight["metrics"]["resumedFromEpoch"] == 0
    a = torch.load(store, weights_only=True)["model"]
    b = torch.load(tmp_path / "other.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    assert resumed["reward"] == straight["reward"]
