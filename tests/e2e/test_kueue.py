"""Kueue queueing GPU trials on the real tier (issue 28): Kueue v0.17 built from its Go
module and installed with its own CRDs, RBAC and webhooks (tests/realtier/kueue.py).

A ClusterQueue with a quota of 2 ``nvidia.com/gpu`` and an experiment with
``parallelTrials: 4`` and 1 GPU per trial: kubenas creates 4 trial Jobs suspended with the
queue-name label, Kueue admits (unsuspends) at most 2 at a time and keeps the rest queued
(Workloads with QuotaReserved False), every trial finishes once, and the operator's
``kubenas_gpus_requested{phase="Pending"}`` shows the queued GPUs meanwhile. "At most 2"
is measured on the API server's ordered stream of the namespace's Job and Workload
changes (a watch from before the experiment exists: every ``spec.suspend`` flip and
condition, in resourceVersion order), not by sampling.
"""
from __future__ import annotations

import functools
import json
from collections import defaultdict

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_cluster import apply, experiment, phase
from tests.e2e.test_metrics_auth import OPERATOR_METRICS, running_pod, service_account_token
from tests.realtier.cluster import OPERATOR_NS
from tests.background import Background
from tests.realtier.kueue import Kueue
from tests.waiting import wait_until

QUOTA = 2
TRIALS, PARALLEL = 6, 4
KUEUE = ("kueue.x-k8s.io", "v1beta2")


def queue_objects(namespace: str) -> list[dict]:
    group = f"{KUEUE[0]}/{KUEUE[1]}"
    return [
        {"apiVersion": group, "kind": "ResourceFlavor", "metadata": {"name": "e2e-gpu"}},
        {"apiVersion": group, "kind": "ClusterQueue", "metadata": {"name": "e2e-gpus"},
         "spec": {"namespaceSelector": {}, "resourceGroups": [{
             "coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
             "flavors": [{"name": "e2e-gpu", "resources": [
                 {"name": "cpu", "nominalQuota": "16"}, {"name": "memory", "nominalQuota": "64Gi"},
                 {"name": "nvidia.com/gpu", "nominalQuota": QUOTA}]}]}]}},
        {"apiVersion": group, "kind": "LocalQueue", "metadata": {"name": "gpu-queue", "namespace": namespace},
         "spec": {"clusterQueue": "e2e-gpus"}},
    ]


@pytest.fixture()
def kueue_namespace(local_only, installed, tmp_path_factory):
    """Kueue running, a LocalQueue ``gpu-queue`` in a fresh namespace; afterwards the
    namespace and queues are deleted while Kueue still runs (it holds finalizers on them),
    then Kueue and its webhooks go."""
    cluster = local_only
    kueue = Kueue(cluster, tmp_path_factory.mktemp("kueue")).start()
    namespace = cluster.new_namespace("kubenas-kueue")
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": queue_objects(namespace)}))
        yield cluster, namespace, kueue
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--timeout=180s", check=False, timeout=200)
        cluster.kubectl("delete", "clusterqueue", "e2e-gpus", "--timeout=60s", check=False)
        cluster.kubectl("delete", "resourceflavor", "e2e-gpu", "--timeout=60s", check=False)
        kueue.stop()


