"""A real Prometheus on the real-API-server tier, configured from the shipped
ServiceMonitor and PodMonitor the way Prometheus Operator configures it (Kubernetes
service discovery against the real API server, the monitors' relabelling, HTTPS and the
scraper ServiceAccounts' bearer tokens from components/prometheus-operator/scrapers.yaml),
with the PrometheusRule's rules loaded. Pods are reached at their own IPs (the node
stand-in gives each pod one on loopback and relays its ports into the pod).

After experiments with succeeded, failed, early-stopped and retried trials:

* every dashboard query, with Grafana's variables substituted (tests/observability/prom.py,
  docs/observability.md), returns data through Prometheus' HTTP API, and each series has
  the labels its legend prints; the variables' own queries list the namespace and the
  experiments;
* each alert that a run of minutes can cause is raised by it (pending or firing in
  ``ALERTS``); the two that cannot (30-minute queue waits, 10 minutes of reconcile errors)
  return data without their threshold. Their ``for:`` timings are promtool's unit tests
  (tests/observability/alerts_test.yaml).
"""
from __future__ import annotations

import base64
import json
import math
import threading
import time

import pytest
import yaml

from tests.e2e.test_cluster import apply, phase
from tests.observability import prom
from tests.realtier.cluster import OPERATOR_NS, REPO, LocalCluster
from tests.waiting import wait_until

SCRAPE_S = 5          # the monitors say 30s; 5s gives a test of minutes enough samples
MONITORING_NS = "monitoring"
SCRAPERS = prom.MONITORING / "scrapers.yaml"

# Prometheus' own identity, as kube-prometheus gives it: service discovery across namespaces.
PROMETHEUS_RBAC = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: {MONITORING_NS}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: prometheus-k8s, namespace: {MONITORING_NS}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: prometheus-k8s-discovery}}
rules:
  - apiGroups: [""]
    resources: [services, endpoints, pods]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: prometheus-k8s-discovery}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: prometheus-k8s-discovery}}
subjects: [{{kind: ServiceAccount, name: prometheus-k8s, namespace: {MONITORING_NS}}}]
"""

# A trial program (spec.trial.command under kubenas-trial) whose result is set by the
# trial's index and the experiment's mode: the outcomes are known in advance, no torch.
PROGRAM = """
import os, sys, time
mode = sys.argv[1]
index = int(os.environ["KUBENAS_TRIAL"].rsplit("-", 1)[1])
if mode == "fail" or (mode == "mixed" and index == 5):
    print("the program fails", flush=True)
    sys.exit(3)
if mode == "spot":
    time.sleep(25)
poor = mode == "mixed" and index == 4  # reported every 10 s: stopped after its first report
# The others take 10 s: the controller then lives for several scrapes with results in
# between (a controller that told its strategy everything before its first scrape, or
# exited right after, leaves the strategy-update histogram without a rate to show).
for epoch in range(1, 41):  # the others' 40 epochs cover whatever epoch it is judged at
    time.sleep(1.5 if poor else 0.25)
    accuracy = 0.1 if poor else 0.9 - 0.01 * index
    print(f"kubenas: epoch={epoch} accuracy={accuracy:.3f}", flush=True)
