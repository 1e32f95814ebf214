"""The CRDs are structural (apiextensions.k8s.io/v1 rules), so the API server accepts them."""
from __future__ import annotations

import glob
import pathlib

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = sorted(glob.glob(str(ROOT / "crds" / "*.yaml")))
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
INT_OR_STRING_ANYOF = [{"type": "integer"}, {"type": "string"}]


def structural_problems(node: dict, path: str = "", in_junctor: bool = False) -> list[str]:
    problems = []
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    if in_junctor:
        for key in ("description", "type", "default", "additionalProperties", "nullable"):
            if key in node:
                problems.append(f"{path}: {key} inside a junctor")
    elif not node.get("type") and not int_or_string and not preserve:
        problems.append(f"{path}: no type")
    if int_or_string:
        if node.get("type"):
            problems.append(f"{path}: int-or-string with a type")
        if "anyOf" in node and node["anyOf"] != INT_OR_STRING_ANYOF:
            problems.append(f"{path}: int-or-string anyOf must be [integer, string]")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if node.get("additionalProperties") is False:
        problems.append(f"{path}: additionalProperties: false is not allowed")
    if node.get("type") == "object" and "items" in node:
        problems.append(f"{path}: items on an object")
    if node.get("type") == "array" and "items" not in node and not preserve:
        problems.append(f"{path}: array without items")
    for name, child in (node.get("properties") or {}).items():
        problems += structural_problems(child, f"{path}.{name}", in_junctor)
    if isinstance(node.get("additionalProperties"), dict):
        problems += structural_problems(node["additionalProperties"], f"{path}[*]", in_junctor)
    if isinstance(node.get("items"), dict):
        problems += structural_problems(node["items"], f"{path}[]", in_junctor)
    for junctor in JUNCTORS:
        branches = node.get(junctor)
        if branches is None:
            continue
        for i, branch in enumerate(branches if isinstance(branches, list) else [branches]):
            if int_or_string and junctor == "anyOf":
                continue
            problems += structural_problems(branch, f"{path}.{junctor}[{i}]", True)
            for name in (branch.get("properties") or {}):
                if name not in (node.get("properties") or {}):
                    problems.append(f"{path}: {junctor} specifies {name} which the schema does not")
    return problems


@pytest.fixture(params=CRDS, ids=lambda p: pathlib.Path(p).name)
def crd(request):
    with open(request.param) as f:
        return yaml.safe_load(f)


def test_crd_is_v1_with_status_and_printer_columns(crd):
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["spec"]["group"] == "kubenas.io"
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.kubenas.io"
    (version,) = crd["spec"]["versions"]
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    for column in version["additionalPrinterColumns"]:
        assert column["type"] in ("integer", "number", "string", "boolean", "date")
        assert column["jsonPath"].startswith(".")


def test_crd_schema_is_structural(crd):
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["type"] == "object"
    assert structural_problems(schema, "") == []
    # metadata may only restrict name and generateName
    metadata = schema["properties"].get("metadata", {})
    assert set(metadata) <= {"type"} and metadata.get("type") == "object"
    # no blanket preserve-unknown-fields on spec or status
    assert not schema["properties"]["spec"].get("x-kubernetes-preserve-unknown-fields")
    assert not schema["properties"]["status"].get("x-kubernetes-preserve-unknown-fields")


def test_the_checker_catches_non_structural_schemas():
    bad = {"type": "object", "properties": {"a": {"properties": {"b": {"type": "string"}}},
                                            "c": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
                                            "d": {"type": "array"}}}
    problems = structural_problems(bad)
    assert any(".a: no type" in p for p in problems)
    assert any(".c: properties and additionalProperties" in p for p in problems)
    assert any(".d: array without items" in p for p in problems)


def test_status_fields_written_by_the_code_exist_in_the_schema():
    """Fields pruned by the API server would be silently lost."""
    def props(kind, *path):
        with open(ROOT / "crds" / f"kubenas.io_{kind}.yaml") as f:
            node = yaml.safe_load(f)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in path:
            node = node["properties"][part]
        return set(node["properties"])

    assert {"phase", "reward", "reason", "message", "jobName", "retries", "device", "metrics", "history",
            "createdTime", "startTime", "completionTime", "conditions"} <= props("nastrials", "status")
    assert {"phase", "message", "observedGeneration", "startTime", "completionTime", "trials", "bestTrial",
            "topTrials", "paretoFront", "conditions"} <= props("nasexperiments", "status")
    assert {"created", "pending", "running", "succeeded", "failed", "earlyStopped"} <= props(
        "nasexperiments", "status", "trials")
