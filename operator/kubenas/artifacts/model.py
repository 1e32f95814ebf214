"""Where an experiment's best model is and copying it out (``kubenas model``, whose command
line is kubenas.cli.model; ``kubenas serve EXPERIMENT``): out of where its experiment's
artifacts went, or out of a local run directory.

* A cluster experiment names its best model in ``status.bestTrial.model`` (the operator
  checks it against spec.artifacts): an ``s3://``, ``gs://`` or ``az://`` URL is read with
  fsspec and this machine's credentials (the backend's usual environment variables and
  files, e.g. ``AWS_ACCESS_KEY_ID`` and ``AWS_ENDPOINT_URL``); a ``pvc://CLAIM/PATH``
  is read from ``--volume-dir``, a local folder where that claim is mounted (an NFS
  mount, a copy made with ``kubectl cp``), since a volume has no URL to read it by.
* A local run directory (``kubenas run --run-dir DIR``) holds ``best_model.pt`` (and
  ``best_model.onnx`` when ``trial.export.formats`` lists onnx).

``--format onnx`` takes the ONNX file the trainer exported beside the TorchScript one
(``trial.export.formats: [torchscript, onnx]``; ``onnx`` alone makes the ONNX file the
one the status names).

Each problem is a :class:`ModelUnavailable` naming what is missing and what to do.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from kubenas.contract import EXPERIMENT_PLURAL, GROUP, VERSION
from kubenas.contract import artifacts as art
from kubenas.contract.settings import EXPORT_SUFFIX

RUN_DIR_MODEL = "best_model.pt"
HOW_TO_LOAD = {"torchscript": "torch.jit.load loads it", "onnx": "onnxruntime.InferenceSession loads it"}


class ModelUnavailable(Exception):
    """The best model cannot be had; the message says why and what to do."""


def location_from_status(experiment: dict, fmt: str = "torchscript") -> str:
    """Where the experiment's best model is in format ``fmt``, from its status."""
    meta, spec, status = experiment.get("metadata") or {}, experiment.get("spec") or {}, experiment.get("status") or {}
    name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    if not spec.get("artifacts"):
        raise ModelUnavailable(f"experiment {name} keeps no artifacts (spec.artifacts is not set): set "
                               "spec.artifacts to a PersistentVolumeClaim or an object store url for the next "
                               "experiment, or retrain the best trial with kubenas-train --export-model")
    best = status.get("bestTrial") or {}
    if not best.get("name"):
        raise ModelUnavailable(f"experiment {name} has no succeeded trial yet (phase "
                               f"{status.get('phase') or 'Pending'}): wait for one")
    if not best.get("model"):
        raise ModelUnavailable(f"the best trial {best['name']} of experiment {name} has no model in its artifacts "
                               f"(spec.artifacts.models is {spec['artifacts'].get('models', art.MODELS_ALL)}, or "
                               "its trainer could not write it: see the trial's status.message)")
    named = best["model"]
    if named.rsplit("/", 1)[-1] == art.MODEL_FILES[fmt]:
        return named
    formats = ((spec.get("trial") or {}).get("export") or {}).get("formats") or ["torchscript"]
    if fmt not in formats:
        raise ModelUnavailable(f"experiment {name} exported no {fmt} model (spec.trial.export.formats is "
                               f"{formats}): add {fmt} to spec.trial.export.formats for the next experiment, or "
                               f"pass --format {formats[0]}")
    return art.model_location(named, fmt)


