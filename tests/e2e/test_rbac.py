"""RBAC checked by the real authoriser (SubjectAccessReview through ``kubectl auth
can-i --as``): each kubenas identity may do what its code does, and nothing that would
make it a path to more power (secrets, pods, other roles, spec writes)."""
from __future__ import annotations

import pytest

from tests.e2e.test_cluster import apply, experiment, phase
from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until

OPERATOR = f"system:serviceaccount:{OPERATOR_NS}:kubenas-operator"

# (verb, resource, expected) per identity; resources as `kubectl auth can-i` takes them.
OPERATOR_RULES = [
    ("watch", "nasexperiments.kubenas.io", True), ("patch", "nasexperiments.kubenas.io/status", True),
    ("patch", "nastrials.kubenas.io/status", True), ("list", "nastrials.kubenas.io", True),
    ("create", "jobs.batch", True), ("delete", "jobs.batch", True), ("create", "deployments.apps", True),
    ("list", "pods", True), ("create", "events", True), ("create", "serviceaccounts", True),
    ("create", "rolebindings.rbac.authorization.k8s.io", True),
    ("bind", "clusterroles.rbac.authorization.k8s.io/kubenas-trainer", True),
    # spec.deploy: the serving Deployment is rolled to a newer model (patch), with its Service
    # (inferenceservices: only where KServe's CRD is installed, tests/e2e/test_deploy.py)
    ("patch", "deployments.apps", True), ("create", "services", True),
    # never:
    ("get", "secrets", False), ("create", "pods", False), ("create", "nastrials.kubenas.io", False),
    ("patch", "nastrials.kubenas.io", False), ("bind", "clusterroles.rbac.authorization.k8s.io/cluster-admin",
                                               False),
    ("escalate", "clusterroles.rbac.authorization.k8s.io", False), ("impersonate", "serviceaccounts", False),
    ("create", "serviceaccounts/token", False), ("delete", "services", False),
    ("get", "configmaps", False),
]
CONTROLLER_RULES = [
    ("get", "nasexperiments.kubenas.io", True), ("watch", "nastrials.kubenas.io", True),
    ("create", "nastrials.kubenas.io", True), ("patch", "configmaps", True),
    ("patch", "nasexperiments.kubenas.io", False), ("patch", "nastrials.kubenas.io/status", False),
    ("create", "jobs.batch", False), ("create", "pods", False), ("get", "secrets", False),
    ("delete", "nastrials.kubenas.io", False),
]
TRAINER_RULES = [
    ("get", "nastrials.kubenas.io", True), ("patch", "nastrials.kubenas.io/status", True),
    ("patch", "nastrials.kubenas.io", False), ("create", "nastrials.kubenas.io", False),
    ("list", "nastrials.kubenas.io", False), ("get", "nasexperiments.kubenas.io", False),
    ("get", "secrets", False), ("create", "pods", False), ("get", "configmaps", False),
]


SUBRESOURCES = ("status", "token", "finalizers", "binding", "eviction")


def can_i(cluster, who: str, verb: str, resource: str, namespace: str) -> bool:
    """``resource`` is TYPE, TYPE/NAME, or TYPE/SUBRESOURCE for the subresources above."""
    args = [verb, resource]
    kind, _, rest = resource.partition("/")
    if rest in SUBRESOURCES:
        args = [verb, kind, f"--subresource={rest}"]
    done = cluster.kubectl("auth", "can-i", *args, "-n", namespace, f"--as={who}", check=False)
    answer = done.stdout.strip()
    assert answer in ("yes", "no"), done.stderr
    return answer == "yes"


@pytest.fixture(scope="module")
def tenant(installed):
    """A namespace where an experiment ran, so the operator has made the namespace's
    ServiceAccounts and RoleBindings."""
    namespace = installed.new_namespace("kubenas-rbac")
    apply(installed, namespace, experiment("rbac", maxTrials=1, parallelTrials=1))
    wait_until(lambda: installed.kubectl("get", "rolebinding", "-n", namespace, "kubenas-trainer",
                                         check=False).returncode == 0, 120, "the trainer RoleBinding")
    wait_until(lambda: phase(installed, namespace, "rbac") in ("Succeeded", "Failed"), 600, "the experiment", 2)
    yield namespace
    installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


@pytest.mark.parametrize("identity,rules", [("operator", OPERATOR_RULES), ("controller", CONTROLLER_RULES),
                                            ("trainer", TRAINER_RULES)])
def test_each_identity_may_do_what_it_needs_and_no_more(cluster, tenant, identity, rules):
    who = OPERATOR if identity == "operator" else f"system:serviceaccount:{tenant}:kubenas-{identity}"
    wrong = [(verb, resource, expected) for verb, resource, expected in rules
             if can_i(cluster, who, verb, resource, tenant) != expected]
    assert not wrong, f"{identity}: (verb, resource, expected) the authoriser disagrees with: {wrong}"


def test_namespace_identities_reach_no_other_namespace(cluster, tenant):
    other = cluster.new_namespace("kubenas-other")
    try:
        for identity in ("controller", "trainer"):
            who = f"system:serviceaccount:{tenant}:kubenas-{identity}"
            assert not can_i(cluster, who, "get", "nastrials.kubenas.io", other)
            assert not can_i(cluster, who, "create", "nastrials.kubenas.io", other)
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)
