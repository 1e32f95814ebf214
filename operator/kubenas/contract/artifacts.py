"""Where trial outputs go (``spec.artifacts``): the layout, the environment the operator
hands the trainer, and the credential variables each object store reads. Written down
once here because the operator builds the Job from it, the trainer writes by it and
``kubenas model`` reads by it (docs/cluster.md, "Artifacts").

Layout under the artifacts root (a folder of a PersistentVolumeClaim, or an object
store URL)::

    <root>/<experiment>_<uid>/<trial>/result.json     the trial's result (reward, metrics, status)
    <root>/<experiment>_<uid>/<trial>/history.jsonl   one JSON line per epoch
    <root>/<experiment>_<uid>/<trial>/model.pt        TorchScript, when kept (``models``)
    <root>/<experiment>_<uid>/<trial>/model.onnx      ONNX, when kept and trial.export lists onnx
    <root>/<experiment>_<uid>/<trial>/checkpoint.pt   the training state, when trial.checkpoint.save

An experiment's folder (``experiment_folder``) is its name and its uid joined by ``_``, a
character no Kubernetes name has: so it is never a trial's folder of another experiment
(experiment ``q-5`` with path ``p/q`` is ``p/q/q-5_<uid>``, not experiment ``q``'s trial
``q-5`` at ``p/q_<uid>/q-5``), never a namesake's in another namespace that shares the
bucket, and never an earlier experiment's of the same name. A local run (no uid) uses the
name alone.

A checkpoint is not a model: ``models`` (``top``, ``topK``, ``maxBytes``) neither counts
nor removes it, whatever happens to the trial's model, because a later trial may resume
from it (multi-fidelity search). It stays with the trial's result and history and goes
when they go (the experiment's folder is removed).
"""
from __future__ import annotations

import posixpath

from .settings import EXPORT_SUFFIX

# Every exported format of a kept model (trial.export.formats), in the order in which the
# status names the first one present: model.pt, model.onnx.
MODEL_FILES = {fmt: "model" + suffix for fmt, suffix in EXPORT_SUFFIX.items()}
MODEL_FILE = MODEL_FILES["torchscript"]  # the format the status names when the trial has it
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.pt"  # trial.checkpoint.save: in the trainer's --out folder, and here
HISTORY_FILE = "history.jsonl"

# Which models are kept.
MODELS_ALL = "all"    # every succeeded trial's
MODELS_TOP = "top"    # the best topK whose sizes add up to at most maxBytes
MODELS_NONE = "none"  # results and history only
MODELS = (MODELS_ALL, MODELS_TOP, MODELS_NONE)

# Where a PersistentVolumeClaim is mounted in the trainer container (the experiment's
# folder of it: <path>/<experiment>_<uid>, by subPath, so a trial sees no other experiment).
MOUNT_PATH = "/var/lib/kubenas/artifacts"
VOLUME_NAME = "kubenas-artifacts"
PVC_SCHEME = "pvc"

# The trainer's environment (set by the operator's job builder only).
ENV_ROOT = "KUBENAS_ARTIFACTS_ROOT"          # the experiment's folder: a local path or a URL
ENV_LOCATION = "KUBENAS_ARTIFACTS_LOCATION"  # the same folder as users name it (pvc://..., s3://...)
ENV_MODELS = "KUBENAS_ARTIFACTS_MODELS"
ENV_TOP_K = "KUBENAS_ARTIFACTS_TOP_K"
ENV_MAX_BYTES = "KUBENAS_ARTIFACTS_MAX_BYTES"

# Object stores (fsspec protocols) and the variables their backends read from the
# environment; a credentialsSecret's keys with these names become the trainer's env.
# gs has none: gcsfs takes Workload Identity or the node's default credentials.
CREDENTIAL_VARIABLES = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
           "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL"),
    "gs": (),
    "az": ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY",
           "AZURE_STORAGE_SAS_TOKEN"),
}
URL_SCHEMES = tuple(CREDENTIAL_VARIABLES)


