"""A real Kubernetes control plane on loopback, for the real-API-server test tier.

etcd, kube-apiserver and kube-controller-manager, built from their Go modules by
``hack/kube/build.sh`` (once, into a cache outside the repository), started here with
a fresh PKI, on free loopback ports, in a work folder of their own; like
controller-runtime's envtest, plus the controller manager (garbage collector, Job,
Deployment/ReplicaSet, namespace and ServiceAccount controllers). Pods are run by the
node stand-in in :mod:`tests.realtier.node`.

The API server runs with RBAC (``--authorization-mode=Node,RBAC``), its default
admission plugins plus ``OwnerReferencesPermissionEnforcement``, ServiceAccount token
signing (TokenRequest, bound tokens) and an audit log (``audit.log``, one JSON line per
request: who, verb, resource, answer), which the control-plane bench counts.

Users (static tokens; ``kubeconfig(user)`` writes a kubeconfig for one):

* ``admin``: ``system:masters``;
* ``alice``, ``bob``: no groups, no rights until a test grants them some (tenants).

By hand: ``python -m tests.realtier.controlplane`` starts one and prints the admin
kubeconfig's path; Ctrl-C stops it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "kube" / "build.sh"
USERS = {"admin": "system:masters", "alice": "", "bob": ""}


class ControlPlaneError(RuntimeError):
    pass


def build() -> Path:
    """The folder holding bin/etcd, bin/kube-apiserver, bin/kube-controller-manager
    (building them on first use: 10-25 minutes on 2 cores)."""
    explicit = os.environ.get("KUBENAS_KUBE_BIN")
    if explicit:
        return Path(explicit).parent if Path(explicit).name == "bin" else Path(explicit)
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed (exit {done.returncode}); its output is above")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_pki(folder: Path) -> None:
    """A CA, the API server's serving certificate (for 127.0.0.1, localhost and the
    in-cluster names) and the ServiceAccount signing key pair."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=kubenas-test-ca", cwd=folder)
    (folder / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
             "-subj", "/CN=kube-apiserver", cwd=folder)
    _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "apiserver.crt", "-days", "2", "-extfile", "san.cnf", cwd=folder)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=folder)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=folder)


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: None
    users: ["system:kube-controller-manager", "system:apiserver"]
    verbs: [get, list, watch]
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: Metadata
"""


@dataclass
class ControlPlane:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    workdir: Path
    bin_dir: Path | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    port: int = 0
    # kube-controller-manager's client rate limit (--kube-api-qps, --kube-api-burst), per
    # controller. None: its defaults, 20 and 30, as on a kubeadm cluster. At 20 the Job
    # controller (about 6 requests per Job: the pod, its finalizer, 3 status updates, an
    # Event) completes at most ~3.4 Jobs/s, whatever runs them; the scale bench raises it
    # so that kubenas, not that limit, is measured (bench/RESULTS.md, "Scale").
    controller_manager_qps: int | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "pki" / "ca.crt"

    @property
    def audit_log(self) -> Path:
        return self.workdir / "audit.log"

    def log(self, component: str) -> Path:
        return self.workdir / f"{component}.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 120.0) -> "ControlPlane":
        self.workdir.mkdir(parents=True, exist_ok=True)
        bins = (self.bin_dir or build()) / "bin"
        for name in ("etcd", "kube-apiserver", "kube-controller-manager"):
            if not (bins / name).exists():
                raise ControlPlaneError(f"{bins / name} is missing: run {BUILD_SCRIPT}")
        pki = self.workdir / "pki"
        make_pki(pki)
        self.tokens = {user: os.urandom(16).hex() for user in USERS}
        (pki / "tokens.csv").write_text("".join(
            f'{tok},{user},uid-{user}' + (f',"{USERS[user]}"' if USERS[user] else "") + "\n"
            for user, tok in self.tokens.items()))
        (self.workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_client, etcd_peer = free_port(), free_port()
        self.port = free_port()
        self._spawn("etcd", [
            str(bins / "etcd"), "--name", "kubenas-test", "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"kubenas-test=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--quota-backend-bytes", str(4 << 30), "--log-level", "warn"])
        self.etcd_url = f"http://127.0.0.1:{etcd_client}"
        self._spawn("kube-apiserver", [
            str(bins / "kube-apiserver"),
            "--etcd-servers", self.etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", str(self.port),
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--token-auth-file", str(pki / "tokens.csv"),
            "--authorization-mode", "Node,RBAC",
            # the node stand-in's name does not resolve; reach its kubelet endpoint (pod
            # logs) by its InternalIP, as many clusters configure
            "--kubelet-preferred-address-types", "InternalIP",
            "--enable-admission-plugins", "OwnerReferencesPermissionEnforcement",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/24",
            "--audit-policy-file", str(self.workdir / "audit-policy.yaml"),
            "--audit-log-path", str(self.audit_log), "--audit-log-format", "json",
            "--audit-log-mode", "batch", "--audit-log-batch-max-wait", "1s",
            "--profiling=false", "--v=1"])
        self._wait_ready(timeout)
        self.write_kubeconfig("admin", self.workdir / "kcm.kubeconfig")
        self._spawn("kube-controller-manager", [
            str(bins / "kube-controller-manager"),
            "--kubeconfig", str(self.workdir / "kcm.kubeconfig"),
            "--leader-elect=false",
            "--controllers", "*,-nodelifecycle,-nodeipam,-service-lb-controller,-route,-cloud-node-lifecycle,"
                             "-persistentvolume-binder,-attachdetach,-persistentvolume-expander",
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"),
            "--use-service-account-credentials=false",
            "--concurrent-job-syncs", "10", "--concurrent-gc-syncs", "20",
            # A new ResourceQuota on a custom resource (count/nasexperiments.kubenas.io) is
            # counted at the next full resync (5 min by default); until then the API server
            # refuses creates ("status unknown for quota"). tests/e2e/test_admin_baseline.py.
            "--resource-quota-sync-period", "15s",
            *(["--kube-api-qps", str(self.controller_manager_qps),
                "--kube-api-burst", str(2 * self.controller_manager_qps)] if self.controller_manager_qps else []),
            "--bind-address", "127.0.0.1", "--secure-port", "0", "--v=1"])
        self._wait_namespace("default", timeout)
        return self

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_process(proc, 15)

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def alive(self) -> dict[str, int | None]:
        """Each component's exit code (None: running)."""
        return {name: proc.poll() for name, proc in self.procs.items()}

    # ------------------------------------------------------------------ clients

    def write_kubeconfig(self, user: str, path: Path, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": user,
            "clusters": [{"name": "kubenas-test", "cluster": {
                "server": self.server, "certificate-authority": str(self.ca_file)}}],
            "users": [{"name": user, "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": user, "context": {"cluster": "kubenas-test", "user": user,
                                                     "namespace": namespace}}],
        }
        path.write_text(json.dumps(config, indent=1))
        return path

    def kubeconfig(self, user: str = "admin") -> Path:
        path = self.workdir / f"{user}.kubeconfig"
        if not path.exists():
            self.write_kubeconfig(user, path)
        return path

    def configuration(self, user: str = "admin"):
        """A kubernetes-client Configuration for this user."""
        from kubernetes import client as k8s

        conf = k8s.Configuration()
        conf.host = self.server
        conf.ssl_ca_cert = str(self.ca_file)
        conf.api_key = {"authorization": f"Bearer {self.tokens[user]}"}
        return conf

    # ------------------------------------------------------------------ internals

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = open(self.log(name), "ab")
        self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
        out.close()

    def _get(self, path: str) -> tuple[int, str]:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(self.server + path,
                                     headers={"Authorization": f"Bearer {self.tokens['admin']}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, code in self.alive().items():
                if code is not None:
                    raise ControlPlaneError(f"{name} exited with {code} while starting; see {self.log(name)}:\n"
                                            + _tail(self.log(name)))
            try:
                status, body = self._get("/readyz")
                if status == 200:
                    return
                last = body[-500:]
            except OSError as err:
                last = str(err)
            time.sleep(0.25)
        raise ControlPlaneError(f"kube-apiserver not ready after {timeout:.0f} s: {last}\n"
                                + _tail(self.log("kube-apiserver")))

    def _wait_namespace(self, name: str, timeout: float) -> None:
        """The controller manager is up once the ServiceAccount controller has made the
        namespace's default ServiceAccount."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.procs["kube-controller-manager"].poll()
            if code is not None:
                raise ControlPlaneError(f"kube-controller-manager exited with {code}:\n"
                                        + _tail(self.log("kube-controller-manager")))
            status, _ = self._get(f"/api/v1/namespaces/{name}/serviceaccounts/default")
            if status == 200:
                return
            time.sleep(0.25)
        raise ControlPlaneError(f"no default ServiceAccount in {name} after {timeout:.0f} s: the controller "
                                f"manager is not working\n" + _tail(self.log("kube-controller-manager")))


def stop_process(proc: subprocess.Popen, grace: float, group: bool = False) -> None:
    """SIGTERM to ``proc``; SIGKILL to it (to its whole process group with ``group``) if it
    has not exited within ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="kubenas-cp-"))
    plane = ControlPlane(workdir)
    try:
        plane.start()
        print(f"API server {plane.server}; admin kubeconfig: {plane.kubeconfig('admin')}", flush=True)
        print("Ctrl-C stops it", flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        plane.stop()
        if not os.environ.get("KUBENAS_KEEP_WORKDIR"):
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
