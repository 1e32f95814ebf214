"""spec.artifacts in an S3 object store (moto's S3 server on loopback, s3fs through
fsspec) end to end on one machine: the trainer's publish writes a real exported model,
`kubenas model` reads it back from the experiment status' location, and it loads with
plain torch.jit.load. Also `kubenas model` on a volume folder and on a local run
directory, and its named errors."""
from __future__ import annotations

import json
import socket

import pytest
import torch

from kubenas.artifacts.model import ModelUnavailable, copy_model, fetch, location_from_status
from kubenas.cli import main
from kubenas.contract import artifacts as art
from kubenas_trainer.reporting.artifacts import Policy, publish
from kubenas_trainer.training.export import export_torchscript
from tests.trainer.test_trainer_cli import TRIAL

BUCKET = "kubenas-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """This process' environment as a user's with S3 credentials (what s3fs reads)."""
    import s3fs

    for var, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL", s3_server)):
        monkeypatch.setenv(var, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    if not fs.exists(BUCKET):
        fs.mkdir(BUCKET)
    return fs


@pytest.fixture
def exported(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))
    return export_torchscript(net, tmp_path / "model.pt", (1, 8, 8), [0.5], [0.25])


def experiment_status(artifacts, model):
    return {"metadata": {"name": "exp", "namespace": "ns"}, "spec": {"artifacts": artifacts},
            "status": {"phase": "Succeeded", "bestTrial": {"name": "exp-1", "model": model}}}


def test_publish_to_s3_and_read_back_the_model(s3, exported, tmp_path):
    url = f"s3://{BUCKET}/runs"
    location = art.experiment_location({"url": url}, "exp")
    policy = Policy(root=location, location=location, models="top", top_k=1)
    result = {"status": "Succeeded", "reward": 0.9, "metrics": {"accuracy": 0.9},
              "history": [{"epoch": 1, "accuracy": 0.9}]}
    where = publish(policy, "exp-1", "maximize", result, exported)
    assert where == f"{url}/exp/exp-1/model.pt"
    assert s3.exists(f"{BUCKET}/runs/exp/exp-1/result.json") and s3.exists(f"{BUCKET}/runs/exp/exp-1/history.jsonl")
    worse = publish(policy, "exp-2", "maximize", {**result, "reward": 0.5}, exported)
    assert worse is None and not s3.exists(f"{BUCKET}/runs/exp/exp-2/model.pt")

    assert location_from_status(experiment_status({"url": url}, where)) == where
    out = copy_model(where, tmp_path / "out" / "best.pt")
    model = torch.jit.load(str(out))
    x = torch.rand(3, 1, 8, 8)
    assert torch.allclose(model(x), torch.jit.load(str(exported))(x))


def test_both_exported_formats_go_to_the_store_and_kubenas_model_fetches_each(s3, tmp_path, capsys):
    """trial.export.formats [torchscript, onnx]: the store gets model.pt and model.onnx,
    the status names model.pt, `kubenas model --format onnx` finds the ONNX file beside it
    and onnxruntime gives the TorchScript model's outputs; a dropped model goes in both
    formats."""
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from kubenas.artifacts.model import HOW_TO_LOAD
    from kubenas_trainer.training.export import export_onnx

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10))
    exported = export_torchscript(net, tmp_path / "trial" / "model.pt", (1, 8, 8), [0.5], [0.25])
    export_onnx(net, exported.with_suffix(".onnx"), (1, 8, 8), [0.5], [0.25], opset=17)
    url = f"s3://{BUCKET}/both"
    location = art.experiment_location({"url": url}, "exp")
    policy = Policy(root=location, location=location, models="top", top_k=1)
    result = {"status": "Succeeded", "reward": 0.5, "metrics": {}, "history": []}
    where = publish(policy, "exp-1", "maximize", result, exported)
    assert where == f"{url}/exp/exp-1/model.pt"
    assert s3.exists(f"{BUCKET}/both/exp/exp-1/model.onnx")
    spec = {"artifacts": {"url": url}, "trial": {"export": {"formats": ["torchscript", "onnx"]}}}
    status = {**experiment_status({"url": url}, where), "spec": spec}
    assert location_from_status(status, "onnx") == f"{url}/exp/exp-1/model.onnx"
    with pytest.raises(ModelUnavailable, match=r"exported no onnx model .*add onnx to spec.trial.export.formats"):
        location_from_status(experiment_status({"url": url}, where), "onnx")
    pt = copy_model(where, tmp_path / "best.pt")
    onnx_file = copy_model(location_from_status(status, "onnx"), tmp_path / "best.onnx")
    x = torch.rand(5, 1, 8, 8)
    expected = torch.jit.load(str(pt))(x).detach().numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-5), np.abs(got - expected).max()
    # A better trial: topK 1 drops exp-1's model in both formats and keeps its result.
    assert publish(policy, "exp-2", "maximize", {**result, "reward": 0.9}, exported) == f"{url}/exp/exp-2/model.pt"
    assert not s3.exists(f"{BUCKET}/both/exp/exp-1/model.pt") and not s3.exists(f"{BUCKET}/both/exp/exp-1/model.onnx")
    assert s3.exists(f"{BUCKET}/both/exp/exp-1/result.json") and s3.exists(f"{BUCKET}/both/exp/exp-2/model.onnx")
    # A run directory: --format onnx copies best_model.onnx, and names its absence.
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "best_model.pt").write_bytes(exported.read_bytes())
    assert main(["model", str(run_dir), "--format", "onnx", "-o", str(tmp_path / "r.onnx")]) == 1
    assert "exported no onnx model" in capsys.readouterr().err
    (run_dir / "best_model.onnx").write_bytes(exported.with_suffix(".onnx").read_bytes())
    assert main(["model", str(run_dir), "--format", "onnx", "-o", str(tmp_path / "r.onnx")]) == 0
    assert HOW_TO_LOAD["onnx"] in capsys.readouterr().out
    ort.InferenceSession(str(tmp_path / "r.onnx"), providers=["CPUExecutionProvider"])


def test_an_onnx_only_trial_is_named_by_its_onnx_file(tmp_path):
    from kubenas_trainer.training.export import export_onnx

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    model_file = tmp_path / "t" / "model.pt"  # where the trainer was told; only model.onnx was exported
    model_file.parent.mkdir()
    export_onnx(net, model_file.with_suffix(".onnx"), (1, 8, 8), [0.5], [0.25], opset=17)
    root = tmp_path / "store"
    policy = Policy(root=str(root), location="pvc://c/exp")
    where = publish(policy, "exp-1", "maximize", {"status": "Succeeded", "reward": 0.5, "history": []}, model_file)
    assert where == "pvc://c/exp/exp-1/model.onnx" and (root / "exp-1" / "model.onnx").is_file()
    status = {"metadata": {"name": "exp", "namespace": "n"},
              "spec": {"artifacts": {"persistentVolumeClaim": {"claimName": "c"}},
                       "trial": {"export": {"formats": ["onnx"]}}},
              "status": {"bestTrial": {"name": "exp-1", "model": where}}}
    assert location_from_status(status, "onnx") == where
    with pytest.raises(ModelUnavailable, match="pass --format onnx"):
        location_from_status(status, "torchscript")


def test_a_missing_object_is_named(s3, tmp_path):
    with pytest.raises(ModelUnavailable, match="is not there"):
        copy_model(f"s3://{BUCKET}/nothing/model.pt", tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists() and not (tmp_path / "x.pt.part").exists()


def test_a_volume_model_is_read_from_the_mounted_folder(exported, tmp_path):
    mounted = tmp_path / "claim"
    (mounted / "nas" / "exp" / "exp-1").mkdir(parents=True)
    (mounted / "nas" / "exp" / "exp-1" / "model.pt").write_bytes(exported.read_bytes())
    location = "pvc://results/nas/exp/exp-1/model.pt"
    with pytest.raises(ModelUnavailable, match="--volume-dir"):
        copy_model(location, tmp_path / "m.pt")
    with pytest.raises(ModelUnavailable, match="claim results is mounted"):
        copy_model(location, tmp_path / "m.pt", volume_dir=str(tmp_path))
    torch.jit.load(str(copy_model(location, tmp_path / "m.pt", volume_dir=str(mounted))))


@pytest.mark.parametrize("status, words", [
    ({"spec": {}, "status": {}}, "spec.artifacts is not set"),
    ({"spec": {"artifacts": {"url": "s3://b"}}, "status": {"phase": "Running"}}, "no succeeded trial yet"),
    ({"spec": {"artifacts": {"url": "s3://b", "models": "none"}}, "status": {"bestTrial": {"name": "e-1"}}},
     "models is none"),
])
def test_why_there_is_no_model_is_named(status, words):
    with pytest.raises(ModelUnavailable, match=words):
        location_from_status({"metadata": {"name": "e", "namespace": "n"}, **status})


def test_kubenas_model_on_a_run_directory(exported, tmp_path, capsys):
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    with pytest.raises(ModelUnavailable, match="no best_model.pt yet"):
        fetch(str(run_dir), tmp_path / "x.pt")
    (run_dir / "best_model.pt").write_bytes(exported.read_bytes())
    assert main(["model", str(run_dir), "-o", str(tmp_path / "best.pt")]) == 0
    torch.jit.load(str(tmp_path / "best.pt"))
    assert "best model from" in capsys.readouterr().out
    assert main(["model", str(tmp_path / "nowhere/x")]) == 1
    assert "not a run directory" in capsys.readouterr().err


def test_a_local_run_copies_its_outputs_to_the_store(s3, tmp_path, monkeypatch):
    """`kubenas run` with spec.artifacts.url: each trial process gets the same variables a
    trial pod gets (kubenas.local.runner.artifacts_env) and writes there too."""
    from kubenas.local.runner import artifacts_env
    from kubenas_trainer.cli import main as train

    spec = {"artifacts": {"url": f"s3://{BUCKET}/local", "models": "all"}}
    for var, value in artifacts_env(spec, "digits-test").items():
        monkeypatch.setenv(var, value)
    assert artifacts_env({"artifacts": {"persistentVolumeClaim": {"claimName": "c"}}}, "x") == {}
    trial = tmp_path / "trial.json"
    trial.write_text(json.dumps({**TRIAL, "name": "digits-test-0"}))
    assert train(["--trial", str(trial), "--out", str(tmp_path / "out"), "--export-model"]) == 0
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["model"] == f"s3://{BUCKET}/local/digits-test/digits-test-0/model.pt"
    copy = copy_model(result["model"], tmp_path / "copy.pt")
    assert copy.read_bytes() == (tmp_path / "out" / "model.pt").read_bytes()
    assert json.loads(s3.cat_file(f"{BUCKET}/local/digits-test/digits-test-0/result.json"))["status"] == "Succeeded"


def test_checkpoint_to_s3_and_a_later_trial_resumes_from_its_url(s3, tmp_path):
    """trial.checkpoint with spec.artifacts.url: the checkpoint goes to the store whatever
    the model policy, at checkpoint_location, and resuming from that URL continues exactly."""
    from kubenas_trainer.reporting.artifacts import publish_result
    from kubenas_trainer.training.loop import run_trial

    def trial(epochs, **checkpoint):
        return {"name": "exp-0", "architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 4,
                                                                                "kernel": 3, "stride": 1}]},
                "dataset": {"name": "digits", "limit": 64}, "checkpoint": checkpoint,
                "training": {"epochs": epochs, "scheduleEpochs": 4, "batchSize": 16, "measureLatency": False}}

    artifacts = {"url": f"s3://{BUCKET}/ckpt", "models": "none"}
    location = art.experiment_location(artifacts, "exp")
    policy = Policy(root=art.trainer_root(artifacts, "exp"), location=location, models="none")
    first = run_trial(trial(2, save=True), checkpoint_path=tmp_path / art.CHECKPOINT_FILE)
    published = publish_result(policy, "exp-0", trial(2), first, None)
    where = art.checkpoint_location(artifacts, "exp", "exp-0")
    assert published["checkpoint"] == where == f"s3://{BUCKET}/ckpt/exp/exp-0/checkpoint.pt"
    assert s3.exists(where) and not s3.exists(f"{BUCKET}/ckpt/exp/exp-0/{art.MODEL_FILE}")
    resumed = run_trial(trial(4, resumeFrom=where))
    assert resumed["metrics"]["resumedFromEpoch"] == 2, resumed["message"]
    straight = run_trial(trial(4))
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in straight["history"]]
