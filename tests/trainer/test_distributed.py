"""Multi-process trials on the CPU (gloo, 2 processes; docs/distributed.md): the per-rank
shards of the in-memory loader, DDP training equal to one process on the same global
batch, identical ranks, rank-0-only outputs, the launcher's exit codes and a peer's
failure reaching the report, and the supernet under torchrun."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from kubenas.contract.distributed import Distributed
from kubenas_trainer.settings import resolve_trial
from kubenas_trainer.tasks import open_task
from kubenas_trainer.training import launch

ROOT = Path(__file__).resolve().parents[2]
# A model without batch norm or dropout: its two-process training is one process' on the
# same global batch, up to the order of float additions (30 full batches an epoch: no trailing one,
# which two processes cut to a multiple of 2).
MLP_TRIAL = {
    "architecture": {"type": "parameters", "parameters": {"layers": [{"width": 32}], "activation": "tanh"}},
    "model": {"builder": "byo_digits.models:build"},
    "dataset": {"name": "digits"},
    "training": {"epochs": 2, "batchSize": 32, "maxTrainBatches": 30, "optimizer": "sgd", "learningRate": 0.05, "numThreads": 1,
                 "device": "cpu", "measureLatency": False},
}
CELL = {"type": "cell", "nodes": 4, "edges": [["conv_3x3"], ["conv_3x3", "skip_connect"], ["none", "none", "conv_1x1"]],
        "channels": 4, "stages": 1, "cellsPerStage": 1}
SPACE = {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3"], "channels": 4,
         "stages": 2, "cellsPerStage": 1}


def _train(tmp_path: Path, name: str, trial: dict, *extra: str) -> tuple[int, dict, Path]:
    out = tmp_path / name
    (tmp_path / f"{name}.json").write_text(json.dumps(trial))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "deploy/examples"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "kubenas_trainer", "--trial", str(tmp_path / f"{name}.json"),
                           "--out", str(out), "--save-weights", *extra], env=env, capture_output=True, text=True,
                          timeout=300)
    result = json.loads((out / "result.json").read_text()) if (out / "result.json").exists() else {}
    assert result, done.stdout[-3000:] + done.stderr[-3000:]
    return done.returncode, result, out


def test_the_shards_of_a_global_batch_are_its_parts_in_order():
    cfg = resolve_trial({**MLP_TRIAL, "dataset": {"name": "digits", "limit": 101}})
    task = open_task(cfg.task, cfg.dataset, 0, torch.device("cpu"))
    training = {**cfg.training, "batchSize": 20}

    def batches(rank=None):
        loader = task.loaders(training, torch.device("cpu"), torch.Generator().manual_seed(3),
                              torch.contiguous_format).train
        if rank is not None:
            loader = loader.shard(rank, 2)
        return len(loader), [x for x, _ in loader]

    n_whole, whole = batches()
    (n0, part0), (n1, part1) = batches(0), batches(1)
    assert n0 == n1 == len(part0) == len(part1)
    assert all(a.shape[0] == b.shape[0] == 10 for a, b in zip(part0, part1))
    for i, (a, b) in enumerate(zip(part0, part1)):  # the global batch, halved; the trailing one cut to a multiple of 2
        assert torch.equal(torch.cat([a, b]), whole[i][: a.shape[0] * 2])
    with pytest.raises(ValueError, match="not a multiple of 3"):
        task.loaders(training, torch.device("cpu"), torch.Generator(), torch.contiguous_format).train.shard(0, 3)


def test_two_processes_train_what_one_process_trains_on_the_same_global_batch(tmp_path):
    code1, one, out1 = _train(tmp_path, "one", MLP_TRIAL)
    code2, two, out2 = _train(tmp_path, "two", MLP_TRIAL, "--nproc-per-node", "2", "--backend", "gloo")
    assert code1 == code2 == 0, (one, two)
    assert two["status"] == "Succeeded" and two["metrics"]["processes"] == 2
    assert "processes" not in one["metrics"]
    w1 = torch.load(out1 / "weights.pt", weights_only=True)["stateDict"]
    w2 = torch.load(out2 / "weights.pt", weights_only=True)["stateDict"]
    assert w1.keys() == w2.keys()
    for key in w1:  # the mean of two half-batch gradients is the global batch's gradient
        assert torch.allclose(w1[key], w2[key], rtol=1e-4, atol=1e-6), key
    for a, b in zip(one["history"], two["history"]):  # rank 0 reports the whole epoch's training loss
        assert a["trainLoss"] == pytest.approx(b["trainLoss"], rel=1e-4)
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-9)
    # Rank 0 alone writes outputs: one history line per epoch, not one per rank.
    assert len((out2 / "history.jsonl").read_text().splitlines()) == 2


def _rank_weights(rank: int, folder: str) -> None:
    """One rank of a 2-process DDP run of a batch-norm network, its weights saved per rank."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=os.environ["KUBENAS_TEST_PORT"], KUBENAS_DISTRIBUTED_BACKEND="gloo")
    torch.set_num_threads(1)
    from kubenas_trainer.training import distributed as ddp

    ranks = ddp.Ranks.from_env()
    device = ddp.start(ranks, torch.device("cpu"))
    cfg = resolve_trial({"architecture": CELL, "dataset": {"name": "digits", "limit": 200},
                         "training": {"batchSize": 16, "device": "cpu"}})
    task = open_task(cfg.task, cfg.dataset, 0, device)
    ddp.seed_epoch(ranks, 0, 1)
    model = task.build_model(cfg.architecture)  # the ranks' initial weights differ: DDP broadcasts rank 0's
    train = ddp.shard(task.loaders(cfg.training, device, torch.Generator().manual_seed(0),
                                   torch.contiguous_format).train, ranks, "digits")
    forward = ddp.wrap(model, ranks, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for batch in train:
        optimizer.zero_grad()
        task.train_step(forward, batch, cfg.training).loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), Path(folder) / f"rank{rank}.pt")
    ddp.stop()


