"""Which model file to serve, and loading it: ONNX through onnxruntime when the trial
exported one, TorchScript (torch.jit.load) otherwise.

Where the file is (``locate``):

* a run directory (``kubenas run --run-dir DIR``): its best model, ``best_model.onnx`` or
  ``best_model.pt``; with ``trial``: ``trials/<trial>/model.onnx`` or ``model.pt``;
* a model folder or file (``--model-dir``): a trial's artifacts folder as the cluster
  mounts it read-only (``model.onnx`` / ``model.pt``), or the file itself;
* a model file in an object store (``--model-url``, what a ``spec.deploy`` Deployment
  serves from a store): copied into ``download_dir`` with this environment's credentials
  (the backend's variables, kubenas.contract.artifacts.CREDENTIAL_VARIABLES);
* a NASExperiment on a cluster: the best model its ``status.bestTrial.model`` names,
  copied out of ``spec.artifacts`` as ``kubenas model`` does (kubenas.artifacts.model).
"""
from __future__ import annotations

import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from kubenas.artifacts.model import ModelUnavailable, copy_model, fetch
from kubenas.contract import artifacts as art
from kubenas.contract.settings import EXPORT_SUFFIX

from .signature import Signature, onnx_input, signature_of

METADATA_KEY = "kubenas.json"  # the exported model's metadata (kubenas_trainer.training.export.METADATA_FILE)
PREFERRED = ("onnx", "torchscript")  # onnxruntime first: faster on a CPU, no torch needed
PLATFORMS = {"onnx": "onnxruntime_onnx", "torchscript": "pytorch_libtorch"}  # Triton's / KServe's names


@dataclass
class ServedModel:
    name: str
    version: str
    platform: str
    path: Path
    signature: Signature
    run: Callable[[np.ndarray], list[np.ndarray]]  # a batch of the input -> the exported module's outputs


def _candidates(folder: Path, stem: str, fmt: str | None) -> list[Path]:
    return [folder / (stem + EXPORT_SUFFIX[f]) for f in ((fmt,) if fmt else PREFERRED)]


def locate(target: str | None, *, trial: str | None = None, model_dir: str | None = None, fmt: str | None = None,
           namespace=None, kubeconfig=None, context=None, volume_dir=None, model_url: str | None = None,
           download_dir: str | Path | None = None) -> tuple[Path, str]:
    """(the model file, the model's default name). A cluster experiment's model, or the
    one at ``model_url``, is copied into ``download_dir`` (default: a new temporary
    folder). Raises ModelUnavailable naming what is missing and what to do."""
    if model_url:
        return _from_url(model_url, download_dir), "model"
    if model_dir:
        where = Path(model_dir)
        if where.is_file():
            return where, where.stem
        found = [p for stem in ("model", "best_model") for p in _candidates(where, stem, fmt) if p.is_file()]
        if not found:
            raise ModelUnavailable(f"--model-dir {model_dir} holds no model.onnx or model.pt (a trial's artifacts "
                                   "folder, or the model file itself)")
        return found[0], "model"
    if target is None:
        raise ModelUnavailable("name a run directory or a NASExperiment, or pass --model-dir")
    run_dir = Path(target)
    if run_dir.is_dir():
        experiment = _run_name(run_dir)
        folder, stem = (run_dir / "trials" / trial, "model") if trial else (run_dir, "best_model")
        found = [p for p in _candidates(folder, stem, fmt) if p.is_file()]
        if not found:
            what = f"trial {trial}" if trial else "the run"
            raise ModelUnavailable(f"{folder} has no {' or '.join(p.name for p in _candidates(folder, stem, fmt))}: "
                                   f"{what} kept no model{'' if trial else ' yet (no trial has succeeded)'}"
                                   + ("; see trials/ for the trials' names" if trial else ""))
        return found[0], experiment
    if trial:
        raise ModelUnavailable("--trial serves another trial of a local run directory; for a cluster experiment "
                               "copy that trial's model out of spec.artifacts and pass it as --model-dir")
    cache = Path(download_dir) if download_dir else Path(tempfile.mkdtemp(prefix="kubenas-serve-"))
    last = None
    for f in (fmt,) if fmt else PREFERRED:
        try:
            path, _ = fetch(target, cache / ("model" + EXPORT_SUFFIX[f]), namespace=namespace, kubeconfig=kubeconfig,
                            context=context, volume_dir=volume_dir, fmt=f)
            return path, target
        except ModelUnavailable as err:  # no onnx exported: the TorchScript one
            last = err
    raise last


