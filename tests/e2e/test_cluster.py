"""End-to-end tests against a real cluster (Kubernetes 1.23+, RBAC on).

Run only when KUBENAS_E2E_KUBECONFIG points at a kubeconfig (skipped otherwise). The
images named in deploy/ (or set with KUBENAS_E2E_OPERATOR_IMAGE / _TRAINER_IMAGE) must
be pullable by the cluster. These tests install kubenas with `kubectl apply -k deploy/`
and leave it installed; each test uses its own namespace and deletes it afterwards.
See README.md, "End-to-end tests".
"""
from __future__ import annotations

import glob
import json
import os
import pathlib
import subprocess
import time
import uuid

import pytest
import yaml

pytestmark = pytest.mark.e2e
KUBECONFIG = os.environ.get("KUBENAS_E2E_KUBECONFIG")
if not KUBECONFIG:
    pytest.skip("KUBENAS_E2E_KUBECONFIG is not set", allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPERATOR_IMAGE = os.environ.get("KUBENAS_E2E_OPERATOR_IMAGE")
TRAINER_IMAGE = os.environ.get("KUBENAS_E2E_TRAINER_IMAGE")


def kubectl(*args, input=None, check=True) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, *args], input=input, text=True,
                          capture_output=True, check=check)


def get_json(*args) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture(scope="session")
def installed():
    kubectl("apply", "--dry-run=server", "-f", str(ROOT / "crds"))
    kubectl("apply", "-k", str(ROOT / "deploy"))
    if OPERATOR_IMAGE or TRAINER_IMAGE:
        env = [f"KUBENAS_TRAINER_IMAGE={TRAINER_IMAGE}"] if TRAINER_IMAGE else []
        if OPERATOR_IMAGE:
            kubectl("-n", "kubenas-system", "set", "image", "deployment/kubenas-operator", f"operator={OPERATOR_IMAGE}")
            env.append(f"KUBENAS_CONTROLLER_IMAGE={OPERATOR_IMAGE}")
        kubectl("-n", "kubenas-system", "set", "env", "deployment/kubenas-operator", *env)
    kubectl("-n", "kubenas-system", "rollout", "status", "deployment/kubenas-operator", "--timeout=300s")
    kubectl("wait", "--for=condition=Established", "crd/nasexperiments.kubenas.io", "crd/nastrials.kubenas.io")
    return True


@pytest.fixture()
def namespace(installed):
    name = f"kubenas-e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def experiment(name: str, **budget) -> dict:
    with open(ROOT / "deploy" / "examples" / "cluster-digits-smoke.yaml") as f:
        body = yaml.safe_load(f)
    body["metadata"]["name"] = name
    body["spec"]["budget"].update(budget)
    if TRAINER_IMAGE:
        body["spec"]["trial"]["template"]["image"] = TRAINER_IMAGE
    return body


def test_every_example_is_accepted_by_the_api_server(namespace):
    for path in sorted(glob.glob(str(ROOT / "deploy" / "examples" / "*.yaml"))):
        kubectl("apply", "--dry-run=server", "-n", namespace, "-f", path)


def test_digits_experiment_succeeds_then_delete_cleans_up(namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(experiment("e2e-digits", maxTrials=6,
                                                                              parallelTrials=2)))
    def phase():
        return (get_json("nasexperiment", "e2e-digits", "-n", namespace).get("status") or {}).get("phase")
    wait(lambda: phase() in ("Succeeded", "Failed"), 1800, "the experiment to finish")
    exp = get_json("nasexperiment", "e2e-digits", "-n", namespace)
    assert exp["status"]["phase"] == "Succeeded", exp["status"]
    assert exp["status"]["trials"]["succeeded"] == 6
    assert exp["status"]["bestTrial"]["reward"] > 0
    table = kubectl("get", "nasexperiments", "-n", namespace).stdout
    for column in ("PHASE", "STRATEGY", "SUCCEEDED", "BEST"):
        assert column in table
    assert "Succeeded" in table and "random" in table
    # The pods ran under their own ServiceAccounts.
    sas = {p["spec"]["serviceAccountName"] for p in get_json("pods", "-n", namespace)["items"]}
    assert "kubenas-trainer" in sas

    kubectl("delete", "nasexperiment", "e2e-digits", "-n", namespace, "--wait=true", "--timeout=120s")
    wait(lambda: not get_json("nastrials", "-n", namespace)["items"]
         and not get_json("jobs", "-n", namespace)["items"]
         and not get_json("deployments", "-n", namespace)["items"], 180, "cascading deletion")


def test_senseless_experiment_fails_with_a_condition(namespace):
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(experiment("e2e-bad", maxTrials=2,
                                                                              parallelTrials=5)))
    wait(lambda: (get_json("nasexperiment", "e2e-bad", "-n", namespace).get("status") or {}).get("phase") == "Failed",
         120, "Failed")
    status = get_json("nasexperiment", "e2e-bad", "-n", namespace)["status"]
    assert any("spec.budget.parallelTrials" in c.get("message", "") for c in status["conditions"])
    assert not get_json("nastrials", "-n", namespace)["items"]
    assert not get_json("deployments", "-n", namespace)["items"]
    events = kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=e2e-bad").stdout
    assert "InvalidSpec" in events
