"""The trainer's side of spec.artifacts (kubenas_trainer.reporting.artifacts): what a trial writes,
which models `top` keeps, and the cluster reporter's result carrying the model's place."""
from __future__ import annotations

import itertools
import json
import random

import pytest

from kubenas.contract import artifacts as art
from kubenas_trainer.reporting.artifacts import Policy, Stored, kept, parse_bytes, publish, publish_result

HISTORY = [{"epoch": 1, "accuracy": 0.5}, {"epoch": 2, "accuracy": 0.7}]


def result(reward, status="Succeeded"):
    return {"status": status, "reward": reward, "reason": None, "message": "", "metrics": {"accuracy": reward},
            "history": HISTORY, "device": "cpu"}


def model(tmp_path, name, size):
    path = tmp_path / "src" / f"{name}.pt"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b"m" * size)
    return path


def test_parse_bytes():
    assert parse_bytes("500Mi") == 500 * 2 ** 20
    assert parse_bytes("2G") == 2 * 10 ** 9
    assert parse_bytes("1048576") == 2 ** 20
    assert parse_bytes("1.5Ki") == 1536


def test_policy_from_env():
    assert Policy.from_env({}) is None
    env = {art.ENV_ROOT: "/mnt/a", art.ENV_LOCATION: "pvc://c/exp", art.ENV_MODELS: "top",
           art.ENV_TOP_K: "3", art.ENV_MAX_BYTES: "1Ki"}
    assert Policy.from_env(env) == Policy("/mnt/a", "pvc://c/exp", "top", 3, 1024)


def test_all_writes_result_history_and_model(tmp_path):
    root = tmp_path / "exp"
    policy = Policy(str(root), "pvc://c/exp")
    where = publish(policy, "exp-0", "maximize", result(0.8), model(tmp_path, "a", 10))
    assert where == "pvc://c/exp/exp-0/model.pt"
    assert (root / "exp-0" / art.MODEL_FILE).read_bytes() == b"m" * 10
    saved = json.loads((root / "exp-0" / art.RESULT_FILE).read_text())
    assert saved["reward"] == 0.8 and saved["status"] == "Succeeded" and saved["name"] == "exp-0"
    lines = (root / "exp-0" / art.HISTORY_FILE).read_text().splitlines()
    assert [json.loads(x) for x in lines] == HISTORY


@pytest.mark.parametrize("status, models", [("Failed", "all"), ("EarlyStopped", "all"), ("Succeeded", "none")])
def test_no_model_unless_succeeded_and_wanted(tmp_path, status, models):
    root = tmp_path / "exp"
    where = publish(Policy(str(root), str(root), models), "exp-0", "maximize", result(0.8, status),
                    model(tmp_path, "a", 10))
    assert where is None
    assert not (root / "exp-0" / art.MODEL_FILE).exists()
    assert json.loads((root / "exp-0" / art.RESULT_FILE).read_text())["status"] == status


def test_top_keeps_the_best_within_count_and_bytes(tmp_path):
    root = tmp_path / "exp"
    policy = Policy(str(root), str(root), "top", top_k=2, max_bytes=100)
    rewards = {"exp-0": 0.5, "exp-1": 0.9, "exp-2": 0.7, "exp-3": 0.6, "exp-4": 0.95}
    sizes = {"exp-0": 10, "exp-1": 10, "exp-2": 10, "exp-3": 10, "exp-4": 95}
    written = {}
    for name in rewards:
        written[name] = publish(policy, name, "maximize", result(rewards[name]), model(tmp_path, name, sizes[name]))
    have = sorted(p.parent.name for p in root.glob(f"*/{art.MODEL_FILE}"))
    # exp-4 is best but 95 bytes: with it the next (exp-1, 10 bytes) no longer fits, so the list ends there.
    assert have == ["exp-4"]
    assert written["exp-4"] is not None and written["exp-3"] is None  # exp-3 was never in the top 2
    assert all((root / n / art.RESULT_FILE).exists() for n in rewards)  # results are always kept


def test_top_for_minimize(tmp_path):
    root = tmp_path / "exp"
    policy = Policy(str(root), str(root), "top", top_k=1)
    for name, loss in (("exp-0", 0.5), ("exp-1", 0.2), ("exp-2", 0.3)):
        publish(policy, name, "minimize", result(loss), model(tmp_path, name, 5))
    assert sorted(p.parent.name for p in root.glob(f"*/{art.MODEL_FILE}")) == ["exp-1"]


def test_a_partial_view_never_drops_a_model_the_whole_experiment_keeps():
    """What makes concurrent trials safe: kept() over a subset keeps every member of the
    subset that kept() over the whole set keeps."""
    rng = random.Random(0)
    for _ in range(200):
        every = [Stored(f"t{i}", rng.random(), rng.randint(1, 50)) for i in range(rng.randint(1, 8))]
        k, budget = rng.choice([None, 1, 2, 3]), rng.choice([None, 40, 80, 200])
        if k is None and budget is None:
            continue
        whole = {c.trial for c in kept(every, "maximize", k, budget)}
        for size in range(len(every) + 1):
            for part in itertools.combinations(every, size):
                view = {c.trial for c in kept(list(part), "maximize", k, budget)}
                assert whole & {c.trial for c in part} <= view


def test_the_reporter_result_carries_the_model_or_the_store_error(tmp_path):
    trial = {"objective": {"goal": "maximize"}}
    ok = publish_result(Policy(str(tmp_path / "exp"), "s3://b/exp"), "exp-0", trial, result(0.8),
                           model(tmp_path, "a", 3))
    assert ok["model"] == "s3://b/exp/exp-0/model.pt" and ok["reward"] == 0.8
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    bad = publish_result(Policy(str(blocked), "s3://b/exp"), "exp-0", trial, result(0.8), model(tmp_path, "a", 3))
    assert "model" not in bad and bad["reward"] == 0.8 and bad["status"] == "Succeeded"
    assert "artifacts not written to s3://b/exp" in bad["message"]


def test_top_neither_counts_nor_removes_checkpoints(tmp_path):
    """A checkpoint is not a model: a trial whose model falls off the list keeps it (a later trial may resume)."""
    root = tmp_path / "exp"
    policy = Policy(str(root), str(root), "top", top_k=1, max_bytes=15)
    checkpoint = tmp_path / "src" / "checkpoint.pt"
    checkpoint.parent.mkdir(exist_ok=True)
    checkpoint.write_bytes(b"c" * 100)  # over maxBytes alone: counted, it would block the model
    a = publish_result(policy, "exp-0", {}, {**result(0.5), "checkpoint": str(checkpoint)}, model(tmp_path, "a", 10))
    assert a["model"] == str(root / "exp-0" / art.MODEL_FILE)
    assert a["checkpoint"] == str(root / "exp-0" / art.CHECKPOINT_FILE)
    publish(policy, "exp-1", "maximize", result(0.9), model(tmp_path, "b", 10))
    assert not (root / "exp-0" / art.MODEL_FILE).exists()
    assert (root / "exp-0" / art.CHECKPOINT_FILE).read_bytes() == b"c" * 100
