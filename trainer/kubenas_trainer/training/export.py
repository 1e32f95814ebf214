"""Export a trained model as a self-contained TorchScript file, and as ONNX.

The file loads with plain ``torch.jit.load`` (no kubenas needed). The exported module
takes float images ``N x C x H x W`` with pixel values scaled to [0, 1] (what
torchvision's ``ToTensor`` gives; digits: value / 16, MNIST / CIFAR: value / 255) and
returns logits; the dataset normalisation is built in. Metadata (classes, input shape,
normalisation, genotype) travels inside the file as ``kubenas.json``::

    extra = {"kubenas.json": ""}
    model = torch.jit.load("model.pt", _extra_files=extra)
    meta = json.loads(extra["kubenas.json"])

The ONNX file (``export_onnx``) takes the same input, named ``images`` (batch size free;
the other tasks' input, a waveform or a sequence, is named ``input``), and gives
``logits``; the same metadata is its ``kubenas.json`` metadata property::

    session = onnxruntime.InferenceSession("model.onnx")
    logits = session.run(["logits"], {"images": batch})[0]

A trained trial's metadata also holds its task's ``signature``: ``{"inputs": [...],
"outputs": [...]}``, each tensor ``{"name", "datatype", "shape"}`` with a V2 datatype
(``FP32``, ``INT64``) and -1 for a free dimension; the ONNX file's input and output
names are the signature's (``export_model``).
"""
from __future__ import annotations

import copy
import json
import logging
import warnings
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

METADATA_FILE = "kubenas.json"
log = logging.getLogger("kubenas.trainer.export")


class ExportError(RuntimeError):
    """The model cannot be exported as promised (a module that does not script where the
    input length is free, or an exported file that disagrees with the model)."""


class NormalizedClassifier(nn.Module):
    """``net((x - mean) / std)``, with mean/std per channel as buffers."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


class TaskClassifier(nn.Module):
    """``net(normalise(front(x)))`` for the tasks whose users hold something else than
    what the network was trained on (a waveform before its log-mel features, ``N x T x F``
    sequences); ``classify_features`` skips the front end."""

    def __init__(self, front: nn.Module, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 normalise: bool):
        super().__init__()
        self.front = front
        self.net = net
        self.normalise = normalise
        values = list(mean) if normalise else [0.0]
        spread = list(std) if normalise else [1.0]
        self.register_buffer("mean", torch.tensor(values, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(spread, dtype=torch.float32).view(1, -1, 1, 1))

    @torch.jit.export
    def classify_features(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalise:
            features = (features - self.mean) / self.std
        return self.net(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify_features(self.front(x))


def exported_module(model: nn.Module, mean: Sequence[float], std: Sequence[float], *,
                    front: nn.Module | None = None, input_doc: str | None = None, normalise: bool = True,
                    wrap=None) -> nn.Module:
    """What both formats export: a CPU float32 copy of ``model`` in eval mode, inside the
    task's module around it (``wrap(copy)``: the network then the greedy CTC decision, a
    detector's images -> boxes, scores, labels), behind its normalisation (images) or its
    task's front end (``TaskClassifier``); a wrapped network without either is the model."""
    net = copy.deepcopy(model).to(device="cpu", dtype=torch.float32, memory_format=torch.contiguous_format)
    if wrap is not None:
        net = wrap(net.eval()).eval()
        if front is None and not normalise:
            return net
    if front is None and normalise and input_doc is None:
        return NormalizedClassifier(net, mean, std).eval()
    front = copy.deepcopy(front).cpu() if front is not None else nn.Identity()
    return TaskClassifier(front, net, mean, std, normalise).eval()