def read_experiment(name: str, namespace: str | None, kubeconfig: str | None, context: str | None) -> dict:
    """The NASExperiment, with the current context's namespace unless ``namespace``."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    conf = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=conf)
        if namespace is None:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
            chosen = next((c for c in contexts if c["name"] == context), active) if context else active
            namespace = (chosen.get("context") or {}).get("namespace") or "default"
    except (config.ConfigException, OSError) as err:
        raise ModelUnavailable(f"cannot load the kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}: "
                               f"{err}: pass --kubeconfig or set KUBECONFIG") from err
    with client.ApiClient(conf) as api:
        try:
            return client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, EXPERIMENT_PLURAL, name, _request_timeout=(10, 60))
        except ApiException as err:
            if err.status == 404:
                raise ModelUnavailable(f"no NASExperiment {name} in namespace {namespace}: check the name, or pass "
                                       "-n NAMESPACE") from err
            raise ModelUnavailable(f"cannot read NASExperiment {namespace}/{name}: {err.status} {err.reason}") from err


def copy_model(location: str, dest: Path, volume_dir: str | None = None) -> Path:
    """Copy the model at ``location`` to ``dest`` (atomically: a partial copy never
    lands there)."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if location.startswith(art.PVC_SCHEME + "://"):
            claim, path = art.pvc_parts(location)
            if not volume_dir:
                raise ModelUnavailable(f"the best model is on PersistentVolumeClaim {claim} ({location}): mount that "
                                       "claim here (or copy its folder out with kubectl cp from a pod that mounts it) "
                                       "and pass its folder as --volume-dir")
            source = Path(volume_dir) / path
            if not source.is_file():
                raise ModelUnavailable(f"{source} is not there: --volume-dir must be the folder where claim {claim} "
                                       f"is mounted (the model is {path} inside it)")
            shutil.copyfile(source, tmp)
        elif art.scheme(location) in art.URL_SCHEMES:
            try:
                import fsspec
            except ImportError as err:
                raise ModelUnavailable(f"reading {location} needs fsspec and its backend: pip install "
                                       "'kubenas[artifacts]'") from err
            try:
                fs, path = fsspec.core.url_to_fs(location)
                fs.get_file(path, str(tmp))
            except ImportError as err:
                raise ModelUnavailable(f"reading {location} needs the fsspec backend for "
                                       f"{art.scheme(location)}://: pip install 'kubenas[artifacts]' ({err})") from err
            except FileNotFoundError as err:
                raise ModelUnavailable(f"{location} is not there (removed from the store?)") from err
            except (OSError, PermissionError) as err:
                raise ModelUnavailable(f"cannot read {location}: {err} (credentials come from this machine's "
                                       "environment, e.g. AWS_ACCESS_KEY_ID and AWS_ENDPOINT_URL for s3)") from err
        else:
            raise ModelUnavailable(f"{location} is not a place kubenas writes models to (s3://, gs://, az://, pvc://)")
        tmp.replace(dest)
    except OSError as err:
        raise ModelUnavailable(f"cannot write {dest}: {err.strerror or err}: choose another -o path") from err
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


def from_run_dir(run_dir: Path, dest: Path, fmt: str = "torchscript") -> Path:
    source = (run_dir / RUN_DIR_MODEL).with_suffix(EXPORT_SUFFIX[fmt])
    if not source.is_file():
        if fmt != "torchscript" and (run_dir / RUN_DIR_MODEL).is_file():
            raise ModelUnavailable(f"{run_dir} has no {source.name}: the run exported no {fmt} model (add {fmt} "
                                   "to trial.export.formats), or pass --format torchscript")
        raise ModelUnavailable(f"{run_dir} has no {source.name} yet (no trial has succeeded in this run)")
    if source.resolve() == Path(dest).resolve():
        return source
    return copy_model_file(source, dest)


def copy_model_file(source: Path, dest: Path) -> Path:
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".part")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, tmp)
        tmp.replace(dest)
    except OSError as err:
        if tmp.exists():
            tmp.unlink()
        raise ModelUnavailable(f"cannot write {dest}: {err.strerror or err}: choose another -o path") from err
    return dest


def fetch(target: str, dest: Path, *, namespace=None, kubeconfig=None, context=None, volume_dir=None,
          fmt: str = "torchscript") -> tuple[Path, str]:
    """(where the model was written, where it came from). ``target`` is a local run
    directory if one of that name exists, else a NASExperiment name."""
    if os.sep in target or Path(target).is_dir():
        run_dir = Path(target)
        if not run_dir.is_dir():
            raise ModelUnavailable(f"{target} is not a run directory (nor a NASExperiment name)")
        path = from_run_dir(run_dir, dest, fmt)
        return path, str((run_dir / RUN_DIR_MODEL).with_suffix(EXPORT_SUFFIX[fmt]))
    experiment = read_experiment(target, namespace, kubeconfig, context)
    location = location_from_status(experiment, fmt)
    return copy_model(location, dest, volume_dir), location
