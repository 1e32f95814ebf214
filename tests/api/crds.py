"""The kubenas CRDs' structural schemas (crds/), as the API tests read them."""
from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = {"NASExperiment": "kubenas.io_nasexperiments.yaml", "NASTrial": "kubenas.io_nastrials.yaml"}


def schema(kind: str) -> dict:
    """The openAPIV3Schema of ``kind``'s CRD."""
    crd = yaml.safe_load((ROOT / "crds" / CRDS[kind]).read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def nodes(node: dict, path: str, prune=None):
    """(path, node) for ``node`` and every node below it: ``.name`` for a property, ``[*]``
    for a map's values, ``[]`` for a list's items. A node for which ``prune`` is true is left
    out, with everything below it."""
    if prune is not None and prune(node):
        return
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from nodes(child, f"{path}.{name}", prune)
    if isinstance(node.get("additionalProperties"), dict):
        yield from nodes(node["additionalProperties"], f"{path}[*]", prune)
    if isinstance(node.get("items"), dict):
        yield from nodes(node["items"], f"{path}[]", prune)