def export_torchscript(model: nn.Module, path: str | Path, input_shape: tuple[int, ...],
                       mean: Sequence[float], std: Sequence[float], metadata: dict | None = None, *,
                       front: nn.Module | None = None, input_doc: str | None = None,
                       example: torch.Tensor | None = None, normalise: bool = True,
                       variable_length: bool = False, wrap=None) -> Path:
    """Write ``model`` (a copy, on CPU, float32, eval mode) as TorchScript to ``path``.

    Image models take normalisable images; other tasks give ``front`` (what turns the
    user's input into the network's, e.g. the log-mel front end), ``input_doc`` and an
    ``example`` batch of that input; ``variable_length``: the input's dimension 1 (a
    waveform's samples, a sequence's steps) is free.

    The module is scripted (every kubenas model and front end scripts). A foreign module
    that does not script (a ``model.builder`` network) is traced on ``example``, with a
    warning and ``"torchscript": "traced"`` in the metadata; tracing freezes the shape's
    branches at the example's, so where the length is free a trace is kept only when it
    agrees with the model at other lengths too, else ``ExportError`` names the module
    that does not script. The saved file is reloaded and compared with the eager model
    on the example, on another batch size and, where the length is free, on inputs
    shorter and longer than the example (``check_inputs``).
    """
    wrapper = exported_module(model, mean, std, front=front, input_doc=input_doc, normalise=normalise, wrap=wrap)
    if example is None:
        example = torch.rand(2, *input_shape)
    how = "scripted"
    with warnings.catch_warnings():
        # TorchScript is deprecated in favour of torch.export, but it is still the one
        # format that loads with plain torch.jit.load in any torch 2.x, C++ included.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            scripted = torch.jit.script(wrapper)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds here
            why = _unscriptable(wrapper, exc)
            log.warning("TorchScript: %s; tracing it on an input of shape %s instead%s", why, list(example.shape),
                        " (kept only if it agrees at other lengths)" if variable_length else "")
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the check below is the proof
                scripted = torch.jit.trace(wrapper, example, check_trace=False)
            how = f"traced ({why})"
    meta = {
        "format": "kubenas-torchscript/v1",
        "torchscript": "scripted" if how == "scripted" else "traced",
        "input": input_doc or "float32 N x C x H x W, pixel values scaled to [0, 1]; normalisation is built in",
        "inputShape": list(input_shape),
        "mean": list(mean),
        "std": list(std),
        **(metadata or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA_FILE: json.dumps(meta)})
        loaded = torch.jit.load(str(tmp), map_location="cpu")
    for x in check_inputs(example, variable_length):
        problem = _disagreement(wrapper, loaded, x)
        if problem is not None:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"exported TorchScript ({how}) disagrees with the model on an input of shape "
                              f"{list(x.shape)}: {problem}" + (
                                  "; make the module scriptable (torch.jit.script), or export with "
                                  "export.formats: [onnx]" if how != "scripted" else ""))
    tmp.replace(path)
    return path


def _unscriptable(module: nn.Module, exc: Exception) -> str:
    """Which submodule of ``module`` does not script (the deepest that fails on its own),
    with the first line of torch's reason: what a failed ``torch.jit.script`` says."""
    name, culprit = "", module
    while True:
        for child_name, child in culprit.named_children():
            try:
                torch.jit.script(child)
            except Exception:  # noqa: BLE001 - (torch's second try at a class says less than the first)
                name, culprit = f"{name}.{child_name}" if name else child_name, child
                break
        else:
            break
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    where = f"{name} ({type(culprit).__module__}.{type(culprit).__qualname__})" if name else \
        f"{type(culprit).__module__}.{type(culprit).__qualname__}"
    return f"{where} does not script: {first}"


def _disagreement(model: nn.Module, exported, x: torch.Tensor) -> str | None:
    """None if ``exported(x)`` gives ``model(x)``'s logits (rtol 1e-4, atol 1e-5), else what differs."""
    with torch.no_grad():
        expected = model(x)
        try:
            got = exported(x)
        except Exception as exc:  # noqa: BLE001 - a trace run at another length fails in many ways
            return f"it fails ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
    pairs = list(zip(expected, got)) if isinstance(expected, tuple) else [(expected, got)]
    if isinstance(expected, tuple) and (not isinstance(got, tuple) or len(got) != len(expected)):
        return f"{type(got).__name__} of {len(got) if isinstance(got, tuple) else 1}, expected {len(expected)} outputs"
    for i, (want, have) in enumerate(pairs):
        what = f"output {i}" if len(pairs) > 1 else "logits"
        if have.shape != want.shape:
            return f"{what} of shape {list(have.shape)}, expected {list(want.shape)}"
        if want.is_floating_point() and not torch.allclose(want, have, rtol=1e-4, atol=1e-5):
            return f"{what}: max diff {(want - have).abs().max().item():.3g}"
        if not want.is_floating_point() and not torch.equal(want, have):
            return f"{what} differs"
    return None