class Recorder(Background):
    """Every change to the namespace's Jobs and Workloads, in the API server's order,
    from a watch started before anything exists (a thread per kind)."""

    def __init__(self, cluster, namespace: str):
        from kubernetes import client as k8s

        api = k8s.ApiClient(cluster.plane.configuration())
        self.batch, self.custom = k8s.BatchV1Api(api), k8s.CustomObjectsApi(api)
        self.namespace = namespace
        self.events: dict[str, list[tuple[str, dict]]] = {"jobs": [], "workloads": []}
        super().__init__(*(functools.partial(self._run, kind) for kind in self.events))

    def _list(self, kind: str, **kw):
        if kind == "jobs":
            return self.batch.list_namespaced_job(self.namespace, **kw).to_dict()
        return self.custom.list_namespaced_custom_object(*KUEUE, self.namespace, "workloads", **kw)

    def _run(self, kind: str) -> None:
        from kubernetes import watch

        try:
            listed = self._list(kind)
            assert not listed["items"], f"{kind} exist before the experiment"
            version = listed["metadata"]["resource_version" if kind == "jobs" else "resourceVersion"]
            while not self.stopping.is_set():
                w = watch.Watch()
                fn = (self.batch.list_namespaced_job if kind == "jobs"
                      else lambda **kw: self.custom.list_namespaced_custom_object(*KUEUE, **kw))
                args = {"namespace": self.namespace, "resource_version": version, "timeout_seconds": 5}
                if kind == "workloads":
                    args["plural"] = "workloads"
                for event in w.stream(fn, **args):
                    obj = event["object"]
                    if kind == "jobs":
                        obj = self.batch.api_client.sanitize_for_serialization(obj)
                    version = obj["metadata"]["resourceVersion"]
                    self.events[kind].append((event["type"], obj))
        except BaseException as err:  # noqa: BLE001 - the with block fails on it
            self.errors.append(err)


