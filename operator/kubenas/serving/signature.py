"""What a served model takes and gives, per task: its V2 tensor names, datatypes and
shapes (-1 for a free dimension), and how the network's raw output becomes the
response's tensors. The one place a task's serving signature is written down; the
cluster's serving object (KServe InferenceService or ``kubenas serve`` in a Deployment)
and a new task (detection: boxes, labels, scores; speech recognition: token ids and the
vocabulary) extend ``TASK_OUTPUTS`` and ``input_of`` here.

The exported model's metadata (``kubenas.json``, written by kubenas_trainer.training.export)
names the task and, in ``signature``, the exported module's own inputs and outputs (V2
names, datatypes, -1 for free dimensions); models exported before the trainer wrote it
are read from ``inputShape``, ``vocabulary`` and ``features``: an image model takes
``images`` FP32 ``N x C x H x W`` in [0, 1]; an audio model ``input`` FP32 ``N x L`` (a
waveform, any L); a sequence model ``input`` INT64 ``N x T`` token ids or FP32
``N x T x F`` floats (any T). A classifier ends in ``logits`` ``N x K``, which the
server completes with probabilities and the predicted class; a task without an entry in
``TASK_OUTPUTS`` is served with the outputs its ``signature`` names, as they are.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# V2 datatypes <-> numpy (the protocol's tensor data types; BYTES is not served).
DATATYPES = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
             "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64, "FP16": np.float16,
             "FP32": np.float32, "FP64": np.float64}
DATATYPE_OF = {np.dtype(v): k for k, v in DATATYPES.items()}
ONNX_TYPES = {f"tensor({t})": d for t, d in (("float", "FP32"), ("double", "FP64"), ("float16", "FP16"),
                                             ("int64", "INT64"), ("int32", "INT32"), ("int8", "INT8"),
                                             ("uint8", "UINT8"), ("bool", "BOOL"))}

IMAGE_TASK = "image-classification"
CLASSIFICATION_TASKS = (IMAGE_TASK, "audio-classification", "sequence-classification")
IMAGE_INPUT, TASK_INPUT, RAW_OUTPUT = "images", "input", "logits"  # kubenas_trainer.training.export's names
FREE = -1


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: any size

    def as_v2(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(DATATYPES[self.datatype])


@dataclass(frozen=True)
class Signature:
    """A served model: its one input, the outputs a response can hold, and ``outputs_of``
    (the exported module's outputs for a batch, in its order -> every output tensor by name)."""
    task: str
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    outputs_of: Callable[[list[np.ndarray]], dict[str, np.ndarray]]
    parameters: dict = field(default_factory=dict)  # the model metadata's parameters (strings, numbers)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)


def input_of(meta: dict) -> TensorSpec:
    """The input tensor the exported model's metadata describes."""
    task = meta.get("task") or IMAGE_TASK  # models exported before tasks were named are image models
    if task == IMAGE_TASK:
        return TensorSpec(IMAGE_INPUT, "FP32", (FREE, *(int(d) for d in meta["inputShape"])))
    if task == "audio-classification":
        return TensorSpec(TASK_INPUT, "FP32", (FREE, FREE))
    if task == "sequence-classification":
        if meta.get("vocabulary") is not None:
            return TensorSpec(TASK_INPUT, "INT64", (FREE, FREE))
        return TensorSpec(TASK_INPUT, "FP32", (FREE, FREE, int(meta["features"])))
    raise ValueError(f"task {task!r} has no serving signature yet (kubenas.serving.signature.TASK_OUTPUTS "
                     f"serves {', '.join(sorted(TASK_OUTPUTS))})")


def _classification(meta: dict) -> tuple[tuple[TensorSpec, ...], Callable[[np.ndarray], dict]]:
    """``logits`` (the network's, N x K), ``probabilities`` (their softmax) and
    ``predicted_class`` (the argmax, an index into the metadata's ``classes``)."""
    k = int(meta.get("numClasses") or len(meta.get("classes") or ()) or FREE)
    outputs = (TensorSpec("logits", "FP32", (FREE, k)), TensorSpec("probabilities", "FP32", (FREE, k)),
               TensorSpec("predicted_class", "INT64", (FREE,)))

    def outputs_of(raw: list[np.ndarray]) -> dict[str, np.ndarray]:
        logits = np.asarray(raw[0], dtype=np.float32)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {"logits": logits, "probabilities": shifted / shifted.sum(axis=1, keepdims=True),
                "predicted_class": logits.argmax(axis=1).astype(np.int64)}
    return outputs, outputs_of


# task -> (its output tensors, raw output -> tensors). Detection would add
# boxes (FP32 N x D x 4), labels (INT64 N x D), scores (FP32 N x D); speech recognition
# token ids (INT64 N x T) with the vocabulary in the metadata's parameters.
TASK_OUTPUTS: dict[str, Callable[[dict], tuple]] = {task: _classification for task in CLASSIFICATION_TASKS}


def _declared(meta: dict, part: str) -> tuple[TensorSpec, ...]:
    """The tensors the metadata's ``signature`` declares (``part``: inputs or outputs)."""
    tensors = (meta.get("signature") or {}).get(part) or ()
    return tuple(TensorSpec(str(t["name"]), str(t["datatype"]), tuple(int(d) for d in t["shape"])) for t in tensors)


def _as_exported(outputs: tuple[TensorSpec, ...]) -> Callable[[list[np.ndarray]], dict[str, np.ndarray]]:
    def outputs_of(raw: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {spec.name: np.asarray(value) for spec, value in zip(outputs, raw)}
    return outputs_of


def signature_of(meta: dict, graph_input: TensorSpec | None = None) -> Signature:
    """The served signature of a model with metadata ``meta``. ``graph_input``: the input
    the model file itself declares (an ONNX graph's), which wins over the metadata's
    where a foreign export named or shaped it otherwise."""
    task = meta.get("task") or IMAGE_TASK
    declared_inputs, declared_outputs = _declared(meta, "inputs"), _declared(meta, "outputs")
    if len(declared_inputs) > 1:
        raise ValueError(f"the model takes {len(declared_inputs)} inputs; kubenas serve serves models of one input")
    if task in TASK_OUTPUTS:
        outputs, outputs_of = TASK_OUTPUTS[task](meta)
    elif declared_outputs:
        outputs, outputs_of = declared_outputs, _as_exported(declared_outputs)
    else:
        raise ValueError(f"task {task!r} has no serving signature (its model's metadata declares no outputs, and "
                         f"kubenas.serving.signature.TASK_OUTPUTS serves {', '.join(sorted(TASK_OUTPUTS))})")
    spec = graph_input or (declared_inputs[0] if declared_inputs else input_of(meta))
    parameters = {"task": task, "input": str(meta.get("input") or ""),
                  "classes": json.dumps([str(c) for c in meta.get("classes") or ()])}  # V2 parameters are scalars
    for key in ("trial", "dataset", "architecture", "sampleRate", "vocabulary", "padId", "maxLength", "features"):
        value = meta.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            parameters[key] = value
        elif isinstance(value, list):  # a speech model's vocabulary: a JSON array, as the classes
            parameters[key] = json.dumps(value)
    return Signature(task=task, input=spec, outputs=outputs, outputs_of=outputs_of, parameters=parameters)


def onnx_input(node) -> TensorSpec:
    """An onnxruntime ``NodeArg`` as a TensorSpec (symbolic dimensions are free)."""
    if node.type not in ONNX_TYPES:
        raise ValueError(f"ONNX input {node.name} has type {node.type}, which kubenas serve does not serve")
    return TensorSpec(node.name, ONNX_TYPES[node.type], tuple(d if isinstance(d, int) and d > 0 else FREE
                                                              for d in node.shape))
