"""The first process of a pod on the node stand-in (tests/realtier/node.py): what a
container runtime and the pause container do, as far as kubenas' pods need.

Started by the node as ``unshare --net --mount --propagation private python podinit.py
SPEC.json``, so it runs in a network namespace and a mount namespace of its own (two
pods may listen on the same port, as in a cluster). It then

* brings up the loopback interface and forwards ``127.0.0.1:443`` (the API server, as
  ``KUBERNETES_SERVICE_HOST``/``PORT`` say) to the node's Unix socket, which relays to
  the real API server: a Unix socket is the one thing both namespaces share; the same
  for each port of the node's loopback a test exposed (``forwards``: an S3 server);
* serves each of the container's ports to the node through a Unix socket (``ports``):
  the node listens on the pod's IP and relays, so the pod is reachable at
  ``status.podIP:containerPort`` as in a cluster (Endpoints, Prometheus' targets);
* bind-mounts the pod's volumes (ServiceAccount token at
  ``/var/run/secrets/kubernetes.io/serviceaccount``, emptyDirs, ConfigMaps, Secrets,
  hostPaths) and a file at the container's ``terminationMessagePath``;
* runs the container's command as its child in ``workingDir``, forwards SIGTERM and
  SIGINT to it, and exits with its exit code (128 + N when killed by signal N).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading


def _relay(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def forward(listen_port: int, unix_path: str) -> None:
    # Connect through an O_PATH descriptor: a volume mounted over the socket's folder
    # (an emptyDir at /tmp) must not hide it.
    unix_path = f"/proc/{os.getpid()}/fd/{os.open(unix_path, os.O_PATH)}"
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(256)

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(unix_path)
            except OSError:
                conn.close()
                continue
            threading.Thread(target=_relay, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=_relay, args=(upstream, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True, name="apiserver-forward").start()


def serve_port(port: int, unix_path: str) -> None:
    """The way in from the node: a connection to the Unix socket ``unix_path`` is relayed
    to ``127.0.0.1:port`` inside this pod (the node listens on the pod's IP at that port
    and relays to the socket: how Prometheus reaches a pod's metrics port)."""
    if os.path.exists(unix_path):
        os.unlink(unix_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(unix_path)
    server.listen(256)

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                upstream.connect(("127.0.0.1", port))
            except OSError:  # nothing listens (yet): the caller sees a refused connection
                conn.close()
                upstream.close()
                continue
            threading.Thread(target=_relay, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=_relay, args=(upstream, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True, name=f"port-{port}").start()


def bind_mounts(mounts: list[dict], keep_visible: list[str] = ()) -> None:
    """Bind-mount every volume at its target, parents before children. Each source is
    opened first and mounted through /proc/self/fd: a volume mounted over /tmp must not
    hide the sources of the others (which may lie under /tmp on the node); ``mount`` must
    not canonicalize that path (it would resolve it as text, in the new view). Then each
    folder of ``keep_visible`` (the image's contents: this checkout, its virtual
    environment, the Python installation) that a volume now hides is mounted again at
    its own path, as it would be in an image: an emptyDir at /tmp must not hide a
    checkout that lies under /tmp."""
    targets = [m["target"].rstrip("/") or "/" for m in mounts]
    image = [(path, os.open(path, os.O_PATH)) for path in keep_visible
             if os.path.isdir(path) and any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets)]
    opened = []
    for m in mounts:
        source = m["source"]
        if not os.path.exists(source):
            raise SystemExit(f"podinit: volume source {source} does not exist")
        opened.append((m, os.open(source, os.O_PATH)))
    for m, fd in sorted(opened, key=lambda item: item[0]["target"].rstrip("/").count("/")):
        target = m["target"]
        via = f"/proc/{os.getpid()}/fd/{fd}"
        if os.path.isdir(via):  # not the source's path: a volume mounted before may hide it
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if not os.path.exists(target):
                open(target, "a").close()
        subprocess.run(["mount", "--no-canonicalize", "--bind", via, target], check=True)
        if m.get("readOnly"):
            subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)
        os.close(fd)
    for path, fd in sorted(image, key=lambda item: item[0].count("/")):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{fd}", path], check=True)
        os.close(fd)


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    forward(spec["apiserver_port"], spec["apiserver_socket"])
    for extra in spec.get("forwards") or []:  # servers of the node's loopback the test exposed
        forward(extra["port"], extra["socket"])
    for served in spec.get("ports") or []:  # the container's ports, reached at the pod's IP
        serve_port(served["port"], served["socket"])
    bind_mounts(spec["mounts"], spec.get("keep_visible") or [])
    cwd = spec.get("workingDir") or spec["home"]
    os.makedirs(cwd, exist_ok=True)
    try:
        child = subprocess.Popen(spec["argv"], env=spec["env"], cwd=cwd, stdin=subprocess.DEVNULL)
    except OSError as err:
        print(f"podinit: cannot start {spec['argv'][:1]}: {err}", file=sys.stderr, flush=True)
        return 127

    def pass_on(signum, _frame):
        try:
            child.send_signal(signum)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, pass_on)
    signal.signal(signal.SIGINT, pass_on)
    code = child.wait()
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
