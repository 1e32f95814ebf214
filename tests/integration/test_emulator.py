"""The emulated API server behaves as kubenas' clients rely on (pages, watch versions);
otherwise the integration tests and the control-plane bench would measure the emulator."""
from __future__ import annotations

import asyncio

from kubernetes import client as k8s

from kubenas.cluster.kube import Kube

from .cluster import NS


def trial(i: int) -> dict:
    return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial",
            "metadata": {"name": f"e-{i}", "namespace": NS, "labels": {"kubenas.io/experiment": "e"}},
            "spec": {"experiment": "e", "index": i}}


async def test_lists_come_in_pages_and_watches_resume_from_a_version(emulator):
    kube = Kube("controller", api=k8s.ApiClient(emulator.conf))
    for i in range(7):
        assert await asyncio.to_thread(kube.create_custom, "nastrials", NS, trial(i))
    names = await asyncio.to_thread(lambda: [t["metadata"]["name"] for t in kube.iter_custom("nastrials", NS, page=3)])
    assert names == [f"e-{i}" for i in range(7)]  # three pages, nothing twice or lost

    items, version = await asyncio.to_thread(kube.list_custom_with_version, "nastrials", NS)
    assert len(items) == 7
    assert await asyncio.to_thread(kube.create_custom, "nastrials", NS, trial(7))

    def watch_once():
        return [(e["type"], e["object"]["metadata"]["name"])
                for e in kube.watch_custom("nastrials", NS, "kubenas.io/experiment=e", version, timeout_seconds=1)]

    # From the list's version: only what came after it, and the watch ends on its timeout.
    assert await asyncio.to_thread(watch_once) == [("ADDED", "e-7")]
