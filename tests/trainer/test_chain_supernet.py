"""The chain space's one-shot supernet (kubenas_trainer.models.supernet.ChainSupernet): the
weight-sharing invariant over ops, kernels, strides, dilations and filter widths, what it
refuses, and a supernet trial then a score trial over a chain space."""
import random

import pytest
import torch
from torch import nn

from kubenas_trainer.models import build_model
from kubenas_trainer.models.supernet import ChainSupernet, build_supernet, extract, run_oneshot_trial

SPACE = {"type": "chain", "layers": 4, "operations": ["conv", "dw_conv", "max_pool", "avg_pool", "identity"],
         "filters": [4, 8, 12], "kernelSizes": [1, 3, 5], "strides": [1, 2], "dilations": [1]}
TEMPORAL = {"type": "chain", "layers": 3, "operations": ["tconv", "sep_tconv", "identity"], "filters": [3, 6],
            "kernelSizes": [3, 5], "strides": [1, 2], "dilations": [1, 2]}


def head(classes=3):
    return lambda c: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


def warmed(space, in_channels, shape, seed=0):
    torch.manual_seed(seed)
    net = build_supernet(space, in_channels, head())
    rng = random.Random(seed)
    net.train()
    with torch.no_grad():  # non-trivial batch-norm statistics in every block
        for _ in range(30):
            net.select(net.sample(rng))
            net(torch.randn(8, in_channels, *shape))
    return net.eval()


@pytest.mark.parametrize("space, in_channels, shape", [(SPACE, 1, (16, 16)), (SPACE, 3, (12, 12)),
                                                       (TEMPORAL, 5, (1, 24))])
@pytest.mark.parametrize("seed", range(4))
def test_a_candidate_forward_equals_its_standalone_network_with_the_weights_copied_in(space, in_channels, shape,
                                                                                   seed):
    net = warmed(space, in_channels, shape, seed)
    rng = random.Random(100 + seed)
    x = torch.randn(5, in_channels, *shape)
    for _ in range(5):
        arch = net.sample(rng)
        standalone = build_model(arch, (in_channels, *shape), 3)
        standalone.head = head()(standalone.head.fc.in_features)
        extract(net, arch, standalone).eval()
        net.select(arch)
        with torch.no_grad():
            torch.testing.assert_close(net(x), standalone(x), rtol=0, atol=1e-5)
    # and another candidate is another function
    other = next(a for a in (net.sample(rng) for _ in range(50)) if a != arch)
    net.select(other)
    with torch.no_grad():
        assert not torch.allclose(net(x), standalone(x), atol=1e-4)


def test_a_narrow_layer_trains_the_leading_channels_of_the_shared_block_only():
    net = warmed(SPACE, 1, (8, 8))
    arch = {"type": "chain", "layers": [{"op": "conv", "filters": 4, "kernel": 3, "stride": 1}] + [{"op": "identity"}] * 3}
    net.train()
    net.select(arch)
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    grad = net.blocks[0]["conv_k3"][0].weight.grad
    assert grad[:4, :1].abs().sum() > 0
    assert grad[4:].abs().sum() == 0 and grad[:, 1:].abs().sum() == 0  # wider rows and padded inputs: untouched


def test_what_the_chain_supernet_refuses():
    with pytest.raises(ValueError, match="attention"):
        ChainSupernet({**SPACE, "operations": ["conv", "attention"]}, 1, head())
    net = build_supernet(SPACE, 1, head())
    with pytest.raises(ValueError, match=r"layers\[0\]\.kernel"):
        net.select({"layers": [{"op": "conv", "filters": 4, "kernel": 7, "stride": 1}] + [{"op": "identity"}] * 3})
    with pytest.raises(ValueError, match="4 layers"):
        net.select({"layers": [{"op": "identity"}]})
    with pytest.raises(ValueError, match=r"layers\[1\]\.op"):
        net.select({"layers": [{"op": "identity"}, {"op": "tconv"}] + [{"op": "identity"}] * 2})
    with pytest.raises(RuntimeError, match="select"):
        build_supernet(SPACE, 1, head())(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="space.type"):
        build_supernet({"type": "parameters"}, 1, head())


def test_a_chain_supernet_trial_then_a_score_trial(tmp_path):
    base = {"architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1}] * 3},
            "dataset": {"name": "digits"}, "training": {"batchSize": 64, "maxTrainBatches": 3, "device": "cpu"}}
    space = {**SPACE, "layers": 3, "filters": [4, 8]}
    ckpt = tmp_path / "supernet.pt"
    trained = run_oneshot_trial({**base, "oneshot": {"kind": "supernet", "space": space, "epochs": 2}}, ckpt)
    assert trained["status"] == "Succeeded", trained
    assert ckpt.exists() and trained["metrics"]["epochs"] == 2 and trained["metrics"]["pathsScored"] == 8
    net = build_supernet(space, 1, head())
    rng = random.Random(0)
    candidates = [net.sample(rng) for _ in range(4)]
    scored = run_oneshot_trial({**base, "oneshot": {"kind": "score", "space": space, "candidates": candidates,
                                                    "bnRecalibrationBatches": 2}}, ckpt)
    assert scored["status"] == "Succeeded", scored
    assert len(scored["scores"]) == 4 and all(0 <= v <= 1 for v in scored["scores"])
    bad = run_oneshot_trial({**base, "oneshot": {"kind": "supernet", "space": {**space, "operations": ["attention"]},
                                                 "epochs": 1}}, tmp_path / "bad.pt")
    assert bad["status"] == "Failed" and "oneshot.space" in bad["message"] and "attention" in bad["message"]


def test_your_own_supernet_trains_and_scores_through_model_supernet(tmp_path):
    from tests.byo import user_supernet

    space = {"type": "chain", "layers": 2, "operations": ["conv", "identity"], "filters": [8], "kernelSizes": [1, 3],
             "strides": [1], "dilations": [1]}
    model = {"builder": "tests.byo.user_supernet:build", "supernet": "tests.byo.user_supernet:build_supernet"}
    base = {"architecture": {"type": "chain", "layers": [{"op": "identity"}] * 2}, "model": model,
            "dataset": {"name": "digits"}, "training": {"batchSize": 64, "maxTrainBatches": 3, "device": "cpu"}}
    ckpt = tmp_path / "supernet.pt"
    before = len(user_supernet.BUILT)
    trained = run_oneshot_trial({**base, "oneshot": {"kind": "supernet", "space": space, "epochs": 1}}, ckpt)
    assert trained["status"] == "Succeeded", trained
    net = user_supernet.Supernet(space, (1, 8, 8), 10)
    candidates = [net.sample(random.Random(i)) for i in range(3)]
    scored = run_oneshot_trial({**base, "oneshot": {"kind": "score", "space": space, "candidates": candidates,
                                                    "bnRecalibrationBatches": 1}}, ckpt)
    assert scored["status"] == "Succeeded", scored
    assert len(scored["scores"]) == 3 and all(0 <= v <= 1 for v in scored["scores"])
    assert user_supernet.BUILT[before:] == [space, space]  # the user's supernet, not the built-in one

    no_select = run_oneshot_trial({**base, "model": {**model, "supernet": "tests.byo.user_supernet:build_no_select"},
                                   "oneshot": {"kind": "supernet", "space": space, "epochs": 1}}, tmp_path / "x.pt")
    assert no_select["status"] == "Failed" and "trial.model.supernet" in no_select["message"]
    assert "select(architecture)" in no_select["message"]
