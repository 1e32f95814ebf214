"""The served signature of each task's exported model (from its kubenas.json metadata), the
request checks against it, and the batcher's rule: only same-shaped requests share a batch."""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from kubenas.serving.batching import Batcher
from kubenas.serving.protocol import InferenceError, decode
from kubenas.serving.signature import signature_of

META = {
    "image": {"task": "image-classification", "inputShape": [3, 32, 32], "numClasses": 10,
              "classes": ["airplane", "automobile"] + [str(i) for i in range(8)]},
    "audio": {"task": "audio-classification", "inputShape": [1, 40, 101], "numClasses": 12, "sampleRate": 16000},
    "tokens": {"task": "sequence-classification", "inputShape": [1, 1, 64], "numClasses": 2, "vocabulary": 1000,
               "padId": 0},
    "floats": {"task": "sequence-classification", "inputShape": [6, 1, 50], "numClasses": 3, "features": 6},
}


@pytest.mark.parametrize("kind, name, datatype, shape", [
    ("image", "images", "FP32", [-1, 3, 32, 32]),
    ("audio", "input", "FP32", [-1, -1]),        # a waveform of any length
    ("tokens", "input", "INT64", [-1, -1]),      # token ids, any length
    ("floats", "input", "FP32", [-1, -1, 6]),    # N x T x F
])
def test_each_task_is_served_with_its_export_signature(kind, name, datatype, shape):
    sig = signature_of(META[kind])
    assert sig.input.as_v2() == {"name": name, "datatype": datatype, "shape": shape}
    k = META[kind]["numClasses"]
    assert [o.as_v2() for o in sig.outputs] == [
        {"name": "logits", "datatype": "FP32", "shape": [-1, k]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
        {"name": "predicted_class", "datatype": "INT64", "shape": [-1]}]
    out = sig.outputs_of([np.array([[0.0] * (k - 1) + [3.0]], dtype=np.float32)])
    assert out["predicted_class"].tolist() == [k - 1]
    np.testing.assert_allclose(out["probabilities"].sum(), 1, rtol=1e-6)


def test_the_class_names_are_in_the_parameters():
    assert json.loads(signature_of(META["image"]).parameters["classes"])[:2] == ["airplane", "automobile"]


def test_a_task_without_a_serving_signature_is_named():
    with pytest.raises(ValueError, match="task 'object-detection' has no serving signature"):
        signature_of({"task": "object-detection"})


def test_a_task_with_its_signature_in_the_metadata_is_served_as_exported():
    """A task the server has no entry for (a detector) is served with the inputs and
    outputs its export declares (metadata ``signature``), each output as the module gives it."""
    meta = {"task": "object-detection", "signature": {
        "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 3, 64, 64]}],
        "outputs": [{"name": "boxes", "datatype": "FP32", "shape": [-1, 20, 4]},
                    {"name": "scores", "datatype": "FP32", "shape": [-1, 20]},
                    {"name": "labels", "datatype": "INT64", "shape": [-1, 20]}]}}
    sig = signature_of(meta)
    assert sig.input.as_v2() == meta["signature"]["inputs"][0]
    assert [o.as_v2() for o in sig.outputs] == meta["signature"]["outputs"]
    raw = [np.zeros((2, 20, 4), np.float32), np.ones((2, 20), np.float32), np.zeros((2, 20), np.int64)]
    assert {k: v.shape for k, v in sig.outputs_of(raw).items()} == {"boxes": (2, 20, 4), "scores": (2, 20),
                                                                    "labels": (2, 20)}


def test_the_exports_declared_input_is_the_served_one():
    meta = {**META["tokens"], "signature": {"inputs": [{"name": "tokens", "datatype": "INT64", "shape": [-1, -1]}],
                                            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 2]}]}}
    assert signature_of(meta).input.as_v2() == {"name": "tokens", "datatype": "INT64", "shape": [-1, -1]}


def request(shape, datatype, data) -> bytes:
    return json.dumps({"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}).encode()


def test_token_ids_must_be_integers_of_any_length():
    sig = signature_of(META["tokens"])
    assert decode(request([1, 5], "INT64", [1, 2, 3, 4, 5]), None, sig, 100).array.dtype == np.int64
    assert decode(request([2, 3], "INT64", [[1, 2, 3], [4, 5, 6]]), None, sig, 100).array.shape == (2, 3)
    with pytest.raises(InferenceError, match='"data" holds non-integer numbers, expected INT64'):
        decode(request([1, 2], "INT64", [1.5, 2]), None, sig, 100)


def test_audio_clips_of_any_length_and_the_element_bound():
    sig = signature_of(META["audio"])
    assert decode(request([1, 7], "FP32", [0.1] * 7), None, sig, 100).array.shape == (1, 7)
    with pytest.raises(InferenceError) as err:
        decode(request([1, 101], "FP32", [0.1] * 101), None, sig, 100)
    assert err.value.status == 413


async def test_only_requests_of_the_same_shape_share_a_batch():
    """Clips of two lengths arrive together: each batch holds one length, up to the max."""
    seen = []

    def run(batch):
        seen.append(batch.shape)
        return {"rows": batch[:, :1] * 1}

    batcher = Batcher(run, max_batch_size=3, max_wait=0.2)
    batcher.start()
    try:
        clips = [np.full((1, 4 if i % 2 else 6), i, dtype=np.float32) for i in range(8)]
        results = await asyncio.wait_for(asyncio.gather(*(batcher.submit(c) for c in clips)), 30)
    finally:
        await batcher.stop()
    assert [r["rows"][0, 0] for r in results] == list(range(8))  # each request got its own row
    assert sorted(seen) == [(1, 4), (1, 6), (3, 4), (3, 6)]  # 4 clips of each length: 3 + 1
