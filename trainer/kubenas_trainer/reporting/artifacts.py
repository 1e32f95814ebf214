"""Write a finished trial's outputs to the experiment's artifacts folder (``spec.artifacts``).

The operator hands the trainer the folder through the environment
(``kubenas.contract.artifacts``: ``KUBENAS_ARTIFACTS_ROOT`` is a mounted volume's path or
an ``s3://``/``gs://``/``az://`` URL, opened with fsspec; the store's credentials are in
the standard variables its backend reads). Each trial writes ``<trial>/history.jsonl``,
its exported model when kept (``<trial>/model.pt`` and/or ``<trial>/model.onnx``, the
formats of ``trial.export``), its checkpoint when ``trial.checkpoint.save``
(``<trial>/checkpoint.pt``: not a model, never counted or removed by ``models``), and
last ``<trial>/result.json``.

Which models are kept (``models``):

* ``all``: every succeeded trial's.
* ``none``: no model; results and history only.
* ``top``: the best models in rank order (the experiment's objective; ties by trial
  name), as many as fit: at most ``topK`` of them, and their sizes together at most
  ``maxBytes`` (a model's size: all its exported files). The first model that does not fit ends the list (no worse model is kept
  in its place). Each succeeded trial decides from the results already in the folder:
  it writes its model only if it is on that list, and deletes the models that fell off
  it. A trial sees at most the trials finished before it, so it never deletes a model
  that is on the list of the whole experiment; while several trials finish at the same
  moment a few extra models may remain, until the next trial finishes. The best trial's
  model is therefore always kept (unless it alone exceeds ``maxBytes``).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from kubenas.contract import SUCCEEDED, finite_number
from kubenas.contract import artifacts as art
from kubenas.contract.settings import EXPORT_SUFFIX

from kubenas_trainer.reporting.files import _json_safe

log = logging.getLogger("kubenas.trainer.artifacts")


@dataclass(frozen=True)
class Policy:
    root: str                      # where the trainer writes: a path, or a URL
    location: str                  # the same folder as users name it (pvc://..., s3://...)
    models: str = art.MODELS_ALL
    top_k: int | None = None
    max_bytes: int | None = None

    @classmethod
    def from_env(cls, env=os.environ) -> "Policy | None":
        root = env.get(art.ENV_ROOT)
        if not root:
            return None
        top_k, max_bytes = env.get(art.ENV_TOP_K), env.get(art.ENV_MAX_BYTES)
        return cls(root=root, location=env.get(art.ENV_LOCATION) or root,
                   models=env.get(art.ENV_MODELS) or art.MODELS_ALL,
                   top_k=int(top_k) if top_k else None,
                   max_bytes=parse_bytes(max_bytes) if max_bytes else None)


_UNITS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
          "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}


def parse_bytes(text: str) -> int:
    """A byte quantity (``500Mi``, ``2G``, ``1048576``; validated by the API already)."""
    text = str(text).strip()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            return int(Decimal(text[: -len(unit)]) * _UNITS[unit])
    return int(Decimal(text))


def open_root(root: str):
    """(filesystem, path) for a local folder or an object store URL."""
    import fsspec

    return fsspec.core.url_to_fs(root)


@dataclass(frozen=True)
class Stored:
    trial: str
    reward: float
    size: int


def kept(candidates: list[Stored], goal: str, top_k: int | None, max_bytes: int | None) -> list[Stored]:
    """The models ``top`` keeps: the longest prefix of the ranking within both bounds."""
    sign = -1.0 if goal == "maximize" else 1.0
    ranked = sorted(candidates, key=lambda c: (sign * c.reward, c.trial))
    out, total = [], 0
    for c in ranked:
        if (top_k is not None and len(out) >= top_k) or (max_bytes is not None and total + c.size > max_bytes):
            break
        out.append(c)
        total += c.size
    return out


def exported_files(model_file) -> dict[str, str]:
    """The files the trainer exported for ``model_file`` (the TorchScript path it was
    given; each other format of trial.export is written beside it with its suffix):
    the name each gets in the store -> its local path, in the order of ``art.MODEL_FILES``."""
    if model_file is None:
        return {}
    paths = {name: Path(model_file).with_suffix(EXPORT_SUFFIX[fmt]) for fmt, name in art.MODEL_FILES.items()}
    return {name: str(path) for name, path in paths.items() if path.exists()}


def _stored_models(fs, root: str, exclude: str) -> list[Stored]:
    """The succeeded trials in the folder that have a model (reward from result.json;
    size: all its exported files)."""
    out = []
    for entry in fs.ls(root, detail=True):
        if entry.get("type") != "directory":
            continue
        trial_dir = entry["name"].rstrip("/")
        trial = trial_dir.rsplit("/", 1)[-1]
        if trial == exclude:
            continue
        try:
            result = json.loads(fs.cat_file(art.join(trial_dir, art.RESULT_FILE)))
        except (FileNotFoundError, ValueError):
            continue
        sizes = []
        for name in art.MODEL_FILES.values():
            try:
                sizes.append(int(fs.info(art.join(trial_dir, name))["size"]))
            except (FileNotFoundError, KeyError):
                pass
        reward = finite_number(result.get("reward"))
        if sizes and result.get("status") == SUCCEEDED and reward is not None:
            out.append(Stored(trial, reward, sum(sizes)))
    return out


def _json(obj) -> str:
    return json.dumps(_json_safe(obj), allow_nan=False, separators=(",", ":"))


def publish(policy: Policy, trial: str, goal: str, result: dict, model_file=None) -> str | None:
    """Write the trial's outputs; returns where its model went (``policy.location``
    based), or None when no model was kept."""
    fs, root = open_root(policy.root)
    trial_dir = art.join(root, trial)
    fs.makedirs(trial_dir, exist_ok=True)
    history = result.get("history") or []
    fs.pipe_file(art.join(trial_dir, art.HISTORY_FILE),
                 "".join(_json(h) + "\n" for h in history).encode())
    reward = finite_number(result.get("reward"))
    files = exported_files(model_file)
    have_model = (result.get("status") == SUCCEEDED and reward is not None and bool(files)
                  and policy.models != art.MODELS_NONE)
    write_model, drop = have_model, []
    if have_model and policy.models == art.MODELS_TOP:
        others = _stored_models(fs, root, exclude=trial)
        me = Stored(trial, reward, sum(os.path.getsize(path) for path in files.values()))
        keep = {c.trial for c in kept(others + [me], goal, policy.top_k, policy.max_bytes)}
        write_model = trial in keep
        drop = [c.trial for c in others if c.trial not in keep]
    if write_model:
        for name, path in files.items():
            fs.put_file(path, art.join(trial_dir, name))
    if result.get("checkpoint"):  # kept whatever the model policy: a later trial may resume from it
        fs.put_file(result["checkpoint"], art.join(trial_dir, art.CHECKPOINT_FILE))
    summary = {k: result.get(k) for k in ("status", "reward", "reason", "message", "metrics", "device", "split")
               if k != "split" or result.get(k)}
    summary["name"] = trial
    fs.pipe_file(art.join(trial_dir, art.RESULT_FILE), _json(summary).encode())
    for other in drop:
        for name in art.MODEL_FILES.values():
            try:
                fs.rm_file(art.join(root, other, name))
                log.info("artifacts: removed %s of %s (no longer among the kept models)", name, other)
            except FileNotFoundError:
                pass  # not exported in this format, or another trial removed it first
    # The status names the first format present (TorchScript when exported); `kubenas
    # model --format` finds the others beside it.
    return art.join(policy.location, trial, next(iter(files))) if write_model else None


def publish_result(policy: Policy, name: str, trial: dict, result: dict, model_file) -> dict:
    """The trial's result with ``model`` (where its model went) and ``checkpoint`` (where
    its checkpoint went, as trainers read it: ``checkpoint_location``) once its outputs
    are written; a store that cannot be written leaves the result as it is, with the
    reason in its message (the reward stands: the search goes on without this model)."""
    goal = (trial.get("objective") or {}).get("goal") or "maximize"
    try:
        where = publish(policy, name, goal, result, model_file)
    except Exception as err:  # noqa: BLE001 - any store error (fsspec backends raise their own)
        log.error("cannot write the artifacts of %s to %s: %s", name, policy.location, err)
        note = f"artifacts not written to {policy.location}: {err}"
        return {**result, "message": "; ".join(m for m in (result.get("message"), note) if m)}
    if result.get("checkpoint"):
        result = {**result, "checkpoint": art.join(policy.root, name, art.CHECKPOINT_FILE)}
    return {**result, "model": where} if where else result