def test_every_rank_ends_with_the_same_weights(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        os.environ["KUBENAS_TEST_PORT"] = str(s.getsockname()[1])
    torch.multiprocessing.spawn(_rank_weights, args=(str(tmp_path),), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    trained = [k for k in r0 if "running" not in k and "num_batches" not in k]
    assert trained and all(torch.equal(r0[k], r1[k]) for k in trained)


def test_the_launcher_keeps_rank_0s_exit_code_and_reports_a_lost_rank(tmp_path, monkeypatch):
    """A stand-in for torchrun's Python: rank 1 records a failure and nobody writes rank 0's
    exit code (rank 0 was torn down): the launcher reports rank 1's result with its code."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\n"
                    "printf '%s' '{\"status\": \"Failed\", \"reward\": null, \"reason\": \"OutOfMemory\", "
                    "\"message\": \"CUDA out of memory\", \"metrics\": {}, \"history\": [], \"device\": \"cuda\"}' "
                    "> \"$KUBENAS_DISTRIBUTED_DIR/rank-1.json\"\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    seen = []
    code = launch.launch(Distributed(2, "gloo"), ["--trial", "t.json", "--out", "o", "--nproc-per-node", "2"],
                         seen.append, python=str(fake))
    assert code == 4 and seen[0]["reason"] == "OutOfMemory"
    assert seen[0]["message"] == "rank 1 of the trial's processes: CUDA out of memory"
    # Rank 0's own exit code wins when it wrote one; with neither, an InternalError naming torchrun's status.
    fake.write_text("#!/bin/sh\nprintf 3 > \"$KUBENAS_DISTRIBUTED_DIR/exit-code\"\nexit 1\n")
    assert launch.launch(Distributed(2, "gloo"), [], seen.append, python=str(fake)) == 3 and len(seen) == 1
    fake.write_text("#!/bin/sh\nexit 7\n")
    assert launch.launch(Distributed(2, "gloo"), [], seen.append, python=str(fake)) == 1
    assert seen[1]["reason"] == "InternalError" and "exit status 7" in seen[1]["message"]


def test_the_worker_command_is_torchrun_without_the_launch_flags():
    argv = launch.worker_command(Distributed(2, "gloo"), ["--from-cluster", "--nproc-per-node", "2", "--backend=gloo"],
                                 python="py")
    assert argv == ["py", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
                    "-m", "kubenas_trainer", "--from-cluster"]


def test_rank_0_reports_a_peers_failure_instead_of_the_lost_connection(tmp_path):
    env = {launch.DIR_ENV: str(tmp_path), "RANK": "1"}
    launch.record_failure({"status": "Failed", "reward": None, "reason": "Diverged", "message": "loss is nan",
                           "metrics": {}, "history": [], "device": "cpu"}, env)
    env["RANK"] = "0"
    lost = {"status": "Failed", "reward": None, "reason": "InternalError", "message": "Connection closed by peer",
            "metrics": {}, "history": [], "device": "cpu"}
    assert launch.settle(lost, env)["reason"] == "Diverged"
    ok = {**lost, "status": "Succeeded", "reason": None}
    assert launch.settle(ok, env) is ok
    assert launch.settle(lost, {}) is lost  # one process: nothing to settle


def test_the_supernet_trains_under_two_processes_and_resumes(tmp_path):
    base = {"architecture": {**CELL, "stages": 2, "edges": [["conv_3x3"], ["conv_3x3"] * 2, ["conv_3x3"] * 3]},
            "dataset": {"name": "digits", "limit": 256},
            "training": {"batchSize": 32, "device": "cpu", "numThreads": 1}}
    trial = {**base, "oneshot": {"kind": "supernet", "space": SPACE, "epochs": 1}}
    code, result, out = _train(tmp_path, "super", trial, "--nproc-per-node", "2")
    assert code == 0 and result["status"] == "Succeeded", result
    assert (out / "checkpoint.pt").exists() and result["metrics"]["resumedFromEpoch"] == 0
    first = torch.load(out / "checkpoint.pt", weights_only=True)
    assert first["epoch"] == 1
    # Another epoch, every rank resuming from what rank 0 read.
    (tmp_path / "super.json").write_text(json.dumps({**trial, "oneshot": {**trial["oneshot"], "epochs": 2}}))
    done = subprocess.run([sys.executable, "-m", "kubenas_trainer", "--trial", str(tmp_path / "super.json"),
                           "--out", str(out), "--nproc-per-node", "2"], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    again = json.loads((out / "result.json").read_text())
    assert done.returncode == 0 and again["metrics"]["resumedFromEpoch"] == 1, (again, done.stdout[-2000:],
                                                                              done.stderr[-3000:])
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_a_failed_peer_records_its_result_and_leaves_the_report_to_rank_0(tmp_path):
    import argparse
    import time

    env = {launch.DIR_ENV: str(tmp_path), "RANK": "1"}
    (tmp_path / launch.EXIT_FILE).write_text("2")  # rank 0 has ended (it met the same failure)
    started = time.monotonic()
    from kubenas_trainer.cli import train_quietly

    assert launch.run_peer(argparse.Namespace(from_cluster=False, trial=tmp_path / "missing.json"), train_quietly,
                           env) == 2
    assert time.monotonic() - started < launch.PEER_GRACE_SECONDS
    recorded = launch.peer_failure(str(tmp_path))
    assert recorded["reason"] == "InvalidTrial" and recorded["message"].startswith("rank 1 of the trial's processes")
