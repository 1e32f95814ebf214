"""Load the CRDs of crds/ and validate objects against their openAPIV3Schema.

The CRD files are the single source of truth for the API schema: the same schema
the API server enforces is enforced here, so a file valid locally is valid in a
cluster and the other way round.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml
from jsonschema import Draft4Validator

CRD_DIR_ENV = "KUBENAS_CRD_DIR"
CRD_FILES = {
    "NASExperiment": "kubenas.io_nasexperiments.yaml",
    "NASTrial": "kubenas.io_nastrials.yaml",
}


def crd_dir() -> Path:
    """Where the CRDs are: $KUBENAS_CRD_DIR (images), else the source checkout's crds/."""
    env = os.environ.get(CRD_DIR_ENV)
    if env:
        return Path(env)
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


@functools.lru_cache(maxsize=None)
def validator(kind: str) -> Draft4Validator:
    # OpenAPI v3.0 schemas use draft-4 semantics (boolean exclusiveMinimum);
    # the x-kubernetes-* keywords are ignored here and checked by the API server.
    return Draft4Validator(openapi_schema(kind))


def format_path(parts) -> str:
    """['spec', 'budget', 'maxTrials'] -> 'spec.budget.maxTrials'; list indices as [i]."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
