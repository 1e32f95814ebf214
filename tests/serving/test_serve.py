"""`kubenas serve runs/...` answers a standard Open Inference Protocol client unchanged
(tritonclient.http, binary and JSON tensors): metadata from the export signature,
predictions over the digits test split equal to the model run in-process (and to the
trial's reported test accuracy), the TorchScript file serving the same, dynamic batching
that batches, and SIGTERM that finishes the request in flight."""
from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest

from .conftest import MODEL

tritonclient = pytest.importorskip("tritonclient.http")
onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def client(server):
    return tritonclient.InferenceServerClient(url=server.url, network_timeout=60)


def infer(c, x: np.ndarray, binary: bool = True, outputs=None, request_id: str = ""):
    tensor = tritonclient.InferInput("images", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = [tritonclient.InferRequestedOutput(name, binary_data=binary) for name in outputs] if outputs else None
    return c.infer(MODEL, [tensor], outputs=wanted, request_id=request_id)


def in_process(run_dir, x: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(run_dir / "best_model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": x})[0]


def histogram(metrics: str, name: str) -> dict[str, float]:
    """A histogram's cumulative bucket counts by upper bound, and its count and sum."""
    found = {m[0]: float(m[1]) for m in re.findall(rf'^{name}_bucket{{le="([^"]+)",[^}}]*}} (\S+)$', metrics, re.M)}
    for part in ("count", "sum"):
        found[part] = float(re.search(rf"^{name}_{part}{{[^}}]*}} (\S+)$", metrics, re.M).group(1))
    return found


def test_a_standard_client_gets_the_export_signature_and_the_models_predictions(run_dir, test_split, serve):
    server = serve(run_dir)
    c = client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    best = json.loads((run_dir / "best.json").read_text())
    meta = c.get_model_metadata(MODEL)
    assert meta["name"] == MODEL and meta["versions"] == [best["name"]] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "images", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert meta["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
                               {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
                               {"name": "predicted_class", "datatype": "INT64", "shape": [-1]}]
    assert json.loads(meta["parameters"]["classes"]) == [str(i) for i in range(10)]
    assert c.get_server_metadata()["extensions"] == ["binary_tensor_data"]

    x, y = test_split
    expected = in_process(run_dir, x)
    logits, predicted = [], []
    for i, batch in enumerate(np.array_split(x, 9)):  # binary tensors (tritonclient's default) and JSON
        result = infer(c, batch, binary=i % 2 == 0, request_id=f"r{i}")
        assert result.get_response()["id"] == f"r{i}" and result.get_response()["model_version"] == best["name"]
        logits.append(result.as_numpy("logits"))
        predicted.append(result.as_numpy("predicted_class"))
        probabilities = result.as_numpy("probabilities")
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    logits, predicted = np.concatenate(logits), np.concatenate(predicted)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    assert (predicted == expected.argmax(axis=1)).all()
    # the served model's accuracy over the test split is the trial's reported test accuracy
    assert abs(float((predicted == y).mean()) - best["metrics"]["testAccuracy"]) <= 0.005

    only = infer(c, x[:3], binary=False, outputs=["predicted_class"])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["predicted_class"]
    assert (only.as_numpy("predicted_class") == expected[:3].argmax(axis=1)).all()


def test_the_torchscript_file_serves_the_same_predictions(run_dir, test_split, serve):
    server = serve(run_dir, "--format", "torchscript", "--model-name", "digits-ts")
    c = client(server)
    assert c.get_model_metadata("digits-ts")["platform"] == "pytorch_libtorch"
    assert c.get_model_metadata("digits-ts")["inputs"] == [{"name": "images", "datatype": "FP32",
                                                            "shape": [-1, 1, 8, 8]}]
    x = test_split[0][:64]
    tensor = tritonclient.InferInput("images", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    got = c.infer("digits-ts", [tensor]).as_numpy("logits")
    np.testing.assert_allclose(got, in_process(run_dir, x), rtol=1e-4, atol=1e-4)


def test_a_trial_and_a_model_folder_serve_too(run_dir, serve):
    trial = json.loads((run_dir / "best.json").read_text())["name"]
    by_trial = serve(run_dir, "--trial", trial)
    assert client(by_trial).get_model_metadata(MODEL)["versions"] == [trial]
    folder = serve("--model-dir", run_dir / "trials" / trial, "--model-name", "mounted")
    assert client(folder).get_model_metadata("mounted")["versions"] == [trial]


def test_concurrent_requests_are_batched_up_to_the_max_batch_size(run_dir, test_split, serve):
    server = serve(run_dir, "--max-batch-size", "8", "--max-batch-wait-ms", "1000")
    x = test_split[0]
    requests, results, start = 16, {}, threading.Barrier(16)
    expected = in_process(run_dir, x[:requests]).argmax(axis=1)

    def one(i: int):
        c = client(server)
        start.wait()
        results[i] = infer(c, x[i:i + 1]).as_numpy("predicted_class")[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [results.get(i) for i in range(requests)] == list(expected)  # each got its own row back
    batches = histogram(server.metrics(), "kubenas_serving_batch_size")
    assert batches["sum"] == requests
    assert batches["count"] < requests, batches  # some model runs held several requests
    assert batches["8.0"] == batches["count"], batches  # none held more than --max-batch-size rows
    assert f'kubenas_serving_requests_total{{code="200",model="{MODEL}"}} {float(requests)}' in server.metrics()


def test_without_batching_every_request_runs_alone(run_dir, test_split, serve):
    server = serve(run_dir, "--max-batch-size", "1")
    x = test_split[0]
    c = client(server)
    for i in range(4):
        infer(c, x[i:i + 1])
    batches = histogram(server.metrics(), "kubenas_serving_batch_size")
    assert batches["count"] == 4 and batches["1.0"] == 4


def test_sigterm_finishes_the_request_in_flight(run_dir, test_split, serve):
    from tests.waiting import wait_until

    server = serve(run_dir, "--max-batch-wait-ms", "3000")  # the request waits in the queue 3 s
    x = test_split[0][:1]
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(result=infer(client(server), x)))
    thread.start()
    wait_until(lambda: re.search(r'^kubenas_serving_queue_depth{[^}]*} 1\.0$', server.metrics(), re.M), 30,
               "the request to wait in the batching queue")
    code, err = server.stop()  # SIGTERM while the request is queued
    thread.join(60)
    assert answer["result"].as_numpy("predicted_class")[0] == in_process(run_dir, x).argmax()
    assert code == 0, err


def test_sigterm_with_a_drain_period_answers_while_not_ready(run_dir, test_split, serve):
    """--drain-seconds (a spec.deploy Deployment passes 5): after SIGTERM the readiness
    probe fails at once, inference is still answered until the period ends (another
    SIGTERM does not cut it short), then the server drains and exits 0."""
    import signal
    import time

    from tests.waiting import wait_until

    server = serve(run_dir, "--drain-seconds", "3")
    x = test_split[0][:1]
    c = client(server)
    assert server.status("/v2/health/ready") == 200
    sent = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.send_signal(signal.SIGTERM)  # again (a pod's init passes its own on): still the drain
    wait_until(lambda: server.status("/v2/health/ready") == 503, 10, "readiness to fail after SIGTERM",
               interval=0.05)
    assert server.status(f"/v2/models/{MODEL}/ready") == 503
    answered = 0
    while time.monotonic() - sent < 2:  # well inside the drain period
        assert infer(c, x).as_numpy("predicted_class")[0] == in_process(run_dir, x).argmax()
        answered += 1
    assert server.process.poll() is None, "the server stopped before its drain period ended"
    server.process.wait(30)  # the exit the first SIGTERM set off (a second one would not wait)
    code, err = server.stop()
    assert code == 0, err
    assert answered > 0 and time.monotonic() - sent >= 3, "it exited before the drain period was over"
