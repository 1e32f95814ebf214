"""The attack (issue 23, metrics): anybody who reaches the operator's :9090 or a
controller's :9091 read every tenant's namespaces, experiment names, trial counts, best
rewards and GPU demand, and kopf's health endpoint showed the cluster-wide trial count.

Now both answer only over HTTPS, only to a bearer token the real API server vouches
for: 401 without a valid token, 403 for an identity without the right (the
non-resource URL /metrics for the operator, nasexperiments/metrics of the experiment for
a controller), 200 for the metrics-reader ClusterRoles (deploy/metrics-rbac.yaml).
Requests are made from inside the pods' network namespaces, as Prometheus on the pod
network would.
"""
from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.test_cluster import apply, experiment, phase
from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until

OPERATOR_METRICS = "https://127.0.0.1:9090/metrics"
CONTROLLER_METRICS = "https://127.0.0.1:9091/metrics"


def service_account_token(cluster, namespace: str, name: str) -> str:
    cluster.kubectl("create", "serviceaccount", name, "-n", namespace)
    return cluster.kubectl("create", "token", name, "-n", namespace, "--duration=20m").stdout.strip()


@pytest.fixture()
def scrapers(local_only, namespace):
    """Tokens: ``reader`` (kubenas-metrics-reader, as Prometheus), ``controllers``
    (kubenas-controller-metrics-reader, the PodMonitor's scraper), ``nobody`` (no rights)."""
    cluster, suffix = local_only, uuid.uuid4().hex[:6]
    tokens, bindings = {}, []
    for who, role in (("reader", "kubenas-metrics-reader"), ("controllers", "kubenas-controller-metrics-reader"),
                      ("nobody", None)):
        tokens[who] = service_account_token(cluster, namespace, f"scraper-{who}")
        if role:
            binding = f"e2e-{who}-{suffix}"
            cluster.kubectl("create", "clusterrolebinding", binding, f"--clusterrole={role}",
                            f"--serviceaccount={namespace}:scraper-{who}")
            bindings.append(binding)
    yield tokens
    for binding in bindings:
        cluster.kubectl("delete", "clusterrolebinding", binding, check=False)
    # The held experiments go before their namespace: an experiment still running while its
    # namespace terminates has the operator's resync try to create in it (403, logged).
    cluster.kubectl("delete", "nasexperiments", "--all", "-n", namespace, "--wait=true", "--timeout=120s",
                    check=False)


def held(name: str) -> dict:
    """An experiment that keeps running: its trials' Jobs wait suspended for a Kueue
    queue that does not exist here, so its controller pod stays up."""
    body = experiment(name, maxTrials=2, parallelTrials=1)
    body["spec"]["trial"]["template"]["queueName"] = "none"
    return body


def running_pod(cluster, namespace: str, selector: str) -> str:
    def find():
        pods = [p for p in cluster.pods(namespace, selector) if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")]
        return pods[0]["metadata"]["name"] if pods else None
    return wait_until(find, 180, f"a running pod {selector} in {namespace}", interval=1)


def test_operator_metrics_answer_only_a_token_allowed_to_get_metrics(local_only, namespace, scrapers):
    cluster = local_only
    apply(cluster, namespace, held("secret-project"))
    wait_until(lambda: phase(cluster, namespace, "secret-project") == "Running", 120, "the experiment to run")
    pod = running_pod(cluster, OPERATOR_NS, "app.kubernetes.io/component=operator")

    code, body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS)
    assert code == 401 and "send a bearer token" in body, (code, body[:500])
    assert namespace not in body and "secret-project" not in body
    code, body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS, "not-a-token")
    assert code == 401 and "secret-project" not in body, (code, body[:500])
    code, body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS, scrapers["nobody"])
    assert code == 403 and f"system:serviceaccount:{namespace}:scraper-nobody may not get /metrics" in body, \
        (code, body[:500])
    # The controllers' scraper token, which every controller pod receives, reads no operator metrics.
    code, body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS, scrapers["controllers"])
    assert code == 403 and "secret-project" not in body, (code, body[:500])
    # Plain HTTP is not served.
    code, body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS.replace("https", "http"), scrapers["reader"])
    assert code == 0 and "secret-project" not in body, (code, body[:500])

    last = {}

    def scraped():
        last["code"], body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS, scrapers["reader"])
        last["body"] = body[:800]
        return body if last["code"] == 200 and f'experiment="secret-project",namespace="{namespace}"' in body else None
    try:
        body = wait_until(scraped, 60, "the reader to scrape the experiment's series", interval=1)
    except AssertionError as err:
        raise AssertionError(f"{err}; the last answer: {last}") from None
    assert "kubenas_experiments{" in body and "kubenas_trials{" in body and "kubenas_gpus_requested{" in body


def test_the_health_endpoint_shows_no_counts(local_only):
    cluster = local_only
    pod = running_pod(cluster, OPERATOR_NS, "app.kubernetes.io/component=operator")
    code, body = cluster.pod_request(OPERATOR_NS, pod, "http://127.0.0.1:8080/healthz")
    assert code == 200, (code, body)
    assert set(json.loads(body)) == {"progress"}, body  # seconds since the resync loop's last pass; no trial count


def test_controller_metrics_answer_only_a_token_allowed_on_its_experiment(local_only, namespace, scrapers):
    cluster = local_only
    apply(cluster, namespace, held("watched"))
    wait_until(lambda: cluster.get_json("nastrials", "-n", namespace)["items"], 180, "the controller's first trial",
               interval=1)
    pod = running_pod(cluster, namespace, "app.kubernetes.io/component=controller")

    code, body = cluster.pod_request(namespace, pod, CONTROLLER_METRICS)
    assert code == 401 and "send a bearer token" in body and "watched" not in body, (code, body[:500])
    code, body = cluster.pod_request(namespace, pod, CONTROLLER_METRICS, "not-a-token")
    assert code == 401 and "watched" not in body, (code, body[:500])
    code, body = cluster.pod_request(namespace, pod, CONTROLLER_METRICS, scrapers["nobody"])
    assert code == 403 and "may not get /metrics" in body and "watched" not in body, (code, body[:500])
    series = f'kubenas_controller_proposals_total{{experiment="watched",namespace="{namespace}"}}'
    for who in ("controllers", "reader"):
        code, body = cluster.pod_request(namespace, pod, CONTROLLER_METRICS, scrapers[who])
        assert code == 200 and series in body, (who, code, body[:500])