def _true(obj: dict, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def most_unsuspended_at_once(events: list[tuple[str, dict]]) -> int:
    """The most Jobs unsuspended and not yet finished at any point of the stream."""
    live: set[str] = set()
    most = 0
    for kind, job in events:
        name = job["metadata"]["name"]
        if kind != "DELETED" and not job["spec"].get("suspend") and not (_true(job, "Complete") or _true(job, "Failed")):
            live.add(name)
        else:
            live.discard(name)
        most = max(most, len(live))
    return most


def most_holding_quota_at_once(events: list[tuple[str, dict]]) -> int:
    """The most Workloads holding quota (QuotaReserved, not Finished) at any point."""
    live: set[str] = set()
    most = 0
    for kind, wl in events:
        name = wl["metadata"]["name"]
        if kind != "DELETED" and _true(wl, "QuotaReserved") and not _true(wl, "Finished"):
            live.add(name)
        else:
            live.discard(name)
        most = max(most, len(live))
    return most


def gpu_demand(cluster, pod: str, token: str, namespace: str, name: str) -> dict[str, float]:
    code, body = cluster.pod_request(OPERATOR_NS, pod, OPERATOR_METRICS, token)
    assert code == 200, (code, body[:300])
    return {s.labels["phase"]: s.value for fam in text_string_to_metric_families(body)
            if fam.name == "kubenas_gpus_requested" for s in fam.samples
            if s.labels.get("namespace") == namespace and s.labels.get("experiment") == name}


def test_kueue_admits_at_most_the_gpu_quota_and_every_trial_runs_once(kueue_namespace):
    cluster, namespace, kueue = kueue_namespace
    token = service_account_token(cluster, namespace, "prometheus")
    cluster.kubectl("create", "clusterrolebinding", f"{namespace}-metrics", "--clusterrole=kubenas-metrics-reader",
                    f"--serviceaccount={namespace}:prometheus")
    try:
        body = experiment("gpu-search", maxTrials=TRIALS, parallelTrials=PARALLEL)
        template = body["spec"]["trial"]["template"]
        template["queueName"] = "gpu-queue"
        template["resources"]["requests"]["nvidia.com/gpu"] = 1
        template["resources"]["limits"]["nvidia.com/gpu"] = 1
        with Recorder(cluster, namespace) as recorder:
            apply(cluster, namespace, body)

            # While trials queue: Workloads Kueue has not admitted, and the operator's GPU
            # demand counts them (Pending: trials whose pod does not run).
            def queued_and_counted():
                workloads = cluster.get_json("workloads.kueue.x-k8s.io", "-n", namespace)["items"]
                queued = [w for w in workloads if not _true(w, "QuotaReserved") and not _true(w, "Finished")]
                if len(queued) < PARALLEL - QUOTA:
                    return None
                demand = gpu_demand(cluster, operator, token, namespace, "gpu-search")
                return (queued, demand) if demand.get("Pending", 0) >= len(queued) else None

            operator = running_pod(cluster, OPERATOR_NS, "app.kubernetes.io/component=operator")
            queued, demand = wait_until(queued_and_counted, 300, "queued Workloads and their GPU demand", interval=1)
            for wl in queued:
                pending = next(c for c in wl["status"]["conditions"] if c["type"] == "QuotaReserved")
                assert pending["status"] == "False" and "nvidia.com/gpu" in pending["message"], pending

            wait_until(lambda: phase(cluster, namespace, "gpu-search") in ("Succeeded", "Failed"), 1200,
                       "the experiment to finish", interval=3)
            # the watches have seen the last changes once every Workload is Finished
            wait_until(lambda: recorder.events["workloads"] and all(
                _true(w, "Finished") for w in cluster.get_json("workloads.kueue.x-k8s.io", "-n", namespace)["items"]),
                120, "every Workload to be Finished")
        exp = cluster.get_json("nasexperiment", "gpu-search", "-n", namespace)
        assert exp["status"]["phase"] == "Succeeded", exp["status"]
        assert exp["status"]["trials"]["succeeded"] == TRIALS, exp["status"]["trials"]
        wait_until(lambda: not any(gpu_demand(cluster, operator, token, namespace, "gpu-search").values()), 60,
                   "the GPU demand to go back to 0", interval=2)
    finally:
        cluster.kubectl("delete", "clusterrolebinding", f"{namespace}-metrics", check=False)

    jobs, workloads = recorder.events["jobs"], recorder.events["workloads"]
    # Every trial once: one Job per trial, created suspended with the queue name.
    created = [job for kind, job in jobs if kind == "ADDED"]
    per_trial = defaultdict(set)
    for job in created:
        per_trial[job["metadata"]["labels"]["kubenas.io/trial"]].add(job["metadata"]["uid"])
        assert job["spec"]["suspend"] is True, job["metadata"]["name"]
        assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    assert len(per_trial) == TRIALS and all(len(uids) == 1 for uids in per_trial.values()), dict(per_trial)
    trials = cluster.get_json("nastrials", "-n", namespace)["items"]
    assert sorted(t["status"]["phase"] for t in trials) == ["Succeeded"] * TRIALS

    # At most the quota admitted at once, and the quota used.
    timeline = [(kind, job["metadata"]["name"], job["spec"].get("suspend")) for kind, job in jobs]
    assert most_unsuspended_at_once(jobs) == QUOTA, timeline
    assert most_holding_quota_at_once(workloads) == QUOTA
    admitted = {wl["metadata"]["name"] for kind, wl in workloads if _true(wl, "Admitted")}
    waited = {wl["metadata"]["name"] for kind, wl in workloads
              if kind != "DELETED" and wl.get("status", {}).get("conditions")
              and not _true(wl, "QuotaReserved") and not _true(wl, "Finished")}
    assert len(admitted) == TRIALS and len(waited) >= PARALLEL - QUOTA, (admitted, waited)
    # Kueue, not kubenas, unsuspended them: the audit log's only writes to the trial
    # Jobs' spec are one patch per Job by Kueue's ServiceAccount.
    spec_writes = defaultdict(list)
    with open(cluster.plane.audit_log) as f:
        for line in f:
            entry = json.loads(line)
            ref = entry.get("objectRef") or {}
            if (ref.get("resource") == "jobs" and ref.get("namespace") == namespace and not ref.get("subresource")
                    and entry["verb"] in ("update", "patch") and entry["responseStatus"]["code"] < 300):
                spec_writes[ref["name"]].append(entry["user"]["username"])
    assert spec_writes == {job["metadata"]["name"]: [kueue.user] for job in created}, dict(spec_writes)
    print(f"kueue: {len(created)} Jobs, most unsuspended at once {most_unsuspended_at_once(jobs)}, "
          f"{len(waited)} Workloads waited for quota; GPU demand while queued {demand}")
