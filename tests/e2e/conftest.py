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
import shutil
import socket

import pytest

from tests.realtier.cluster import REPO, ExternalCluster, LocalCluster


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
    with installed.own_namespace() as name:
        yield name


@pytest.fixture()
def local_only(cluster):
    if not isinstance(cluster, LocalCluster):
        pytest.skip("needs the local real-API-server tier (node stand-in, audit log)")
    return cluster


@pytest.fixture()
def run_folder(local_only, namespace):
    """A folder of the test's own under the checkout's ``runs/``, which the node stand-in's
    pods see (a real cluster would mount a volume): data the test writes, models its
    trials export. Removed afterwards."""
    folder = REPO / "runs" / f"e2e-{namespace}"
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def s3_endpoint(local_only):
    """moto's S3 server on this machine's loopback, which pods reach at the same address."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    local_only.expose_host_port(port)  # pods reach it at the same address
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3_store(installed, namespace, s3_endpoint, monkeypatch):
    """The S3 server as an s3fs filesystem with this machine's credentials (the user's own
    machine has the same ones), which the Secret ``s3-creds`` in the test's namespace holds
    for its pods. moto's store is one per process: a test makes a bucket of its own."""
    import s3fs

    creds = {"AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e-secret", "AWS_DEFAULT_REGION": "us-east-1",
             "AWS_ENDPOINT_URL": s3_endpoint}
    for var, value in creds.items():
        monkeypatch.setenv(var, value)
    s3fs.S3FileSystem.clear_instance_cache()
    installed.kubectl("create", "secret", "generic", "s3-creds", "-n", namespace,
                      *[f"--from-literal={k}={v}" for k, v in creds.items()])
    return s3fs.S3FileSystem()


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
