"""The cluster the end-to-end tests run against.

By default: the real-API-server tier (tests/realtier), started here once per session:
etcd, kube-apiserver and kube-controller-manager built from their Go modules, plus the
node stand-in that runs pods as local processes. With ``KUBENAS_E2E_KUBECONFIG`` set:
that cluster instead (it must pull the images; see README, "End-to-end tests"), where
the tests that need the node stand-in (killing pod processes, reading the audit log)
are skipped.

If the local tier cannot be built or started, every test here errors, loudly: CI must
never pass by skipping it. ``pytest -m "not e2e"`` leaves the tier out on purpose.
"""
from __future__ import annotations

import os
import pytest

from tests.realtier.cluster import ExternalCluster, LocalCluster


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
            if item.get_closest_marker("timeout") is None:
                # Whole experiments on 2 cores, with the cluster's start in the first one.
                item.add_marker(pytest.mark.timeout(1800))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    external = os.environ.get("KUBENAS_E2E_KUBECONFIG")
    if external:
        c = ExternalCluster(external)
        yield c
        return
    c = LocalCluster(tmp_path_factory.mktemp("realtier"))
    c.start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def installed(cluster):
    cluster.install()
    return cluster


@pytest.fixture()
def namespace(installed):
    name = installed.new_namespace()
    yield name
    installed.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture()
def local_only(cluster):
    if not isinstance(cluster, LocalCluster):
        pytest.skip("needs the local real-API-server tier (node stand-in, audit log)")
    return cluster


@pytest.fixture(scope="module")
def faulty_cluster(tmp_path_factory):
    """A second local tier whose pods reach the API server through the fault proxy."""
    if os.environ.get("KUBENAS_E2E_KUBECONFIG"):
        pytest.skip("fault injection needs the local real-API-server tier")
    from tests.realtier.faults import FaultPlan

    c = LocalCluster(tmp_path_factory.mktemp("faulty"), faults=FaultPlan())
    c.start()
    try:
        c.install()
        yield c
    finally:
        c.stop()


def pytest_terminal_summary(terminalreporter):
    """Name the real-API-server tests in the run's output (CI's log shows them, passed
    or not, and none skipped silently)."""
    rows = []
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            if "tests/e2e/" in nodeid and getattr(report, "when", "call") in ("call", "setup"):
                if outcome == "passed" and report.when != "call":
                    continue
                rows.append(f"{outcome.upper():8} {nodeid}")
    if rows:
        terminalreporter.write_sep("-", f"real-API-server tier (tests/e2e): {len(rows)} results")
        for row in rows:
            terminalreporter.write_line(row)
