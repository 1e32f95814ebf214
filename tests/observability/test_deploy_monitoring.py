"""The Grafana dashboard is a well-formed dashboard model; deploy/ renders with and
without the monitoring components."""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "components/grafana/dashboards/kubenas.json"
PANEL_TYPES = {"timeseries", "stat", "heatmap", "bargauge", "row", "table", "gauge", "text"}


def test_dashboard_is_a_grafana_dashboard_model():
    board = json.loads(DASHBOARD.read_text())
    for key in ("title", "uid", "schemaVersion", "panels", "templating", "time"):
        assert key in board, key
    assert board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "experiment"} <= set(variables)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = set()
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        titles.add(panel["title"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs))
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"]
    wanted = ["Experiments by phase", "Trials by phase", "Best reward per experiment", "Trial duration distribution",
              "Queue wait distribution", "GPU demand vs running"]
    assert set(wanted) <= titles
    kinds = {p["title"]: p["type"] for p in board["panels"]}
    assert kinds["Trial duration distribution"] == "heatmap" and kinds["Queue wait distribution"] == "heatmap"


def _kustomize(directory: pathlib.Path) -> list[dict]:
    kubectl = shutil.which("kubectl") or ("/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else None)
    if not kubectl:
        pytest.skip("kubectl is not installed")
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_base_renders_with_the_metrics_service():
    docs = _kustomize(DEPLOY)
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ServiceMonitor", "PrometheusRule", "PodMonitor"}, "the base must not need Prometheus Operator"
    (svc,) = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "kubenas-operator"]
    assert svc["spec"]["ports"][0]["name"] == "metrics" and svc["spec"]["ports"][0]["port"] == 9090


def test_overlay_with_the_monitoring_components_renders(tmp_path):
    rel = os.path.relpath(DEPLOY, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": [rel],
        "components": [f"{rel}/components/prometheus-operator", f"{rel}/components/grafana"]}))
    docs = _kustomize(tmp_path)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    (sm,) = by_kind["ServiceMonitor"]
    (svc,) = [s for s in by_kind["Service"] if s["metadata"]["name"] == "kubenas-operator"]
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] == "metrics" and sm["spec"]["endpoints"][0]["honorLabels"] is True
    (pm,) = by_kind["PodMonitor"]
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    # HTTPS and a bearer token each, of a scraper that may read only what it scrapes: the
    # PodMonitor's token goes to pods in tenant namespaces, so it cannot read the operator's.
    secrets = {s["metadata"]["name"]: s for s in by_kind["Secret"]}
    bindings = {b["metadata"]["name"]: b for b in by_kind["ClusterRoleBinding"]}
    roles = {r["metadata"]["name"]: r for r in _kustomize(DEPLOY) if r["kind"] == "ClusterRole"}
    for endpoint, reader in ((sm["spec"]["endpoints"][0], "kubenas-metrics-reader"),
                             (pm["spec"]["podMetricsEndpoints"][0], "kubenas-controller-metrics-reader")):
        assert endpoint["scheme"] == "https" and endpoint["authorization"]["type"] == "Bearer"
        secret = secrets[endpoint["authorization"]["credentials"]["name"]]
        assert secret["type"] == "kubernetes.io/service-account-token"
        account = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
        (binding,) = [b for b in bindings.values() if b["subjects"][0]["name"] == account]
        assert binding["roleRef"]["name"] == reader and reader in roles
    assert [r.get("nonResourceURLs") for r in roles["kubenas-controller-metrics-reader"]["rules"]] == [None]
    (rule,) = by_kind["PrometheusRule"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {"KubenasOperatorDown", "KubenasExperimentFailed", "KubenasTrialsFailingRepeatedly",
            "KubenasTrialsPendingNoGPUCapacity"} <= alerts
    (cm,) = [c for c in by_kind["ConfigMap"] if c["metadata"]["name"] == "kubenas-grafana-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "kubenas-system"
    assert json.loads(cm["data"]["kubenas.json"]) == json.loads(DASHBOARD.read_text())


def test_controller_pods_expose_a_metrics_port():
    from kubenas.operator.manifests import CONTROLLER_METRICS_PORT, Settings, controller_deployment

    exp = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
           "metadata": {"name": "e", "namespace": "ns", "uid": "u"}}
    dep = controller_deployment(exp, {"strategy": {"type": "random"}}, Settings())
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": CONTROLLER_METRICS_PORT} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBENAS_CONTROLLER_METRICS_PORT"] == str(CONTROLLER_METRICS_PORT)


def test_network_policies_select_the_pods_kubenas_builds():
    """The base's NetworkPolicy (the operator's /metrics, installed by default) and
    namespace-network-policy (controllers' /metrics, trainers) select exactly the pods of
    deploy/ and of the operator's builders, on the ports they serve, from namespaces an
    admin labelled (not any namespace that happens to be named "monitoring")."""
    from kubenas.operator.manifests import CONTROLLER_METRICS_PORT, Settings, controller_deployment, job_for_trial

    docs = _kustomize(DEPLOY)
    (operator_policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    scraper = {"namespaceSelector": {"matchLabels": {"kubenas.io/metrics-scraper": "true"}}}
    assert operator_policy["spec"]["ingress"][0]["from"] == [scraper]
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "kubenas-operator"]
    assert operator_policy["spec"]["podSelector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    assert operator_policy["spec"]["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 9090}]

    policies = {d["metadata"]["name"]: d for d in _kustomize(DEPLOY / "namespace-network-policy")}
    exp = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
           "metadata": {"name": "e", "namespace": "ns", "uid": "u"}}
    controller = controller_deployment(exp, {"strategy": {"type": "random"}}, Settings())
    trial = {"metadata": {"name": "e-0", "namespace": "ns", "uid": "t"}, "spec": {"experiment": "e", "index": 0}}
    from kubenas.api.defaults import with_defaults
    trainer = job_for_trial(trial, with_defaults({}), Settings())
    for name, pod_labels in (("kubenas-controller", controller["spec"]["template"]["metadata"]["labels"]),
                             ("kubenas-trainer", trainer["spec"]["template"]["metadata"]["labels"])):
        assert policies[name]["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items(), name
    assert policies["kubenas-controller"]["spec"]["ingress"][0]["ports"][0]["port"] == CONTROLLER_METRICS_PORT
    assert policies["kubenas-controller"]["spec"]["ingress"][0]["from"] == [scraper]
    assert "ingress" not in policies["kubenas-trainer"]["spec"]  # nothing may reach a trainer
