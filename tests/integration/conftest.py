from __future__ import annotations

import kmock
import pytest
from kubernetes import client as k8s

from kubenas.cluster import kube

from . import rbac
from .cluster import running
from .emulator import RealisticEmulator

# Permissions used by the code across the whole integration run (see test_zz_rbac.py).
USED_PERMISSIONS: set = set()


@pytest.fixture()
async def emulator():
    emu = RealisticEmulator()
    async with emu, kmock.Server(emu) as server:
        conf = k8s.Configuration(host=str(server.url).rstrip("/"))
        kube.use_config(conf)
        emu.conf = conf
        try:
            yield emu
        finally:
            kube.use_config(None)
        violations, used = rbac.check_calls(emu.calls)
        USED_PERMISSIONS.update(used)
        assert not violations, "calls deploy/rbac.yaml does not allow:\n" + "\n".join(sorted(set(violations)))


@pytest.fixture()
async def cluster(emulator):
    async with running(emulator) as c:
        yield c


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(120))