def model_location(location: str, fmt: str) -> str:
    """The same trial's model in another export format: ``.../model.pt`` -> ``.../model.onnx``."""
    folder, _, name = location.rpartition("/")
    if name not in MODEL_FILES.values():
        raise ValueError(f"{location} is not a kubenas model file ({', '.join(MODEL_FILES.values())})")
    return f"{folder}/{MODEL_FILES[fmt]}" if folder else MODEL_FILES[fmt]


def scheme(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else ""


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a URL or a path (no doubled slashes)."""
    return posixpath.join(root.rstrip("/"), *parts) if root else posixpath.join(*parts)


FOLDER_SEPARATOR = "_"  # in no Kubernetes name (DNS-1123): an experiment's folder is never a trial's


def experiment_folder(experiment: str, uid: str | None) -> str:
    """The experiment's folder name: ``<experiment>_<uid>`` (a local run: ``<experiment>``)."""
    return f"{experiment}{FOLDER_SEPARATOR}{uid}" if uid else experiment


def experiment_location(artifacts: dict, experiment: str, uid: str | None = None) -> str:
    """The experiment's folder as users name it: ``s3://bucket/prefix/<experiment>_<uid>``
    or ``pvc://<claim>/<path>/<experiment>_<uid>``."""
    folder = experiment_folder(experiment, uid)
    if artifacts.get("url"):
        return join(artifacts["url"], folder)
    pvc = artifacts["persistentVolumeClaim"]
    return join(f"{PVC_SCHEME}://{pvc['claimName']}", *[p for p in [pvc.get("path") or ""] if p], folder)


def trainer_root(artifacts: dict, experiment: str, uid: str | None = None) -> str:
    """The experiment's folder as its trainers see it (``KUBENAS_ARTIFACTS_ROOT``): the
    object store URL, or the claim's folder mounted at MOUNT_PATH in every trainer pod."""
    return experiment_location(artifacts, experiment, uid) if artifacts.get("url") else MOUNT_PATH


def checkpoint_location(artifacts: dict, experiment: str, trial: str, uid: str | None = None) -> str:
    """Where ``trial``'s checkpoint is, as the trainer of any trial of the same experiment
    reads it (its ``trial.checkpoint.resumeFrom``): ``s3://bucket/prefix/<experiment>_<uid>/
    <trial>/checkpoint.pt``, or ``/var/lib/kubenas/artifacts/<trial>/checkpoint.pt`` for a
    claim. Without spec.artifacts a local run's trial leaves it in its own folder (its ``--out``)."""
    return join(trainer_root(artifacts, experiment, uid), trial, CHECKPOINT_FILE)


def trainer_env(artifacts: dict, experiment: str, root: str, uid: str | None = None) -> dict:
    """The trainer's artifacts variables (not the credentials): where to write
    (``root``: the mounted folder, or the URL) and which models to keep. The operator's
    job builder and the local runner both hand these over."""
    env = {ENV_ROOT: root, ENV_LOCATION: experiment_location(artifacts, experiment, uid),
           ENV_MODELS: artifacts.get("models") or MODELS_ALL}
    if "topK" in artifacts:
        env[ENV_TOP_K] = str(int(artifacts["topK"]))
    if "maxBytes" in artifacts:
        env[ENV_MAX_BYTES] = str(artifacts["maxBytes"])
    return env


def pvc_sub_path(artifacts: dict, experiment: str, uid: str | None = None) -> str:
    """The subPath of the claim mounted into a trainer: ``<path>/<experiment>_<uid>``."""
    path = (artifacts.get("persistentVolumeClaim") or {}).get("path") or ""
    folder = experiment_folder(experiment, uid)
    return join(path, folder) if path else folder


def pvc_parts(location: str) -> tuple[str, str]:
    """``pvc://claim/a/b`` -> (``claim``, ``a/b``)."""
    rest = location[len(PVC_SCHEME) + 3:]
    claim, _, path = rest.partition("/")
    return claim, path
