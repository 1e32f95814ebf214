"""Reuse the emulated cluster of tests/integration (kmock API server, fake kube-controller-manager)."""
from __future__ import annotations

import pytest

from tests.integration.conftest import cluster, emulator  # noqa: F401  (fixtures)


def pytest_collection_modifyitems(items):
    for item in items:
        if "observability" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(120))
