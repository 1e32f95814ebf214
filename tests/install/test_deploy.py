"""deploy/: the kustomize base renders to objects a real API server accepts."""
from __future__ import annotations

import filecmp
import pathlib
import shutil
import subprocess

import pytest
import yaml
from kubernetes import client as k8s

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MODELS = {
    "Namespace": k8s.V1Namespace, "ServiceAccount": k8s.V1ServiceAccount, "ClusterRole": k8s.V1ClusterRole,
    "ClusterRoleBinding": k8s.V1ClusterRoleBinding, "RoleBinding": k8s.V1RoleBinding, "Role": k8s.V1Role,
    "Deployment": k8s.V1Deployment, "Service": k8s.V1Service,
    "CustomResourceDefinition": k8s.V1CustomResourceDefinition, "ConfigMap": k8s.V1ConfigMap,
    "ValidatingAdmissionPolicy": k8s.V1ValidatingAdmissionPolicy,
    "ValidatingAdmissionPolicyBinding": k8s.V1ValidatingAdmissionPolicyBinding,
    "NetworkPolicy": k8s.V1NetworkPolicy,
}


def load_base() -> list[dict]:
    with open(DEPLOY / "kustomization.yaml") as f:
        kustomization = yaml.safe_load(f)
    docs = []
    for resource in kustomization["resources"]:
        with open(DEPLOY / resource) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def test_deploy_crds_are_copies_of_crds():
    for name in ("kubenas.io_nasexperiments.yaml", "kubenas.io_nastrials.yaml"):
        assert filecmp.cmp(ROOT / "crds" / name, DEPLOY / "crds" / name, shallow=False), \
            f"deploy/crds/{name} differs from crds/{name}: run deploy/sync-crds.sh"


def test_every_base_object_is_a_valid_model():
    kinds = []
    for doc in load_base():
        MODELS[doc["kind"]].from_dict(doc)
        kinds.append(doc["kind"])
    assert kinds.count("CustomResourceDefinition") == 2 and "Deployment" in kinds


def test_admission_policies_read_only_parameters_the_configmap_ships():
    """deploy/admission.yaml reads params.data keys; deploy/admission-params.yaml ships each
    (tests/e2e/test_admission.py runs the policies on a real API server), and only the
    operator's own keys besides (operatorEnforcesLists, the per-namespace bounds: kubenas.api.policy)."""
    import re

    docs = load_base()
    (params,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "kubenas-admission-policy"]
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ValidatingAdmissionPolicy"}
    bindings = [d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert sorted(b["spec"]["policyName"] for b in bindings) == sorted(policies)
    for binding in bindings:
        assert binding["spec"]["validationActions"] == ["Deny"]
        ref = binding["spec"].get("paramRef")
        if ref:
            assert (ref["name"], ref["namespace"]) == (params["metadata"]["name"], params["metadata"]["namespace"])
    read = set(re.findall(r"params\.\?data\.\?(\w+)", yaml.safe_dump(policies["kubenas-experiment-spec"], width=10**6)))
    operator_only = {"operatorEnforcesLists", "operatorAllowsUncheckedReferences", "maxRunningExperimentsPerNamespace",
                     "maxTrialsInFlightPerNamespace"}
    assert read and read | operator_only == set(params["data"]), (read, set(params["data"]))


def test_operator_deployment_follows_the_rules():
    (dep,) = [d for d in load_base() if d["kind"] == "Deployment"]
    spec = dep["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == "kubenas-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]
    assert container["command"][:2] == ["kubenas", "operator"]
    from kubenas.cli import build_parser  # the flags exist

    build_parser().parse_args(container["command"][1:])


def test_namespace_rbac_component_matches_the_managed_identities():
    from kubenas.operator.manifests import namespace_role_bindings, namespace_service_accounts

    with open(DEPLOY / "namespace-rbac" / "identities.yaml") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    managed = namespace_service_accounts("ns") + namespace_role_bindings("ns")
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == \
        sorted((d["kind"], d["metadata"]["name"]) for d in managed)
    for doc in docs:
        if doc["kind"] == "RoleBinding":
            managed_rb = [m for m in managed if m["kind"] == "RoleBinding" and m["metadata"]["name"] == doc["metadata"]["name"]][0]
            assert doc["roleRef"] == managed_rb["roleRef"]


def kubectl() -> str | None:
    return shutil.which("kubectl")


@pytest.mark.skipif(kubectl() is None, reason="kubectl not installed")
def test_kubectl_kustomize_renders_the_base():
    out = subprocess.run([kubectl(), "kustomize", str(DEPLOY)], check=True, capture_output=True, text=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert sorted(d["kind"] for d in docs) == sorted(d["kind"] for d in load_base())
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"):
            assert doc["metadata"]["namespace"] == "kubenas-system"


def test_the_images_install_only_hashed_pins_matching_pyproject():
    """deploy/docker/*.in say what each image needs, from pyproject.toml; the .txt lock
    files (deploy/docker/lock.sh) pin each package with hashes, satisfying the .in."""
    import pathlib
    import re
    import tomllib

    from packaging.requirements import Requirement

    docker = pathlib.Path("deploy/docker")
    project = tomllib.loads(pathlib.Path("pyproject.toml").read_text())["project"]

    def reqs(path: pathlib.Path) -> dict:
        out = {}
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line.startswith("-r "):
                out.update(reqs(path.parent / line[3:]))
            elif line:
                r = Requirement(line)
                out[r.name.lower()] = r
        return out

    def named(specs) -> dict:
        return {r.name.lower(): r for r in map(Requirement, specs)}

    wanted = {"operator": named(project["dependencies"]),
              "trainer": {**named(project["dependencies"]),
                          **{k: v for k, v in named(project["optional-dependencies"]["train"]).items()
                             if k not in ("torch", "torchvision")},  # the base image's pair
                          **named(project["optional-dependencies"]["artifacts"]),
                          **named(project["optional-dependencies"]["serve"])}}
    for image, deps in wanted.items():
        declared = reqs(docker / f"{image}.in")
        assert {k: str(v) for k, v in declared.items()} == {k: str(v) for k, v in deps.items()}, image
        lock = (docker / f"{image}.txt").read_text()
        pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M))
        entries = re.split(r"\n(?=[A-Za-z0-9])", lock.strip())
        assert all("--hash=sha256:" in e for e in entries), image
        pins = {k.lower().replace("_", "-"): v for k, v in pins.items()}
        for name, requirement in declared.items():
            assert requirement.specifier.contains(pins[name.replace("_", "-")]), (image, name)
        assert "torch" not in pins and "torchvision" not in pins
        dockerfile = (docker / f"{image}.Dockerfile").read_text()
        assert f"--require-hashes -r deploy/docker/{image}.txt" in dockerfile and "pip install --no-deps ." in dockerfile
