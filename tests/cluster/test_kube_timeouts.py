"""Every API call kubenas makes has a deadline: a server that accepts the connection
and never answers (a half-open connection) fails the call instead of blocking it."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from kubernetes import client as k8s

from kubenas.cluster import kube as kube_module
from kubenas.cluster.kube import Kube


@pytest.fixture()
def silent_server():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accept, read nothing, answer nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


@pytest.mark.parametrize("call", [
    lambda k: k.get_custom("nastrials", "ns", "t"),
    lambda k: list(k.iter_custom("nastrials", "ns")),
    lambda k: k.patch_custom_status("nastrials", "ns", "t", {"status": {}}),
    lambda k: k.create("Job", "ns", {"metadata": {"name": "j"}}),
    lambda k: k.get("Job", "ns", "j"),
    lambda k: k.list_pods("ns", "job-name=j"),
    lambda k: list(k.watch_custom("nastrials", "ns", timeout_seconds=1)),
], ids=["get", "list", "patch-status", "create", "get-builtin", "list-pods", "watch"])
def test_a_silent_server_fails_the_call_in_time(silent_server, monkeypatch, call):
    monkeypatch.setattr(kube_module, "REQUEST_TIMEOUT", (1.0, 1.0))
    monkeypatch.setattr(kube_module, "WATCH_READ_MARGIN", 1.0)
    conf = k8s.Configuration(host=silent_server)
    conf.retries = 0
    k = Kube("test", k8s.ApiClient(conf))
    start = time.monotonic()
    with pytest.raises(Exception) as err:
        call(k)
    assert time.monotonic() - start < 10, "the call was not bounded by its timeout"
    assert "timed out" in str(err.value).lower() or "timeout" in type(err.value).__name__.lower(), err.value