def check_inputs(example: torch.Tensor, variable_length: bool) -> list[torch.Tensor]:
    """What an export is checked on: ``example``, a batch of another size and, with
    ``variable_length``, batches shorter and longer than it along dimension 1 (by an odd
    number of steps, so centring rounds too): a clip or sequence at its own length, as a
    user feeds it."""
    inputs = [example, _another_batch(example, False)]
    if variable_length and example.dim() >= 2 and example.shape[1] > 1:
        length = example.shape[1]
        inputs.append(_perturbed(example[:, : max(1, length // 2 - 1)]))
        inputs.append(_perturbed(torch.cat([example, example[:, : length // 2 + 1]], dim=1)))
    return inputs


def export_model(model: nn.Module, model_path: str | Path, formats, opset: int, spec, metadata: dict) -> None:
    """Write ``model`` in each of ``formats`` (TorchScript at ``model_path``, ONNX beside it
    with its suffix) as the task's ``spec`` (``interface.ExportSpec``) says: its front end
    or normalisation built in, checked on its example inputs, and ``metadata`` plus the
    ``signature`` in the file; ``spec.wrap`` is the task's module around the network."""
    from kubenas.contract.settings import EXPORT_SUFFIX

    if "onnx" in formats and spec.onnx_refusal:
        raise ExportError(spec.onnx_refusal)

    how = dict(metadata={**metadata, "signature": spec.signature}, front=spec.front, input_doc=spec.input_doc,
               example=spec.example, normalise=spec.normalise, variable_length=spec.variable_length,
               wrap=spec.wrap)
    if "torchscript" in formats:
        export_torchscript(model, model_path, spec.input_shape, spec.mean, spec.std, **how)
    if "onnx" in formats:
        export_onnx(model, Path(model_path).with_suffix(EXPORT_SUFFIX["onnx"]), spec.input_shape, spec.mean,
                    spec.std, opset=opset, **how)


def load_metadata(path: str | Path) -> dict:
    """The ``kubenas.json`` metadata of an exported model."""
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[METADATA_FILE])


ONNX_INPUT, ONNX_TASK_INPUT, ONNX_OUTPUT = "images", "input", "logits"


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, ...], mean: Sequence[float],
                std: Sequence[float], opset: int, metadata: dict | None = None, *,
                front: nn.Module | None = None, input_doc: str | None = None,
                example: torch.Tensor | None = None, normalise: bool = True,
                variable_length: bool = False, wrap=None) -> Path:
    """Write ``model`` as ONNX at ``opset`` to ``path``: the module TorchScript gets
    (``exported_module``: normalisation, or the task's front end, built in), batch size
    free, and with ``variable_length`` the length (dimension 1) too. The input is named
    ``images`` (``input`` for the other tasks), the output ``logits``.

    torch's TorchScript-based exporter is used (it needs no package beyond torch; the
    torch.export-based one needs onnxscript). The file is then run with onnxruntime, when
    installed (the ``train`` extra has it), on a batch of another size than the one
    traced and, with ``variable_length``, on inputs shorter and longer than it
    (``check_inputs``), and must give the model's logits within rtol 1e-4, atol 1e-5
    (``ExportError`` otherwise).
    """
    import onnx

    wrapper = exported_module(model, mean, std, front=front, input_doc=input_doc, normalise=normalise, wrap=wrap)
    if example is None:
        example = torch.rand(2, *input_shape)
    name = ONNX_INPUT if input_doc is None else ONNX_TASK_INPUT
    output = ONNX_OUTPUT
    signature = (metadata or {}).get("signature")
    if signature:  # the task's names
        name, output = signature["inputs"][0]["name"], signature["outputs"][0]["name"]
    axes = {0: "batch", 1: "length"} if variable_length else {0: "batch"}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(wrapper, (example,), str(tmp), opset_version=int(opset), dynamo=False,
                          input_names=[name], output_names=[output],
                          dynamic_axes={name: axes, output: {0: "batch"}})
    proto = onnx.load(str(tmp))
    doc = input_doc or "float32 N x C x H x W, pixel values scaled to [0, 1]; normalisation is built in"
    meta = {"format": "kubenas-onnx/v1", "opset": int(opset), "input": f"{name}: {doc}",
            "inputShape": list(input_shape), "mean": list(mean), "std": list(std), **(metadata or {})}
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_FILE, json.dumps(meta)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    for x in check_inputs(example, variable_length)[1:]:  # not the traced example: others
        check = onnx_disagreement(wrapper, tmp, x, output=output)
        if check is not None and check > 0:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"exported ONNX disagrees with the model under onnxruntime on an input of shape "
                              f"{list(x.shape)} (max diff {check:.3g})")
    tmp.replace(path)
    return path


def _another_batch(example: torch.Tensor, variable_length: bool) -> torch.Tensor:
    """A batch like ``example`` of another size (and length)."""
    reps = [3] + [1] * (example.dim() - 1)
    x = example.repeat(*reps)[: example.shape[0] + 1]
    if variable_length and example.dim() >= 2:
        x = torch.cat([x, x[:, : max(1, x.shape[1] // 2)]], dim=1)
    return _perturbed(x)


def _perturbed(x: torch.Tensor) -> torch.Tensor:
    """Float inputs slightly moved (so no check reuses the exact example); ids as they are."""
    return x + 0.01 * torch.randn_like(x) if x.is_floating_point() else x


def onnx_disagreement(model: nn.Module, path: str | Path, x: torch.Tensor | tuple[int, ...],
                      batch: int = 3, rtol: float = 1e-4, atol: float = 1e-5,
                      output: str = ONNX_OUTPUT) -> float | None:
    """0.0 if onnxruntime's logits for the batch ``x`` (or a random batch of images of
    that shape) match ``model``'s within the tolerance, else the largest difference;
    None without onnxruntime."""
    try:
        import onnxruntime
    except ImportError:
        return None
    if not isinstance(x, torch.Tensor):
        x = torch.rand(batch, *x)
    with torch.no_grad():
        expected = model(x).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run([output], {session.get_inputs()[0].name: x.numpy()})[0]
    import numpy as np

    if got.shape == expected.shape and np.allclose(got, expected, rtol=rtol, atol=atol):
        return 0.0
    return float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")


def load_onnx_metadata(path: str | Path) -> dict:
    """The ``kubenas.json`` metadata of an exported ONNX model."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[METADATA_FILE])
