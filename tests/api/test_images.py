"""Image references parsed as references (kubenas.api.images), matched on registry and
repository path at component boundaries, never as strings."""
import re

import pytest
import yaml

from kubenas.api.images import REFERENCE, ImageReference, image_allowed, parse_image


@pytest.mark.parametrize("text, parsed", [
    ("ghcr.io/kubenas/kubenas-trainer:0.1.0", ImageReference("ghcr.io", "kubenas/kubenas-trainer", "0.1.0")),
    ("python:3.12", ImageReference("docker.io", "library/python", "3.12")),
    ("team/tool", ImageReference("docker.io", "team/tool")),
    ("localhost:5000/a/b:v1", ImageReference("localhost:5000", "a/b", "v1")),
    ("localhost/a", ImageReference("localhost", "a")),
    ("Registry/a", ImageReference("registry", "a")),            # upper case: only a registry can have it
    ("reg.example:443/a__b/c-d.e@sha256:" + "a" * 64,
     ImageReference("reg.example:443", "a__b/c-d.e", None, "sha256:" + "a" * 64)),
    ("ghcr.io/kubenas/x:1@sha256:" + "0" * 64, ImageReference("ghcr.io", "kubenas/x", "1", "sha256:" + "0" * 64)),
])
def test_a_reference_is_parsed_into_its_parts(text, parsed):
    assert parse_image(text) == parsed


@pytest.mark.parametrize("text", [
    "ghcr.io/kubenas/../evil/x:1", "ghcr.io/kubenas/./x", "ghcr.io//kubenas/x", "ghcr.io/kubenas/", "/x",
    "ghcr.io/Kubenas/x", "ghcr.io/kubenas/x:", "ghcr.io/kubenas/x:-1", "ghcr.io/kubenas/x@sha256:abc",
    "ghcr.io/kubenas/x y", "ghcr.io/kubenas/x:" + "a" * 129, "", "-a/b", "a-/b/c", "[::1]:5000/x", 7, None,
])
def test_what_is_not_a_reference_is_refused(text):
    assert parse_image(text) is None


@pytest.mark.parametrize("image, allowed", [
    ("ghcr.io/kubenas/kubenas-trainer:1", True),
    ("ghcr.io/kubenas/team/trainer@sha256:" + "f" * 64, True),
    ("GHCR.IO/kubenas/x:1", True),                      # the registry's name is not case-sensitive
    ("ghcr.io/kubenasevil/x:1", False),                 # not a component boundary
    ("ghcr.io/kubenas:1", True),                        # the repository the prefix names
    ("ghcr.io.evil.example/kubenas/x:1", False),
    ("docker.io/kubenas/x:1", False),
    ("kubenas/x:1", False),                             # that is docker.io/kubenas/x
])
def test_prefixes_match_component_by_component(image, allowed):
    for prefixes in (("ghcr.io/kubenas/",), ("ghcr.io/kubenas",), (" GHCR.io/kubenas/ ",)):
        assert image_allowed(parse_image(image), prefixes) is allowed


def test_docker_hub_short_names_are_matched_as_what_they_mean():
    assert image_allowed(parse_image("python:3.12"), ("docker.io/library/python",))
    assert not image_allowed(parse_image("python:3.12"), ("docker.io/library/py",))
    assert image_allowed(parse_image("evil.example/x:1"), ("*",))
    assert not image_allowed(parse_image("ghcr.io/kubenas/x"), ())


def test_the_admission_policy_uses_the_same_grammar():
    """deploy/admission.yaml carries REFERENCE as a CEL string literal."""
    with open("deploy/admission.yaml") as f:
        policy = next(d for d in yaml.safe_load_all(f) if d["metadata"]["name"] == "kubenas-experiment-spec")
    (grammar,) = [v["expression"] for v in policy["spec"]["variables"] if v["name"] == "referenceGrammar"]
    assert grammar == "'" + REFERENCE + "'"
    assert re.compile(REFERENCE)
