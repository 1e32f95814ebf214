"""What the operator itself enforces on a real API server, where admission cannot help:
the admin's policy on a cluster without the admission policies, and a trial pod that the
cluster refuses after the Job was created (Pod Security admission)."""
from __future__ import annotations

import json
import pathlib

from tests.e2e.test_cluster import apply, experiment, phase
from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until

POLICY = "kubenas-admission-policy"


def _policy_data(cluster) -> dict:
    return cluster.get_json("configmap", POLICY, "-n", OPERATOR_NS)["data"]


def _set_policy(cluster, **data) -> None:
    cluster.kubectl("patch", "configmap", POLICY, "-n", OPERATOR_NS, "--type=merge", "-p", json.dumps({"data": data}))


def _dry_run_ok(cluster, namespace: str, body: dict) -> bool:
    done = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body),
                           check=False)
    if done.returncode:
        print("dry run refused:", done.stderr)
    return done.returncode == 0


def test_without_admission_policies_the_operator_refuses_what_the_policy_forbids(installed):
    """The experiment-spec admission policy not enforced (as on a cluster older than 1.30,
    or one that left admission.yaml out): the operator reads the same ConfigMap and ends an experiment
    with a foreign image Failed (PolicyDenied) naming the field, with an Event; no
    controller and no trial pod run for it."""
    cluster = installed
    namespace = cluster.new_namespace("kubenas-nopolicy")
    binding = "validatingadmissionpolicybinding/kubenas-experiment-spec"

    def actions(*values):  # Audit only: the API server judges but lets everything through
        cluster.kubectl("patch", binding, "--type=merge", "-p", json.dumps({"spec": {"validationActions": values}}))

    body = experiment("foreign", maxTrials=1, parallelTrials=1)
    body["spec"]["trial"]["template"]["image"] = "evil.example/miner:1"
    try:
        actions("Audit")
        wait_until(lambda: _dry_run_ok(cluster, namespace, body), 30, "the API server to stop applying the policy")
        apply(cluster, namespace, body)
        wait_until(lambda: phase(cluster, namespace, "foreign") == "Failed", 120, "the operator to refuse it", 1)
        status = cluster.get_json("nasexperiment", "foreign", "-n", namespace)["status"]
        valid = [c for c in status["conditions"] if c["type"] == "Valid"][0]
        assert valid["reason"] == "PolicyDenied", valid
        assert status["message"].startswith("spec.trial.template.image: evil.example/miner:1 is not an allowed "
                                            "trainer image"), status["message"]
        assert "trainerImagePrefixes" in status["message"] and "acceptedSpec" not in status
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                 "involvedObject.name=foreign").stdout
        assert "PolicyDenied" in events
        assert not cluster.get_json("deployments,jobs", "-n", namespace)["items"]
    finally:
        actions("Deny")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    wait_until(lambda: not _dry_run_ok(cluster, "default", body), 30, "the admission policy to apply again")


def test_a_pod_refused_by_pod_security_ends_its_trial(installed):
    """The policy allows hostPath volumes, the namespace enforces the `restricted` Pod
    Security standard: the Job is created, the Job controller cannot create its pod (only
    FailedCreate Events say why). The operator finds the reason and ends the trial Failed
    (PodRefused) with Pod Security's message, deletes the Job, and the experiment ends,
    instead of a trial Pending for ever."""
    cluster = installed
    namespace = cluster.new_namespace("kubenas-psa")
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    original = _policy_data(cluster)["volumeTypes"]
    body = experiment("psa", maxTrials=1, parallelTrials=1, maxFailedTrials=0)
    template = body["spec"]["trial"]["template"]
    template["volumes"] = [{"name": "host", "hostPath": {"path": "/var/lib"}}]
    template["volumeMounts"] = [{"name": "host", "mountPath": "/host", "readOnly": True}]
    try:
        _set_policy(cluster, volumeTypes=original + ", hostPath")
        wait_until(lambda: _dry_run_ok(cluster, namespace, body), 30, "hostPath to be allowed by the policy")  # noqa
        apply(cluster, namespace, body)
        wait_until(lambda: phase(cluster, namespace, "psa") in ("Succeeded", "Failed"), 300, "the end", 1)
        trial = cluster.get_json("nastrial", "psa-0", "-n", namespace)["status"]
        assert trial["phase"] == "Failed" and trial["reason"] == "PodRefused", trial
        assert "violates PodSecurity" in trial["message"] and "hostPath" in trial["message"], trial["message"]
        wait_until(lambda: not cluster.get_json("jobs", "-n", namespace)["items"], 60, "the Job to be deleted")
        events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector",
                                 "involvedObject.name=psa-0").stdout
        assert "PodRefused" in events
    finally:
        _set_policy(cluster, volumeTypes=original)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def test_the_shipped_network_policies_are_accepted(installed, namespace):
    deploy = pathlib.Path(__file__).resolve().parents[2] / "deploy"
    # The operator's is part of the default install (applied with deploy/); it must be there.
    installed.get_json("networkpolicy", "kubenas-operator", "-n", "kubenas-system")
    installed.kubectl("apply", "--dry-run=server", "-f", str(deploy / "network-policy.yaml"))
    installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-k", str(deploy / "namespace-network-policy"))
