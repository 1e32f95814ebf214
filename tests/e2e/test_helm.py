"""The Helm chart charts/kubenas (generated from deploy/ by hack/helm/chart.py, checked
up to date by tests/install/test_chart.py): with
default values it renders what `kubectl kustomize deploy/` builds, with the monitoring
values what the kustomize components add, and `helm template | kubectl apply
--dry-run=server` passes on a real API server, with default and with changed values.

helm is built from the helm.sh/helm/v3 Go module by hack/helm/build.sh (cached under
~/.cache/kubenas, like the control plane); without Go these tests error, never skip.
"""
from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from tests.realtier.cluster import REPO

CHART = REPO / "charts" / "kubenas"
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


@pytest.fixture(scope="module")
def helm() -> str:
    done = subprocess.run(["bash", str(REPO / "hack/helm/build.sh")], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"hack/helm/build.sh failed:\n{done.stderr[-3000:]}"
    return done.stdout.strip().splitlines()[-1]


def template(helm: str, *args: str) -> str:
    done = subprocess.run([helm, "template", "kubenas", str(CHART), "--include-crds", *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def kustomize(path) -> str:
    return subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=True,
                          timeout=120).stdout


def _same_text(value):
    """kustomize's YAML round trip writes a folded scalar's line break before a
    more-indented line as two (the admission policies' CEL, where whitespace between
    tokens means nothing): compare strings with runs of blank lines collapsed."""
    if isinstance(value, str):
        return re.sub(r"\n\s*\n", "\n", value)
    if isinstance(value, dict):
        return {k: _same_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_text(v) for v in value]
    return value


def objects(text: str) -> dict:
    out = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc["kind"] in CLUSTER_SCOPED:  # kustomize's namespace: also lands on these; the server drops it
            doc["metadata"].pop("namespace", None)
        out[(doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])] = _same_text(doc)
    return out


def assert_same(rendered: dict, built: dict) -> None:
    assert sorted(rendered) == sorted(built)
    for key in built:
        assert rendered[key] == built[key], key


def test_default_values_render_the_kustomize_base(helm):
    assert_same(objects(template(helm)), objects(kustomize(REPO / "deploy")))


def test_monitoring_values_render_the_kustomize_components(helm, tmp_path):
    up = os.path.relpath(REPO, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [f"{up}/deploy"],
        "components": [f"{up}/deploy/components/prometheus-operator", f"{up}/deploy/components/grafana"]}))
    rendered = objects(template(helm, "--set", "monitoring.prometheusOperator=true",
                                "--set", "monitoring.grafanaDashboard=true"))
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= {kind for kind, _, _ in rendered}
    assert_same(rendered, objects(kustomize(tmp_path)))


def test_values_change_images_rbac_mode_resources_and_policy(helm):
    rendered = objects(template(
        helm, "--set", "operator.image=registry.example/kubenas-operator:1.2",
        "--set", "trainer.image=registry.example/kubenas-trainer:1.2",
        "--set", "rbac.manageNamespaces=false", "--set", "rbac.namespaces={research,vision}",
        "--set", "operator.resources.limits.memory=3Gi",
        "--set", "admission.policy.trainerImagePrefixes=registry.example/"))
    deployment = rendered[("Deployment", "kubenas-system", "kubenas-operator")]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == "registry.example/kubenas-operator:1.2"
    assert env["KUBENAS_TRAINER_IMAGE"] == "registry.example/kubenas-trainer:1.2"
    assert env["KUBENAS_MANAGE_RBAC"] == "false"
    assert container["resources"]["limits"]["memory"] == "3Gi"
    rules = rendered[("ClusterRole", None, "kubenas-operator")]["rules"]
    assert not any("bind" in r["verbs"] or "rolebindings" in r["resources"] for r in rules)  # least privilege
    for ns in ("research", "vision"):
        for kind in ("ServiceAccount", "RoleBinding"):
            assert (kind, ns, "kubenas-trainer") in rendered and (kind, ns, "kubenas-controller") in rendered
    params = rendered[("ConfigMap", "kubenas-system", "kubenas-admission-policy")]["data"]
    assert params["trainerImagePrefixes"] == "registry.example/"


def dry_run(cluster, text: str) -> subprocess.CompletedProcess:
    return cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=text)


def test_helm_template_passes_the_api_servers_dry_run(helm, installed):
    done = dry_run(installed, template(helm))
    assert "customresourcedefinition.apiextensions.k8s.io/nasexperiments.kubenas.io" in done.stdout
    assert "deployment.apps/kubenas-operator" in done.stdout


def test_helm_template_with_manual_rbac_passes_the_api_servers_dry_run(helm, installed):
    ns = installed.new_namespace("kubenas-helm")
    try:
        done = dry_run(installed, template(helm, "--set", "rbac.manageNamespaces=false",
                                           "--set", f"rbac.namespaces={{{ns}}}",
                                           "--set", "operator.resources.requests.cpu=250m"))
        assert "rolebinding.rbac.authorization.k8s.io/kubenas-trainer" in done.stdout
        assert "serviceaccount/kubenas-controller" in done.stdout
    finally:
        installed.kubectl("delete", "namespace", ns, "--wait=false", check=False)