print(f"kubenas: final accuracy={accuracy:.3f} parameters=1000", flush=True)
"""


def program_experiment(name: str, mode: str, **budget) -> dict:
    body = yaml.safe_load((REPO / "deploy" / "examples" / "byo-script-digits.yaml").read_text())
    body["metadata"]["name"] = name
    spec = body["spec"]
    spec["searchSpace"] = {"type": "parameters", "parameters": [{"name": "x", "type": "int", "min": 0,
                                                                  "max": 4000}]}
    spec["strategy"] = {"type": "random", "seed": 5}
    spec["budget"] = {"maxTrials": 6, "parallelTrials": 2, "maxFailedTrials": 2, "trialTimeoutSeconds": 300,
                      **budget}
    spec.pop("earlyStopping", None)
    spec["trial"]["command"] = ["python", "-c", PROGRAM, mode]
    spec["trial"]["training"] = {"epochs": 4}
    spec["trial"]["template"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    return body


def secret_value(cluster, namespace: str, name: str, key: str) -> str:
    def read():
        data = cluster.get_json("secret", name, "-n", namespace).get("data") or {}
        return base64.b64decode(data[key]).decode() if data.get(key) else None
    return wait_until(read, 60, f"secret {namespace}/{name} to hold {key}")


@pytest.fixture(scope="module")
def prometheus(installed, tmp_path_factory):
    if not isinstance(installed, LocalCluster):
        pytest.skip("Prometheus runs on this machine and reaches pods at the node stand-in's pod IPs")
    work = tmp_path_factory.mktemp("prometheus")
    installed.kubectl("apply", "-f", "-", input=PROMETHEUS_RBAC)
    if SCRAPERS.exists():
        installed.kubectl("apply", "-f", str(SCRAPERS))
    token = installed.kubectl("create", "token", "prometheus-k8s", "-n", MONITORING_NS,
                              "--duration=3h").stdout.strip()
    (work / "sd-token").write_text(token)

    def secret_file(namespace: str, name: str, key: str) -> str:
        path = work / f"secret-{namespace}-{name}-{key}"
        path.write_text(secret_value(installed, namespace, name, key))
        return str(path)

    # Debian's prometheus is built without Kubernetes service discovery: the same targets
    # and __meta_kubernetes_* labels come from a file written from the API server's
    # Endpoints and Pods, read as Prometheus' ServiceAccount (prom.KubernetesDiscovery).
    discovery = prom.KubernetesDiscovery(work, prom.core_api(installed.plane.server, str(installed.plane.ca_file), token))
    jobs = []
    for name in ("servicemonitor.yaml", "podmonitor.yaml"):
        monitor = yaml.safe_load((prom.MONITORING / name).read_text())
        jobs += prom.scrape_configs(monitor, discovery=discovery.file_sd, secret_file=secret_file,
                                    interval=f"{SCRAPE_S}s")
    config = {"global": {"scrape_interval": f"{SCRAPE_S}s", "evaluation_interval": f"{SCRAPE_S}s"},
              "scrape_configs": jobs}
    discovery.start()
    server = prom.Prometheus(work, config, [prom.write_rules(work)]).start()
    server.discovery = discovery
    try:
        yield server
    finally:
        server.stop()
        discovery.stop()


def evict(cluster, namespace: str, pod: str) -> bool:
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    done = cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction", "-f", "-",
                           input=json.dumps(body), check=False)
    return done.returncode == 0


def has_data(result: list[dict]) -> bool:
    values = [v for s in result for v in ([s["value"]] if "value" in s else s.get("values", []))]
    return any(not math.isnan(float(v[1])) for v in values)


def alerts_seen(server: prom.Prometheus, start: float) -> dict[str, set]:
    """alertname -> the states (pending, firing) it was in since ``start``."""
    window = int(time.time() - start) + SCRAPE_S
    out: dict[str, set] = {}
    for s in server.query(f"max by (alertname, alertstate) (max_over_time(ALERTS[{window}s]))"):
        out.setdefault(s["metric"]["alertname"], set()).add(s["metric"]["alertstate"])
    return out


def test_every_panel_and_rule_returns_data_and_the_alerts_fire(prometheus, installed, namespace):
    cluster, server = installed, prometheus
    start = time.time()
    # The operator is scraped through its Service's endpoints, with its token, over HTTPS.
    try:
        wait_until(lambda: server.query('up{job="kubenas-operator"} == 1'), 120, "the operator's target to be up")
    except AssertionError:
        raise AssertionError(f"targets: {[(t['scrapeUrl'], t['health'], t['lastError']) for t in server.targets()]}; "
                             f"discovery errors: {server.discovery.errors[-3:]}; discovered: "
                             f"{[(f.name, f.read_text()[:2000]) for f in server.discovery.files.values()]}") from None

    # 1. succeeded (0-3), early-stopped (4: trails the median from epoch 2), failed (5)
    mixed = program_experiment("mixed", "mixed", maxTrials=6, parallelTrials=2)
    mixed["spec"]["earlyStopping"] = {"type": "median", "minTrials": 2, "startEpoch": 2}
    # 2. six trials whose first pods are evicted (spot reclaim): retried, then succeed
    spot = program_experiment("spot", "spot", maxTrials=6, parallelTrials=6, maxRetries=2)
    # 3. every trial fails: the experiment ends Failed (TooManyFailedTrials)
    failing = program_experiment("failing", "fail", maxTrials=4, parallelTrials=2, maxFailedTrials=2)
    # 4. GPU trials whose pods a ResourceQuota refuses (no GPU capacity): they stay Pending
    starved = program_experiment("starved", "spot", maxTrials=2, parallelTrials=2)
    starved["spec"]["trial"]["template"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"},
                                                         "limits": {"nvidia.com/gpu": 1}}
    cluster.kubectl("create", "quota", "no-gpus", "-n", namespace, "--hard=requests.nvidia.com/gpu=0")
    for body in (mixed, spot, failing, starved):
        apply(cluster, namespace, body)

    evicted: set[str] = set()
    stop = threading.Event()

    def evictor():
        while not stop.is_set() and len(evicted) < 6:
            for pod in cluster.pods(namespace, "app.kubernetes.io/component=trainer,kubenas.io/experiment=spot"):
                job = pod["metadata"]["labels"].get("job-name")
                if job not in evicted and (pod.get("status") or {}).get("phase") == "Running" \
                        and not pod["metadata"].get("deletionTimestamp") and evict(cluster, namespace,
                                                                                  pod["metadata"]["name"]):
                    evicted.add(job)
            stop.wait(1)

    thread = threading.Thread(target=evictor, daemon=True)
    thread.start()
    try:
        wait_until(lambda: phase(cluster, namespace, "mixed") in ("Succeeded", "Failed")
                   and phase(cluster, namespace, "spot") in ("Succeeded", "Failed")
                   and phase(cluster, namespace, "failing") in ("Succeeded", "Failed"), 900,
                   "mixed, spot and failing to finish", interval=3)
    finally:
        stop.set()
        thread.join(30)
    trials = cluster.get_json("nastrials", "-n", namespace)["items"]
    statuses = {t["metadata"]["name"]: t.get("status") or {} for t in trials}
    outcomes = {name: s.get("phase") for name, s in statuses.items()}
    assert phase(cluster, namespace, "mixed") == "Succeeded", (
        cluster.get_json("nasexperiment", "mixed", "-n", namespace)["status"], outcomes)
    assert [outcomes[f"mixed-{i}"] for i in range(6)] == ["Succeeded"] * 4 + ["EarlyStopped", "Failed"], outcomes
    assert phase(cluster, namespace, "spot") == "Succeeded" and len(evicted) == 6, (evicted, outcomes)
    assert all(statuses[f"spot-{i}"].get("retries") == 1 for i in range(6)), statuses
    assert phase(cluster, namespace, "failing") == "Failed"
    assert {outcomes[f"starved-{i}"] for i in range(2)} == {"Pending"}, statuses

    # 5. an experiment the operator refuses (InvalidSpec)
    invalid = program_experiment("invalid", "mixed")
    invalid["spec"]["objective"] = {"metric": "accuracy", "goal": "minimize"}
    apply(cluster, namespace, invalid)
    wait_until(lambda: phase(cluster, namespace, "invalid") == "Failed", 120, "invalid to fail", interval=1)

    # Prometheus has scraped the end of it all.
    def scraped_to_the_end():
        done = server.query(f'sum(kubenas_trials_finished_total{{namespace="{namespace}"}})')
        failed = server.query(f'sum(kubenas_experiments_finished_total{{namespace="{namespace}", outcome="Failed"}})')
        return done and float(done[0]["value"][1]) >= 16 and failed and float(failed[0]["value"][1]) >= 2
    wait_until(scraped_to_the_end, 120, "Prometheus to scrape the finished trials and experiments", interval=2)

    # Each alert the run causes (pending: its `for:` runs on; firing: none). Evaluated
    # every 5 s, so wait for the next evaluations.
    caused = {"KubenasExperimentFailed", "KubenasTrialsFailingRepeatedly", "KubenasTrialsPendingNoGPUCapacity",
              "KubenasTrialsPreemptedOften"}
    seen = wait_until(lambda: (lambda s: s if caused <= set(s) else None)(alerts_seen(server, start)), 120,
                      f"the alerts {sorted(caused)} (seen: {alerts_seen(server, start)})", interval=2)
    for name in ("KubenasExperimentFailed", "KubenasTrialsPreemptedOften"):  # no `for:`
        assert "firing" in seen[name], seen
    def alert_labels() -> set:
        return {(s["metric"]["alertname"], s["metric"].get("experiment"), s["metric"].get("reason"))
                for s in server.query(f'max_over_time(ALERTS{{namespace="{namespace}"}}[{int(time.time() - start) + 5}s])')}

    def failed_reasons(labels: set) -> set:
        return {r for a, _, r in labels if a == "KubenasExperimentFailed"}
    # The InvalidSpec experiment ended last: its alert comes an evaluation or two after the others.
    by_labels = wait_until(lambda: (lambda labels: labels if failed_reasons(labels) >= {"TooManyFailedTrials",
                                                                                        "InvalidSpec"} else None)(
        alert_labels()), 120, f"KubenasExperimentFailed for both reasons (seen: {alert_labels()})", interval=2)
    assert ("KubenasTrialsFailingRepeatedly", "failing", None) in by_labels, by_labels
    assert ("KubenasTrialsPendingNoGPUCapacity", "starved", None) in by_labels, by_labels
    assert ("KubenasTrialsPreemptedOften", "spot", None) in by_labels, by_labels
    assert failed_reasons(by_labels) == {"TooManyFailedTrials", "InvalidSpec"}
    assert not ({a for a, e, _ in by_labels if e in ("mixed",)}), by_labels   # a healthy experiment raises none

    # Every rule's expression returns data; the alerts the tier cannot cause in minutes
    # (30-minute queue waits; more than 3 reconcile errors a minute for 10 minutes) too,
    # without their threshold.
    end = time.time()
    for group in prom.rule_groups():
        for rule in group["rules"]:
            expr = rule["expr"] if rule.get("alert") in caused or "record" in rule else prom.strip_threshold(rule["expr"])
            if rule.get("alert") == "KubenasOperatorDown":
                continue  # test_operator_down_is_raised
            result = server.query_range(expr, start, end, SCRAPE_S)
            assert has_data(result), f"{rule.get('alert') or rule.get('record')}: no data for {expr}"

    # Every dashboard query returns data, with the labels its legend prints: for the
    # namespace with every experiment, and for two experiments chosen.
    for chosen in ({"namespace": [namespace], "experiment": ["$__all"]},
                   {"namespace": [namespace], "experiment": ["mixed", "spot"]}):
        problems = []
        for q in prom.panel_queries():
            expr = prom.interpolate(q.expr, chosen, scrape_interval_s=SCRAPE_S, range_s=end - start)
            result = server.query(expr, at=end) if q.instant else server.query_range(expr, start, end, SCRAPE_S)
            if not has_data(result):
                problems.append(f"{q}: no data for {expr}")
                continue
            for label in q.legend_labels:
                unlabelled = [s["metric"] for s in result if not s["metric"].get(label)]
                if unlabelled:
                    problems.append(f"{q}: legend {q.legend!r} but series without {label}: {unlabelled[:3]}")
        assert not problems, f"with {chosen}:\n" + "\n".join(problems)

    # The variables' queries (Grafana's label_values) list this namespace and its experiments.
    namespaces = server.api("label/namespace/values", **{"match[]": "kubenas_trials"})
    experiments = server.api("label/experiment/values", **{"match[]": f'kubenas_trials{{namespace=~"{namespace}"}}'})
    assert namespace in namespaces and {"mixed", "spot", "failing", "starved"} <= set(experiments), experiments


def test_operator_down_is_raised(prometheus, installed):
    """The operator scaled to zero: its target goes, and KubenasOperatorDown is raised
    (pending; it fires after 5 minutes: alerts_test.yaml). Scaled back after."""
    server, start = prometheus, time.time()
    installed.kubectl("-n", OPERATOR_NS, "scale", "deployment/kubenas-operator", "--replicas=0")
    try:
        wait_until(lambda: "KubenasOperatorDown" in alerts_seen(server, start), 180,
                   "KubenasOperatorDown to be raised", interval=2)
    finally:
        installed.kubectl("-n", OPERATOR_NS, "scale", "deployment/kubenas-operator", "--replicas=1")
        installed.kubectl("-n", OPERATOR_NS, "rollout", "status", "deployment/kubenas-operator", "--timeout=300s",
                          timeout=320)
    wait_until(lambda: server.query('up{job="kubenas-operator"} == 1'), 180, "the operator to be scraped again")
