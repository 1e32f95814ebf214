"""A variable-length model over HTTP: float sequences ``N x T x F`` of any T, exported as
the trainer exports a sequence classifier (its front end built in, the length axis free),
served from a model folder; concurrent requests of two lengths each get the model's
in-process answer (the batcher only batches equal lengths)."""
from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

from kubenas_trainer.training.export import export_onnx
from kubenas_trainer.models import build_model
from kubenas_trainer.tasks import FloatSequenceFront

tritonclient = pytest.importorskip("tritonclient.http")
onnxruntime = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FEATURES, LENGTH, CLASSES = 6, 10, 3


@pytest.fixture(scope="module")
def sequence_model(tmp_path_factory):
    torch.manual_seed(0)
    net = build_model({"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1}]},
                      (FEATURES, 1, LENGTH), CLASSES)
    folder = tmp_path_factory.mktemp("sequence")
    meta = {"task": "sequence-classification", "trial": "seq-1", "numClasses": CLASSES, "features": FEATURES,
            "classes": ["a", "b", "c"]}
    export_onnx(net, folder / "model.onnx", (FEATURES, 1, LENGTH), [0.0] * FEATURES, [1.0] * FEATURES, opset=17,
                metadata=meta, front=FloatSequenceFront(), input_doc="float32 N x T x F sequences",
                example=torch.randn(2, LENGTH, FEATURES), variable_length=True)
    return folder


def test_sequences_of_any_length_are_served_and_batched_by_length(sequence_model, serve):
    server = serve("--model-dir", sequence_model, "--model-name", "seq", "--max-batch-wait-ms", "500")
    meta = tritonclient.InferenceServerClient(server.url).get_model_metadata("seq")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, -1, FEATURES]}]
    session = onnxruntime.InferenceSession(str(sequence_model / "model.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal((1, 7 if i % 2 else 13, FEATURES), dtype=np.float32) for i in range(6)]
    answers, start = {}, threading.Barrier(len(clips))

    def one(i):
        c = tritonclient.InferenceServerClient(server.url)
        tensor = tritonclient.InferInput("input", list(clips[i].shape), "FP32")
        tensor.set_data_from_numpy(clips[i])
        start.wait()
        answers[i] = c.infer("seq", [tensor]).as_numpy("logits")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i, clip in enumerate(clips):
        np.testing.assert_allclose(answers[i], session.run(["logits"], {"input": clip})[0], rtol=1e-4, atol=1e-5)
    metrics = server.metrics()
    count = float(re.search(r'^kubenas_serving_batch_size_count{model="seq"} (\S+)$', metrics, re.M).group(1))
    assert 'kubenas_serving_batch_size_sum{model="seq"} 6.0' in metrics
    assert 2 <= count < 6  # equal lengths shared model runs; the two lengths never did
