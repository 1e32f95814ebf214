"""Runs last (file order): the RBAC of deploy/ is exactly what the code uses.

Each integration test already fails if a component made a call its ClusterRole does
not allow (tests/integration/conftest.py). This checks the other direction: every rule
granted is used by some call of the integration run -- no spare privileges.
"""
from __future__ import annotations

import pytest

from . import rbac
from .conftest import USED_PERMISSIONS


def test_every_granted_permission_is_used():
    components = {p[0] for p in USED_PERMISSIONS}
    if components != {"kubenas-operator", "kubenas-controller", "kubenas-trainer"} or len(USED_PERMISSIONS) < 20:
        pytest.skip("needs the whole integration folder to have run first")
    unused = rbac.granted() - USED_PERMISSIONS - rbac.NOT_CALLS
    assert not unused, f"granted but never used (remove from deploy/rbac.yaml): {sorted(unused)}"


def test_permission_parsing():
    assert rbac.permission("GET", "/apis/kubenas.io/v1alpha1/namespaces/ns/nastrials", {}) == \
        ("kubenas.io", "nastrials", "list")
    assert rbac.permission("GET", "/apis/kubenas.io/v1alpha1/nastrials", {"watch": "true"}) == \
        ("kubenas.io", "nastrials", "watch")
    assert rbac.permission("PATCH", "/apis/kubenas.io/v1alpha1/namespaces/ns/nastrials/t/status", {}) == \
        ("kubenas.io", "nastrials/status", "patch")
    assert rbac.permission("POST", "/api/v1/namespaces/ns/events", {}) == ("", "events", "create")
    assert rbac.permission("GET", "/apis/batch/v1", {}) is None
