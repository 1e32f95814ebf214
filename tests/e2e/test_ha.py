"""Two operator replicas on a real API server: only the holder of the Lease acts; when
it goes, the other takes over; no Job is created twice and nothing is lost."""
from __future__ import annotations

import json
from collections import Counter

from tests.e2e.test_cluster import apply, experiment, phase
from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until

SELECTOR = "app.kubernetes.io/component=operator"


def holder(cluster) -> str | None:
    lease = cluster.kubectl("get", "lease", "kubenas-operator", "-n", OPERATOR_NS, "-o", "json", check=False)
    return json.loads(lease.stdout)["spec"].get("holderIdentity") if lease.returncode == 0 else None


def running_operators(cluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.pods(OPERATOR_NS, SELECTOR)
                  if (p.get("status") or {}).get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"))


def test_two_replicas_one_leader_and_a_takeover(installed):
    cluster = installed
    namespace = cluster.new_namespace("kubenas-ha")
    cluster.kubectl("-n", OPERATOR_NS, "scale", "deployment/kubenas-operator", "--replicas=2")
    try:
        pods = wait_until(lambda: len(running_operators(cluster)) == 2 and running_operators(cluster), 120,
                          "two operator pods")
        first = wait_until(lambda: holder(cluster) in pods and holder(cluster), 60, "a leader among them")
        body = experiment("ha", maxTrials=6, parallelTrials=2)
        body["spec"]["trial"]["training"]["epochs"] = 2
        apply(cluster, namespace, body)
        wait_until(lambda: cluster.get_json("jobs", "-n", namespace)["items"], 300, "the first Jobs", 1)
        cluster.kubectl("delete", "pod", "-n", OPERATOR_NS, first, "--wait=false")
        # The standby, or the replacement the ReplicaSet starts, whichever asks first.
        wait_until(lambda: holder(cluster) not in (None, first) and holder(cluster), 90,
                   "another replica to take the lease over")
        wait_until(lambda: phase(cluster, namespace, "ha") in ("Succeeded", "Failed"), 600, "the experiment", 2)
        status = cluster.get_json("nasexperiment", "ha", "-n", namespace)["status"]
        assert status["phase"] == "Succeeded" and status["trials"]["succeeded"] == 6, status

        if hasattr(cluster, "plane"):
            # The API server's own record, by the pod each bound token names: the two
            # operators never both wrote to this namespace at once, and no Job came twice.
            writes: dict[str, list[str]] = {}
            jobs: Counter = Counter()
            with open(cluster.plane.audit_log) as f:
                for line in f:
                    e = json.loads(line)
                    user = e.get("user") or {}
                    ref = e.get("objectRef") or {}
                    if not user.get("username", "").endswith(":kubenas-operator") or ref.get("namespace") != namespace:
                        continue
                    if e.get("verb") in ("create", "update", "patch", "delete"):
                        pod = ((user.get("extra") or {}).get("authentication.kubernetes.io/pod-name") or ["?"])[0]
                        writes.setdefault(pod, []).append(e["stageTimestamp"])
                        if e["verb"] == "create" and ref.get("resource") == "jobs" and not ref.get("subresource") \
                                and (e.get("responseStatus") or {}).get("code") == 201:
                            jobs[ref.get("name")] += 1
            terms = sorted((min(t), max(t), pod) for pod, t in writes.items())
            assert len(terms) >= 2 and terms[0][2] == first, terms  # the first leader, then a successor
            for (_, end, pod), (start, _, nxt) in zip(terms, terms[1:]):
                assert end < start, f"{pod} and {nxt} both wrote at the same time"
            assert jobs and all(n == 1 for n in jobs.values()), jobs
            assert len(jobs) == 6
    finally:
        cluster.kubectl("-n", OPERATOR_NS, "scale", "deployment/kubenas-operator", "--replicas=1")
        wait_until(lambda: len(cluster.pods(OPERATOR_NS, SELECTOR)) == 1, 120, "one operator again")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
