"""The CRDs bound every string, list and map a user writes, and carry the CEL rules whose
Python twins kubenas.api.validation applies locally."""
from __future__ import annotations

import pytest
import yaml

from kubenas.api.structure import MAX_EXPERIMENT_NAME
from kubenas.api.validation import validate_experiment

from .crds import CRDS, ROOT, nodes, schema

QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")


def is_unbounded(node: dict) -> bool:
    """A string without maxLength (or enum/format... a pattern alone does not bound length),
    a list without maxItems, a map without maxProperties, an int-or-string without pattern."""
    kind = node.get("type")
    return ((kind == "string" and not {"maxLength", "enum", "format"} & node.keys())
            or (kind == "array" and "maxItems" not in node)
            or (kind == "object" and isinstance(node.get("additionalProperties"), dict)
                and "maxProperties" not in node)
            or bool(node.get("x-kubernetes-int-or-string") and "pattern" not in node))


def unbounded(node: dict, path: str) -> list[str]:
    """Paths of the unbounded nodes at and below ``node``; schemaless ones (checked by
    tests/api/test_parse_bounds.py) and what is below them are left out."""
    return [where for where, below in nodes(node, path, prune=lambda n: n.get("x-kubernetes-preserve-unknown-fields"))
            if is_unbounded(below)]


@pytest.mark.parametrize("kind", CRDS)
def test_every_string_list_and_map_of_spec_and_status_is_bounded(kind):
    root = schema(kind)
    assert unbounded(root["properties"]["spec"], "spec") == []
    # status is written by kubenas itself (and, for trials, by the trainer pod): bounded too
    assert unbounded(root["properties"]["status"], "status") == []


def test_resource_quantities_use_the_kubernetes_pattern():
    spec = schema("NASExperiment")["properties"]["spec"]["properties"]
    for resources in (spec["trial"]["properties"]["template"]["properties"]["resources"],
                      spec["controller"]["properties"]["resources"]):
        for part in ("limits", "requests"):
            quantity = resources["properties"][part]["additionalProperties"]
            assert quantity["x-kubernetes-int-or-string"] is True
            assert quantity["pattern"] == QUANTITY_PATTERN


def test_cel_rules_have_python_twins():
    """The API server evaluates the CEL rules (Kubernetes 1.25+); the local validation
    cannot, so each rule's meaning is also checked in Python."""
    root = schema("NASExperiment")
    (name_rule,) = root["x-kubernetes-validations"]
    assert name_rule["rule"] == f"size(self.metadata.name) <= {MAX_EXPERIMENT_NAME}"
    (budget_rule,) = root["properties"]["spec"]["properties"]["budget"]["x-kubernetes-validations"]
    assert budget_rule["rule"] == "!has(self.parallelTrials) || self.parallelTrials <= self.maxTrials"

    experiment = yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())
    experiment["metadata"]["name"] = "n" * (MAX_EXPERIMENT_NAME + 1)
    experiment["spec"]["budget"].update(maxTrials=20, parallelTrials=21)
    assert [i.path for i in validate_experiment(experiment)] == ["metadata.name", "spec.budget.parallelTrials"]
    experiment["metadata"]["name"] = "n" * MAX_EXPERIMENT_NAME
    experiment["spec"]["budget"].update(parallelTrials=20)
    assert validate_experiment(experiment) == []


@pytest.mark.parametrize("path", sorted((ROOT / "deploy" / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_stay_within_the_bounds(path):
    assert validate_experiment(yaml.safe_load(path.read_text())) == []


def test_the_walker_finds_unbounded_fields():
    node = {"type": "object", "properties": {
        "s": {"type": "string"}, "l": {"type": "array", "items": {"type": "integer"}},
        "m": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
        "q": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "ok": {"type": "string", "enum": ["a"]}}}
    assert unbounded(node, "spec") == ["spec.s", "spec.l", "spec.m", "spec.q"]
