"""What a tenant can make kubenas parse is bounded (issue 23): nesting is checked without
recursion before anything walks an experiment, a spec too large for status.acceptedSpec
is refused naming its size, and every schemaless field of the CRDs is bounded. The API
server's side is tests/e2e/test_parse_bounds.py."""
from __future__ import annotations

import copy
import json
import sys

import pytest
import yaml

from kubenas.api.bounds import MAX_NESTING, max_spec_bytes, nesting_issue
from kubenas.api.validation import validate_experiment

from .crds import CRDS, ROOT, nodes, schema


def smoke() -> dict:
    return yaml.safe_load((ROOT / "deploy/examples/cluster-digits-smoke.yaml").read_text())


def nested(levels: int):
    """``levels`` lists inside each other, built without recursion."""
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize("levels", [900, 3000, 50_000])
def test_deep_nesting_is_named_not_a_recursion_error(levels):
    experiment = smoke()
    experiment["spec"]["trial"]["template"]["affinity"] = {"x": nested(levels)}
    assert levels > sys.getrecursionlimit() / 2  # deep enough for repr, deepcopy and json to fail
    issues = validate_experiment(experiment)
    assert len(issues) == 1, issues
    assert issues[0].path == "spec.trial.template.affinity.x[0][0][0]..."
    assert f"more than {MAX_NESTING} levels deep" in issues[0].message


def test_nesting_is_measured_from_the_top_and_names_the_first_deep_place():
    assert nesting_issue(nested(MAX_NESTING)) is None
    issue = nesting_issue({"a": nested(MAX_NESTING)})
    assert issue is not None and issue.path == "a[0][0][0][0][0][0][0]..."
    # the object itself is the first level: {spec: {x: [1, {y: ...}]}} has four
    assert nesting_issue({"spec": {"x": [1, {"y": 2}]}}, limit=4) is None
    assert nesting_issue({"spec": {"x": [1, {"y": [2]}]}}, limit=4).path == "spec.x[1].y"


def test_the_deepest_real_experiment_is_far_from_the_bound():
    """A three-level parameters space (the deepest the schema allows) nests about a dozen."""
    experiment = smoke()
    leaf = {"name": "k", "type": "categorical", "values": [1, 2]}
    level3 = {"name": "c3", "type": "categorical", "values": ["a"]}
    level2 = {"name": "c2", "type": "conditional", "options": [{"name": "o", "parameters": [level3, leaf]}]}
    level1 = {"name": "c1", "type": "conditional", "options": [{"name": "o", "parameters": [level2]}]}
    experiment["spec"]["searchSpace"] = {"type": "parameters", "parameters": [level1]}
    assert nesting_issue(experiment, limit=MAX_NESTING // 4) is None


def test_a_spec_too_large_for_the_accepted_spec_is_refused_naming_its_size_and_part():
    """The red team's 1 MiB spec: 64 env values of 16 KB."""
    experiment = smoke()
    experiment["spec"]["trial"]["template"]["env"] = [{"name": f"V{i}", "value": "x" * 16_384} for i in range(64)]
    issues = validate_experiment(experiment)
    assert [i.path for i in issues] == ["spec"], issues
    message = issues[0].message
    size = len(json.dumps(experiment["spec"], separators=(",", ":")))
    assert f"at most {max_spec_bytes()}" in message and "status.acceptedSpec" in message
    assert "most of it is spec.trial.template.env (" in message
    assert str(size // 1000) in message  # the size, give or take the defaults


def test_a_spec_just_under_the_bound_is_accepted():
    experiment = smoke()
    room = max_spec_bytes() - len(json.dumps(experiment["spec"], separators=(",", ":"))) - 4096
    experiment["spec"]["trial"]["template"]["env"] = [
        {"name": f"V{i}", "value": "x" * (room // 16 - 40)} for i in range(16)]
    assert validate_experiment(experiment) == []


def test_the_size_bound_is_the_crds():
    status = schema("NASExperiment")["properties"]["status"]["properties"]
    assert max_spec_bytes() == status["acceptedSpec"]["maxLength"]


@pytest.mark.parametrize("template, path, fragment", [
    ({"env": [{"name": "A", "value": "1", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
     "spec.trial.template.env[0]", "value or valueFrom, not both"),
    ({"env": [{"name": "A", "valueFrom": {}}]}, "spec.trial.template.env[0].valueFrom",
     "exactly one of fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef"),
    ({"volumes": [{"name": "v"}]}, "spec.trial.template.volumes[0]", "exactly one source of: emptyDir, configMap"),
    ({"volumes": [{"name": "v", "emptyDir": {}, "secret": {"secretName": "s"}}]}, "spec.trial.template.volumes[0]",
     "exactly one source"),
    ({"affinity": {"x": 1}}, "spec.trial.template.affinity.x",
     "unknown field; known fields: nodeAffinity, podAffinity, podAntiAffinity"),
    ({"env": [{"name": "A", "value": "1", "x": [1]}]}, "spec.trial.template.env[0].x", "unknown field"),
])
def test_the_crds_rules_on_env_volumes_and_affinity_hold_locally(template, path, fragment):
    experiment = smoke()
    experiment["spec"]["trial"]["template"].update(copy.deepcopy(template))
    issues = validate_experiment(experiment)
    assert any(i.path == path and fragment in i.message for i in issues), issues


def test_search_space_values_are_plain_values():
    experiment = smoke()
    experiment["spec"]["searchSpace"]["hyperparameters"] = [
        {"name": "optimizer", "type": "categorical", "values": ["sgd", ["adam"]]}]
    issues = validate_experiment(experiment)
    assert any(i.path == "spec.searchSpace.hyperparameters[0].values[1]" for i in issues), issues


# ------------------------------------------------------------------ the CRDs themselves

def schemaless(node: dict, path: str) -> list[tuple[str, dict]]:
    """Every node that keeps unknown fields (x-kubernetes-preserve-unknown-fields)."""
    return [(where, below) for where, below in nodes(node, path) if below.get("x-kubernetes-preserve-unknown-fields")]


# The one free-form map left: written only by the experiment's controller (admission lets
# no one else create a trial), from the accepted spec, whose values are plain.
CONTROLLER_WRITTEN = {"NASTrial": {"spec.architecture.parameters"}}


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_every_schemaless_field_is_a_plain_value_or_bounded(kind):
    root = schema(kind)
    assert "kopf" not in root["properties"]["status"]["properties"]  # kubenas keeps no kopf progress
    for path, node in schemaless(root, kind):
        where = path.removeprefix(f"{kind}.")
        if where in CONTROLLER_WRITTEN.get(kind, ()):
            assert node.get("maxProperties"), where
            continue
        # a string, number or boolean: a list or map here may hold nothing
        assert (node.get("maxItems"), node.get("maxProperties"), node.get("maxLength")) == (0, 0, 253), where