def _from_url(url: str, download_dir: str | Path | None) -> Path:
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if art.scheme(url) not in art.URL_SCHEMES or Path(name).suffix not in EXPORT_SUFFIX.values():
        stores = ", ".join(s + "://" for s in art.URL_SCHEMES)
        raise ModelUnavailable(f"--model-url {url}: expected the URL of an exported model file in an object store "
                               f"({stores}; {' or '.join(art.MODEL_FILES.values())})")
    cache = Path(download_dir) if download_dir else Path(tempfile.mkdtemp(prefix="kubenas-serve-"))
    return copy_model(url, cache / name)


def _run_name(run_dir: Path) -> str:
    """The experiment's name of a run directory (its experiment.yaml), else the folder's."""
    try:
        import yaml

        return str(yaml.safe_load((run_dir / "experiment.yaml").read_text())["metadata"]["name"])
    except (OSError, KeyError, TypeError, ValueError):
        return run_dir.resolve().name


def load(path: Path, name: str, *, threads: int = 0) -> ServedModel:
    """The model at ``path`` (``.onnx``: onnxruntime; else TorchScript), ready to run.
    ``threads``: intra-op threads (0: the runtime's default)."""
    path = Path(path)
    if path.suffix == EXPORT_SUFFIX["onnx"]:
        return _load_onnx(path, name, threads)
    return _load_torchscript(path, name, threads)


def _load_onnx(path: Path, name: str, threads: int) -> ServedModel:
    try:
        import onnxruntime
    except ImportError as err:
        raise ModelUnavailable(f"{path} is ONNX, which needs onnxruntime: pip install 'kubenas[serve]'") from err
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own kinds for a bad file
        raise ModelUnavailable(f"{path} does not load with onnxruntime: {err}") from err
    meta = _json_metadata(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelUnavailable(f"{path} has {len(inputs)} inputs; kubenas serve serves models of one input")
    try:
        signature = signature_of(meta, onnx_input(inputs[0]))
    except ValueError as err:
        raise ModelUnavailable(f"{path}: {err}") from err
    feed, fetch = inputs[0].name, [o.name for o in outputs]

    def run(batch: np.ndarray) -> list[np.ndarray]:
        return session.run(fetch, {feed: batch})
    return ServedModel(name, str(meta.get("trial") or "1"), PLATFORMS["onnx"], path, signature, run)


def _load_torchscript(path: Path, name: str, threads: int) -> ServedModel:
    try:
        import torch
    except ImportError as err:
        raise ModelUnavailable(f"{path} is TorchScript, which needs torch; or export ONNX too "
                               "(trial.export.formats: [torchscript, onnx]) and serve that") from err
    try:  # an exported detector calls torchvision's ops (torchvision::nms), registered on import
        import torchvision  # noqa: F401
    except ImportError:
        pass
    if threads:
        torch.set_num_threads(threads)
    extra = {METADATA_KEY: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as err:  # noqa: BLE001 - torch raises RuntimeError and others for a bad file
        raise ModelUnavailable(f"{path} does not load with torch.jit.load: {err}") from err
    module.eval()
    meta = _json_metadata(extra[METADATA_KEY], path)

    def run(batch: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            out = module(torch.from_numpy(batch))
        return [t.numpy() for t in out] if isinstance(out, (tuple, list)) else [out.numpy()]
    try:
        signature = signature_of(meta)
    except ValueError as err:
        raise ModelUnavailable(f"{path}: {err}") from err
    return ServedModel(name, str(meta.get("trial") or "1"), PLATFORMS["torchscript"], path, signature, run)


def _json_metadata(text, path: Path) -> dict:
    if not text:
        raise ModelUnavailable(f"{path} has no {METADATA_KEY} metadata: it was not exported by kubenas "
                               "(kubenas serve reads the task and input shape from it)")
    try:
        return json.loads(text)
    except ValueError as err:
        raise ModelUnavailable(f"{path}: its {METADATA_KEY} metadata is not JSON ({err})") from err
