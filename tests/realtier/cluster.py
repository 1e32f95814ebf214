"""Handles on a cluster for the end-to-end tests: the local real-API-server tier
(:class:`LocalCluster`) or any cluster named by a kubeconfig (:class:`ExternalCluster`),
with the same methods (kubectl, install, namespaces, pod logs, restarts)."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.waiting import wait_until

from .controlplane import ControlPlane, ControlPlaneError, stop_process
from .node import pod_log

REPO = Path(__file__).resolve().parents[2]
OPERATOR_NS = "kubenas-system"


class _Cluster:
    kubeconfig: str

    def kubectl(self, *args, input=None, check=True, user: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess:
        config = self.kubeconfig if user is None else self.user_kubeconfig(user)
        done = subprocess.run(["kubectl", "--kubeconfig", str(config), *args], input=input, text=True,
                              capture_output=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def get_json(self, *args, user: str | None = None) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json", user=user).stdout)

    def user_kubeconfig(self, user: str) -> str:
        raise NotImplementedError

    def new_namespace(self, prefix: str = "kubenas-e2e") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.kubectl("create", "namespace", name)
        return name

    @contextlib.contextmanager
    def own_namespace(self, prefix: str = "kubenas-e2e"):
        """A new namespace for the ``with`` block, deleted (without waiting) after it."""
        name = self.new_namespace(prefix)
        try:
            yield name
        finally:
            self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def install(self) -> None:
        self.kubectl("apply", "--dry-run=server", "-f", str(REPO / "crds"))
        self.kubectl("apply", "-k", str(REPO / "deploy"))
        self.wait_established()
        self.customise()
        self.kubectl("-n", OPERATOR_NS, "rollout", "status", "deployment/kubenas-operator", "--timeout=300s",
                     timeout=320)

    def customise(self) -> None:
        pass

    def wait_established(self, timeout: float = 60) -> None:
        """Until the API server serves both CRDs (condition Established). Polled: `kubectl
        wait` fails outright while a just-applied CRD has no conditions yet."""
        def established() -> bool:
            done = self.kubectl("get", "crd", "nasexperiments.kubenas.io", "nastrials.kubenas.io", "-o",
                                'jsonpath={range .items[*]}{.status.conditions[?(@.type=="Established")].status}{" "}{end}',
                                check=False)
            return done.returncode == 0 and done.stdout.split() == ["True", "True"]

        wait_until(established, timeout, "the kubenas CRDs to be established")

    def pods(self, namespace: str, selector: str | None = None) -> list[dict]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        return self.get_json(*args)["items"]

    def restarts(self, namespace: str, selector: str) -> int:
        return sum(cs.get("restartCount", 0) for p in self.pods(namespace, selector)
                   for cs in (p.get("status") or {}).get("containerStatuses") or [])

    def logs(self, namespace: str, pod: str) -> str:
        return self.kubectl("logs", "-n", namespace, pod, "--all-containers", check=False).stdout

    def restarts_ever(self, namespace: str, prefix: str) -> int:
        """Container restarts of the pods whose name starts with ``prefix``, including
        pods already deleted where the cluster can tell (here: only live pods)."""
        return sum(cs.get("restartCount", 0) for p in self.pods(namespace)
                   if p["metadata"]["name"].startswith(prefix)
                   for cs in (p.get("status") or {}).get("containerStatuses") or [])

    def logs_ever(self, namespace: str, prefix: str) -> str:
        """What the pods whose name starts with ``prefix`` printed (here: live pods)."""
        return "".join(self.logs(namespace, p["metadata"]["name"]) for p in self.pods(namespace)
                       if p["metadata"]["name"].startswith(prefix))


class ExternalCluster(_Cluster):
    """A cluster that pulls the images itself (KUBENAS_E2E_KUBECONFIG)."""

    def __init__(self, kubeconfig: str):
        self.kubeconfig = kubeconfig
        self.operator_image = os.environ.get("KUBENAS_E2E_OPERATOR_IMAGE")
        self.trainer_image = os.environ.get("KUBENAS_E2E_TRAINER_IMAGE")

    def customise(self) -> None:
        env = [f"KUBENAS_TRAINER_IMAGE={self.trainer_image}"] if self.trainer_image else []
        if self.operator_image:
            self.kubectl("-n", OPERATOR_NS, "set", "image", "deployment/kubenas-operator",
                         f"operator={self.operator_image}")
            env.append(f"KUBENAS_CONTROLLER_IMAGE={self.operator_image}")
        if env:
            self.kubectl("-n", OPERATOR_NS, "set", "env", "deployment/kubenas-operator", *env)


_GET = """
import ssl, sys, urllib.error, urllib.request
url, token = sys.argv[1], sys.argv[2]
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
try:
    answer = urllib.request.urlopen(request, context=context, timeout=30)
    code, body = answer.status, answer.read()
