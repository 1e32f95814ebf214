"""Load the CRDs of crds/ and validate objects against their openAPIV3Schema.

The CRD files are the single source of truth for the API schema: the same schema
the API server enforces is enforced here, so a file valid locally is valid in a
cluster and the other way round.
"""
from __future__ import annotations

import functools
import os
import re
from pathlib import Path

import yaml
from jsonschema import Draft4Validator, ValidationError, validators

CRD_DIR_ENV = "KUBENAS_CRD_DIR"
CRD_FILES = {
    "NASExperiment": "kubenas.io_nasexperiments.yaml",
    "NASTrial": "kubenas.io_nastrials.yaml",
}


def crd_dir() -> Path:
    """Where the CRDs are: $KUBENAS_CRD_DIR (images), else the copy an installed wheel
    carries (kubenas/crds, made from crds/ at build time), else the source checkout's crds/."""
    env = os.environ.get(CRD_DIR_ENV)
    if env:
        return Path(env)
    packaged = Path(__file__).resolve().parents[1] / "crds"
    if (packaged / CRD_FILES["NASExperiment"]).is_file():
        return packaged
    return Path(__file__).resolve().parents[3] / "crds"


@functools.lru_cache(maxsize=None)
def load_crd(kind: str) -> dict:
    path = crd_dir() / CRD_FILES[kind]
    if not path.is_file():
        raise FileNotFoundError(f"CRD for {kind} not found at {path}; set {CRD_DIR_ENV} to the folder holding crds/*.yaml")
    with open(path) as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=None)
def openapi_schema(kind: str) -> dict:
    crd = load_crd(kind)
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    return version["schema"]["openAPIV3Schema"]


def _pattern(validator, pattern, instance, schema):
    """`pattern` as the API server applies it (RE2): `$` matches only at the very end,
    where Python's would also match before a trailing newline ("2Gi\n")."""
    if not validator.is_type(instance, "string"):
        return
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if not re.search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {schema['pattern']!r}")


_KubeValidator = validators.extend(Draft4Validator, {"pattern": _pattern})


@functools.lru_cache(maxsize=None)
def validator(kind: str) -> Draft4Validator:
    # OpenAPI v3.0 schemas use draft-4 semantics (boolean exclusiveMinimum). The
    # x-kubernetes-* keywords (CEL rules among them) are ignored here and checked by the
    # API server; kubenas.api.checks.pod repeats the CEL rules in Python.
    return _KubeValidator(openapi_schema(kind))


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
MAX_SHOWN_KEY = 64  # a key longer than this is cut in messages


def format_path(parts) -> str:
    """['spec', 'budget', 'maxTrials'] -> 'spec.budget.maxTrials'; list indices as [i],
    and map keys that are not plain names as Kubernetes writes them: requests[nvidia.com/gpu]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part)
        if len(part) > MAX_SHOWN_KEY:
            part = f"{part[:MAX_SHOWN_KEY - 3]}..."
        if _PLAIN_KEY.match(part):
            out += ("." if out else "") + part
        else:
            out += f"[{part}]"
    return out