except urllib.error.HTTPError as err:
    code, body = err.code, err.read()
except Exception as err:
    code, body = 0, repr(err).encode()
sys.stdout.write(str(code) + chr(10) + body.decode(errors="replace"))
"""


class LocalCluster(_Cluster):
    """The real-API-server tier on this machine: control plane + node stand-in."""

    def __init__(self, workdir: Path, max_backoff: float = 10.0, faults=None,
                 controller_manager_qps: int | None = None):
        self.workdir = Path(workdir)
        self.plane = ControlPlane(self.workdir / "controlplane", controller_manager_qps=controller_manager_qps)
        self.state = self.workdir / "node"
        self.node: subprocess.Popen | None = None
        self.max_backoff = max_backoff
        self.faults = faults  # a tests.realtier.faults.FaultPlan: pods reach the API server through it
        self.proxy = None

    @property
    def kubeconfig(self) -> str:
        return str(self.plane.kubeconfig("admin"))

    def user_kubeconfig(self, user: str) -> str:
        return str(self.plane.kubeconfig(user))

    def start(self) -> None:
        self.plane.start()
        if self.faults is not None:
            from .faults import FaultProxy

            pki = self.plane.workdir / "pki"
            self.proxy = FaultProxy(self.plane.port, str(pki / "ca.crt"), str(pki / "apiserver.crt"),
                                    str(pki / "apiserver.key"), self.faults).start()
        self.start_node()

    def start_node(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
        out = open(self.state / "node.log", "ab")
        self.node = subprocess.Popen(
            [sys.executable, "-m", "tests.realtier.node", "--kubeconfig", self.kubeconfig, "--state",
             str(self.state), "--apiserver-port", str(self.proxy.port if self.proxy else self.plane.port),
             "--ca-file", str(self.plane.ca_file),
             "--path", path, "--max-backoff", str(self.max_backoff)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        wait_until(lambda: self.node.poll() is not None or self.kubectl("get", "node", "kubenas-node",
                                                                        check=False).returncode == 0,
                   60, "the node stand-in to register")
        if self.node.poll() is not None:
            raise ControlPlaneError(f"the node stand-in exited: {(self.state / 'node.log').read_text()[-3000:]}")

    def stop(self) -> None:
        if self.node:
            stop_process(self.node, 20, group=True)
        if self.proxy:
            self.proxy.stop()
        self.plane.stop()

    def customise(self) -> None:
        # Quicker passes than a production install; the same code paths.
        self.kubectl("-n", OPERATOR_NS, "set", "env", "deployment/kubenas-operator",
                     "KUBENAS_RESYNC_SECONDS=10", "KUBENAS_CONTROLLER_POLL_SECONDS=1")

    def expose_host_port(self, port: int) -> None:
        """Let pods reach this machine's ``127.0.0.1:port`` at the same address (a test's
        S3 server), from their next start on (the node relays it: node.host_forwards)."""
        with open(self.state / "host-ports", "a") as f:
            f.write(f"{port}\n")

    def pod_request(self, namespace: str, pod: str, url: str, token: str | None = None) -> tuple[int, str]:
        """GET ``url`` from inside ``pod``'s network namespace, as a peer on the pod network
        (Prometheus) would, with ``token`` as bearer token; HTTPS certificates are not
        verified (Prometheus' insecureSkipVerify). (status, body); status 0 when no HTTP
        answer came (e.g. plain HTTP to a TLS port), with the error as body."""
        uid = self.get_json("pod", pod, "-n", namespace)["metadata"]["uid"]
        launch = f"{self.state / 'pods' / uid / 'launch.json'}".encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if launch in cmdline and b"podinit.py" in cmdline:  # the pod's first process, in its namespaces
                pids.append(entry)
        if not pids:
            raise AssertionError(f"pod {namespace}/{pod} runs no process on the node stand-in")
        done = subprocess.run(["nsenter", f"--net=/proc/{pids[-1]}/ns/net", sys.executable, "-c", _GET, url,
                               token or ""], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"GET {url} in pod {namespace}/{pod} failed: {done.stderr[-2000:]}")
        code, _, body = done.stdout.partition("\n")
        return int(code), body

    def logs(self, namespace: str, pod: str) -> str:
        return pod_log(self.state, namespace, pod)

    def logs_ever(self, namespace: str, prefix: str) -> str:
        return "".join(p.read_text(errors="replace")
                       for p in sorted((self.state / "logs").glob(f"{namespace}_{prefix}*.log")))

    def restarts_ever(self, namespace: str, prefix: str) -> int:
        path = self.state / "starts.log"
        if not path.exists():
            return 0
        return sum(int(restarts) > 0 for ns, pod, _c, restarts in
                   (line.split() for line in path.read_text().splitlines())
                   if ns == namespace and pod.startswith(prefix))
