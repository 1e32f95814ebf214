"""A node stand-in for the real-API-server tier: a kubelet, as far as kubenas needs one.

There are no container images on the test machines, so this agent runs each pod's
container command as a local process (the console scripts the images would run, from
this checkout's virtual environment), in a network and mount namespace of its own
(:mod:`tests.realtier.podinit`). Everything else is the real control plane: the Job,
ReplicaSet/Deployment and garbage-collector controllers of kube-controller-manager
create and delete the pods, and RBAC authorises every call a pod makes, with a real
ServiceAccount token from the TokenRequest API (bound to the pod) mounted where
in-cluster config looks.

What it does, as a kubelet would:

* registers a Ready ``Node`` (with ``nvidia.com/gpu`` capacity, so GPU trials fit) and
  binds every unscheduled pod to it (it is also the scheduler);
* runs the pod's single container; writes pod status: phase, conditions, container
  state (running, terminated with exit code, reason and the termination message read
  from ``terminationMessagePath``, or the log tail with ``FallbackToLogsOnError``),
  ``restartCount``; restarts containers of ``restartPolicy: Always`` (and ``OnFailure``
  after a failure) with the kubelet's back-off (10 s doubling to 5 min, reset after 10
  min running), showing ``CrashLoopBackOff`` meanwhile;
* on graceful deletion: SIGTERM, then SIGKILL after ``terminationGracePeriodSeconds``,
  then removes the pod (delete with grace 0); a pod removed outright is killed at once;
* enforces a pod's ``activeDeadlineSeconds`` (Failed, reason DeadlineExceeded);
* gives every pod an IP of its own on this machine's loopback (``127.X.Y.Z``, all of
  127/8 is local), written to ``status.podIP``, and listens there on each of the
  container's ``ports``, relaying into the pod's network namespace: a Prometheus on this
  machine scrapes each pod at ``podIP:port`` (tests/e2e/test_prometheus.py). The API
  server refuses loopback addresses in Endpoints and EndpointSlices, so those stay
  empty (the endpoints controllers log it); Services are not routed either.

Not simulated: images (any image runs this checkout's code), resource limits (no
cgroups: no OOMKilled, no CPU throttling), liveness and exec probes (httpGet readiness
probes are run: tests/realtier/probes.py), init and sidecar containers, user
IDs (processes run as the agent's user), scheduling constraints (every pod fits).

Pod logs: ``<state>/logs/<namespace>_<pod>_<container>.log`` (all restarts appended;
:func:`pod_log` reads them). The node also serves them as a kubelet does, on its
``daemonEndpoints.kubeletEndpoint`` port (HTTPS, a self-signed certificate: the API
server verifies a kubelet's certificate only when given ``--kubelet-certificate-authority``),
so ``GET pods/log`` through the API server (``kubectl logs``, ``kubenas logs``) works,
authorised by RBAC on ``pods/log``: ``/containerLogs/<namespace>/<pod>/<container>`` with
``tailLines``; not ``follow``, ``previous`` or ``timestamps``. Run: ``python -m tests.realtier.node --kubeconfig K
--state DIR`` (the ``node`` fixture does).
"""
from __future__ import annotations

import argparse
import http.server
import json
import logging
import os
import queue
import random
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from kubenas_trainer.reporting.wrapper import terminate_group

from tests.realtier import probes

log = logging.getLogger("kubenas.testnode")
HERE = Path(__file__).resolve().parent
NODE = "kubenas-node"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
BACKOFF_START, BACKOFF_CAP, BACKOFF_RESET = 10.0, 300.0, 600.0
# Pods of this image run no process: the node reports a result for the trial at once,
# with the pod's own ServiceAccount token (bench/control_plane_real.py: what is measured
# is kubenas' control plane on a real API server, not training).
INSTANT_TRAINER_IMAGE = "bench.kubenas.io/instant-trainer"
REPO = HERE.parents[1]
# What the images (deploy/docker/*.Dockerfile) hold besides the installed package: their
# files come from this checkout, their ENV lines are the defaults under the pod's env.
IMAGE_FILES = {"/opt/kubenas/crds": REPO / "crds", "/opt/kubenas/examples": REPO / "deploy" / "examples"}
# The package the images install is this checkout's source (ahead of any installed copy).
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "KUBENAS_CRD_DIR": "/opt/kubenas/crds",
             "MPLCONFIGDIR": "/tmp/.matplotlib",
             "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO / "trainer"), "/opt/kubenas/examples"])}


def console_script(name: str) -> list[str] | None:
    """The image's console script ``name`` (pyproject.toml [project.scripts]) as a Python
    command, for scripts this checkout declares that the venv's install does not have yet."""
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    if name not in scripts:
        return None
    module, function = scripts[name].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {function}; sys.exit({function}())"]


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _kill_group(pid: int) -> None:
    """SIGKILL to the process group ``pid`` leads, if it is still there."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def pod_log(state: Path, namespace: str, pod: str, container: str | None = None) -> str:
    """Everything a pod's container(s) printed (all restarts)."""
    out = []
    for path in sorted((state / "logs").glob(f"{namespace}_{pod}_{container or '*'}.log")):
        out.append(path.read_text(errors="replace"))
    return "".join(out)


class KubeletServer(http.server.ThreadingHTTPServer):
    """The kubelet's read-only log endpoint, what the API server's ``pods/log`` proxies to."""

    daemon_threads = True

    def __init__(self, state: Path):
        self.state = state
        super().__init__(("127.0.0.1", 0), _KubeletHandler)
        cert, key = state / "kubelet.crt", state / "kubelet.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(cert), "-days", "2", "-subj", f"/CN={NODE}", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server_address[1]


class _KubeletHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._answer(404, f"{url.path}: this node serves /containerLogs/<namespace>/<pod>/<container> only")
        _, namespace, pod, container = parts
        path = self.server.state / "logs" / f"{namespace}_{pod}_{container}.log"
        if not path.exists():
            return self._answer(404, f"container {container} of pod {namespace}/{pod} has no log on this node")
        text = path.read_text(errors="replace")
        tail = urllib.parse.parse_qs(url.query).get("tailLines")
        if tail:
            text = "".join(text.splitlines(keepends=True)[-int(tail[0]):])
        self._answer(200, text)

    def _answer(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        log.debug("kubelet endpoint: " + fmt, *args)


class Relay(socketserver.ThreadingUnixStreamServer):
    """The node's end of each pod's path to the API server: Unix socket -> TCP."""

    daemon_threads = True

    def __init__(self, path: str, port: int):
        self.port = port
        super().__init__(path, _RelayHandler)


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self):
        from .podinit import _relay

        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
        except OSError:
            return
        upstream.settimeout(None)
        t = threading.Thread(target=_relay, args=(upstream, self.request), daemon=True)
        t.start()
        _relay(self.request, upstream)
        t.join()


class PortRelay(socketserver.ThreadingTCPServer):
    """Listens on a pod's IP at one of its container's ports and relays each connection
    to the Unix socket that the pod's podinit serves that port on (podinit.serve_port)."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], socket_path: str):
        self.socket_path = socket_path
        super().__init__(address, _PortRelayHandler)


class _PortRelayHandler(socketserver.BaseRequestHandler):
    def handle(self):
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(self.server.socket_path)
        except OSError:
            upstream.close()
            return  # the pod does not serve yet: the caller sees the connection closed
        done = threading.Event()

        def pump(a, b):
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                done.set()

        threading.Thread(target=pump, args=(upstream, self.request), daemon=True).start()
        pump(self.request, upstream)
        done.wait(30)
        upstream.close()


class PodRunner(threading.Thread):
    """Runs one pod's container until it is done or the pod is deleted."""

    def __init__(self, agent: "Agent", pod: dict):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.dir = agent.state / "pods" / self.uid
        self.proc: subprocess.Popen | None = None
        self.deleting = threading.Event()
        self.finished = threading.Event()  # the runner is done (token renewal stops)
        self.renewing: set[Path] = set()  # token files kept fresh (_renew_token)
        self.grace = float(pod["spec"].get("terminationGracePeriodSeconds", 30))
        self.restarts = 0
        self.started_at = now()
        self.ip = "127.0.0.1"  # its own from run() on (Agent.pod_network)
        self.listeners: dict[int, PortRelay] = {}

    # --------------------------------------------------------------- lifecycle

    def run(self) -> None:
        try:
            self.ip, self.listeners = self.agent.pod_network(self)
            self._run()
        except Exception:  # noqa: BLE001
            log.exception("pod %s/%s: runner failed", self.ns, self.name)
        finally:
            self.finished.set()
            self.agent.runner_done(self)

    def _run(self) -> None:
        spec = self.pod["spec"]
        containers = spec.get("containers") or []
        if len(containers) != 1 or spec.get("initContainers"):
            self._finish_unsupported("the test node runs pods with exactly one container and no init containers")
            return
        container = containers[0]
        if container.get("image") == INSTANT_TRAINER_IMAGE:
            self._instant_trainer(container)
            return
        policy = spec.get("restartPolicy", "Always")
        deadline = spec.get("activeDeadlineSeconds")
        start = time.monotonic()
        backoff = BACKOFF_START
        last_state = None
        while not self.deleting.is_set():
            try:
                launch = self._prepare(container)
            except Exception as err:  # noqa: BLE001 - e.g. a missing Secret: the kubelet retries too
                self._status_waiting(container, "CreateContainerConfigError", str(err)[:500], last_state)
                if self.deleting.wait(5):
                    break
                continue
            began = time.monotonic()
            started_at = now()
            self.proc = self._spawn(launch)
            with open(self.agent.state / "starts.log", "a") as f:  # every container start, kept after the pod
                f.write(f"{self.ns} {self.name} {container['name']} {self.restarts}\n")
            self._status_running(container, started_at, last_state, probes.readiness_probe(container) is None)
            probes.watch_readiness(self, container, self.proc, lambda ready, c=container, at=started_at,
                                   last=last_state: self._status_running(c, at, last, ready))
            code = self._wait(deadline, start)
            finished_at = now()
            message = self._termination_message(container, code, launch)
            if code == "deadline":
                self._status_terminated(container, 137, "DeadlineExceeded", message, started_at, finished_at,
                                        phase="Failed", pod_reason="DeadlineExceeded",
                                        pod_message=f"Pod was active on the node longer than the specified "
                                                    f"deadline ({deadline} s)")
                return
            reason = "Completed" if code == 0 else "Error"
            terminated = {"exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at}
            if message:
                terminated["message"] = message
            again = not self.deleting.is_set() and (policy == "Always" or (policy == "OnFailure" and code != 0))
            if not again:
                phase = "Succeeded" if code == 0 else "Failed"
                if self.deleting.is_set() and policy == "Always":
                    phase = "Failed" if code != 0 else "Succeeded"
                self._status_terminated(container, code, reason, message, started_at, finished_at, phase=phase)
                return
            if time.monotonic() - began >= BACKOFF_RESET:
                backoff = BACKOFF_START
            self.restarts += 1
            last_state = {"terminated": terminated}
            self._status_waiting(container, "CrashLoopBackOff",
                                 f"back-off {backoff:.0f}s restarting failed container={container['name']} "
                                 f"pod={self.name}", last_state)
            if self.deleting.wait(min(backoff, self.agent.max_backoff)):
                break
            backoff = min(backoff * 2, BACKOFF_CAP)
        self._status_terminated(container, 137, "Error", "", self.started_at, now(), phase="Failed")

    def _instant_trainer(self, container: dict) -> None:
        import zlib

        started = now()
        self._status_running(container, started, None)
        env = {e["name"]: e.get("value") for e in container.get("env") or []}
        trial_name = env.get("KUBENAS_TRIAL") or self.pod["metadata"]["labels"].get("job-name")
        conf = k8s.Configuration()
        conf.host = self.agent.api.configuration.host
        conf.ssl_ca_cert = self.agent.ca_file
        conf.api_key = {"authorization": "Bearer " + self._token(None, 3600)}
        api = k8s.ApiClient(conf)
        api.user_agent = "kubenas-trainer/bench-instant"
        custom = k8s.CustomObjectsApi(api)
        code = 0
        try:
            trial = custom.get_namespaced_custom_object("kubenas.io", "v1alpha1", self.ns, "nastrials", trial_name)
            arch = json.dumps((trial.get("spec") or {}).get("architecture") or {}, sort_keys=True)
            reward = 0.5 + (zlib.crc32(arch.encode()) % 5000) / 10000
            t = now()
            history = [{"epoch": e, "accuracy": round(reward * e / 3, 4), "loss": round(1 - reward * e / 3, 4),
                        "seconds": 0.01} for e in (1, 2, 3)]
            custom.patch_namespaced_custom_object_status("kubenas.io", "v1alpha1", self.ns, "nastrials", trial_name, {
                "status": {"phase": "Succeeded", "reward": reward, "startTime": started, "completionTime": t,
                           "metrics": {"accuracy": reward, "loss": 1 - reward, "parameters": 56000},
                           "history": history, "device": "cpu"}})
        except ApiException as err:
            log.warning("instant trainer %s/%s: %s", self.ns, trial_name, err.reason)
            code = 1
        finally:
            api.close()
        self._status_terminated(container, code, "Completed" if code == 0 else "Error", "", started, now(),
                                phase="Succeeded" if code == 0 else "Failed")

    def stop(self) -> None:
        """Graceful deletion: SIGTERM, SIGKILL after the grace period."""
        self.deleting.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        threading.Thread(target=terminate_group, args=(proc, self.grace), daemon=True).start()

    def kill(self) -> None:
        self.deleting.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            _kill_group(proc.pid)

    def _wait(self, deadline, start):
        while True:
            try:
                code = self.proc.wait(0.5)
                # podinit is gone; anything it left in its process group goes too.
                _kill_group(self.proc.pid)
                return code
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() - start > float(deadline):
                    self.kill()
                    self.proc.wait()
                    return "deadline"

    # --------------------------------------------------------------- the container

    def _prepare(self, container: dict) -> dict:
        spec = self.pod["spec"]
        self.dir.mkdir(parents=True, exist_ok=True)
        home = self.dir / "root"
        home.mkdir(exist_ok=True)
        mounts = []
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        sources = {name: self._volume(name, v) for name, v in volumes.items()}
        for m in container.get("volumeMounts") or []:
            src = sources.get(m["name"])
            if src is None:
                raise RuntimeError(f"volume {m['name']!r} is not supported by the test node")
            if m.get("subPath"):
                src = src / m["subPath"]
                if not src.exists():  # as the kubelet does: a missing subPath becomes a folder
                    src.mkdir(parents=True)
            mounts.append({"source": str(src), "target": m["mountPath"], "readOnly": bool(m.get("readOnly"))})
        for target, source in IMAGE_FILES.items():
            mounts.insert(0, {"source": str(source), "target": target, "readOnly": True})
        term = self.dir / "termination-log"
        term.write_text("")
        mounts.append({"source": str(term),
                       "target": container.get("terminationMessagePath", "/dev/termination-log")})
        env = self._env(container, home)
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        if not argv:
            raise RuntimeError("the container has no command; the test node has no images to take one from")
        argv = [_expand(a, env) for a in argv]
        exe = shutil.which(argv[0], path=env["PATH"])
        if exe:
            argv[0] = exe
        elif console_script(argv[0]):
            argv = console_script(argv[0]) + argv[1:]
        keep = sorted({str(REPO), sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))})
        launch = {"argv": argv, "env": env, "mounts": mounts, "keep_visible": keep,
                  "workingDir": container.get("workingDir"),
                  "home": str(home), "apiserver_port": 443, "apiserver_socket": self.agent.socket_path,
                  "forwards": self.agent.host_forwards(),
                  "ports": [{"port": port, "socket": server.socket_path} for port, server in self.listeners.items()],
                  "termination_file": str(term)}
        (self.dir / "launch.json").write_text(json.dumps(launch))
        return launch

    def _spawn(self, launch: dict) -> subprocess.Popen:
        logs = self.agent.state / "logs"
        logs.mkdir(exist_ok=True)
        container = self.pod["spec"]["containers"][0]["name"]
        out = open(logs / f"{self.ns}_{self.name}_{container}.log", "ab")
        try:
            return subprocess.Popen(
                ["unshare", "--net", "--mount", "--propagation", "private", sys.executable, str(HERE / "podinit.py"),
                 str(self.dir / "launch.json")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        finally:
            out.close()

    def _termination_message(self, container: dict, code, launch: dict) -> str:
        try:
            text = Path(launch["termination_file"]).read_text(errors="replace")[:4096]
        except OSError:
            text = ""
        if not text and code not in (0, "deadline") and \
                container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            lines = pod_log(self.agent.state, self.ns, self.name, container["name"]).splitlines()[-80:]
            text = "\n".join(lines)[-2048:]
        return text

    def _token(self, audience: str | None, seconds: int) -> str:
        """A bound token for the pod's ServiceAccount (TokenRequest API), as the kubelet
        gets for a projected serviceAccountToken volume."""
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        spec: dict = {"expirationSeconds": seconds,
                      "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": self.name, "uid": self.uid}}
        if audience:
            spec["audiences"] = [audience]
        answer = self.agent.core.create_namespaced_service_account_token(sa, self.ns, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return answer.status.token

    def _renew_token(self, target: Path, audience: str | None, seconds: int) -> None:
        """As the kubelet does: a fresh token in the file once 80 % of its lifetime has
        passed, for as long as the pod runs (kubenas' pods ask for 600 s tokens: without
        this, a controller lost its API access after 10 minutes)."""
        if target in self.renewing:  # a restarted container: its first start's renewal goes on
            return
        self.renewing.add(target)

        def renew() -> None:
            while not self.finished.wait(seconds * 0.8):
                try:
                    fresh = target.with_name(target.name + ".new")
                    fresh.write_text(self._token(audience, seconds))
                    os.replace(fresh, target)  # in the volume's folder: the pod sees the new file
                except Exception as err:  # noqa: BLE001 - the kubelet retries too
                    log.warning("pod %s/%s: token renewal failed: %s", self.ns, self.name, err)

        threading.Thread(target=renew, daemon=True, name=f"token-{self.ns}/{self.name}").start()

    def _projected(self, base: Path, volume: dict) -> None:
        """serviceAccountToken, configMap, secret and downwardAPI sources (the
        ServiceAccount admission plugin's kube-api-access-* volume uses three of them)."""
        import base64

        for source in volume.get("sources") or []:
            if "serviceAccountToken" in source:
                t = source["serviceAccountToken"]
                target, seconds = base / t["path"], int(t.get("expirationSeconds", 3600))
                target.write_text(self._token(t.get("audience"), seconds))
                self._renew_token(target, t.get("audience"), seconds)
            elif "configMap" in source or "secret" in source:
                ref = source.get("configMap") or source.get("secret")
                if "configMap" in source:
                    if ref["name"] == "kube-root-ca.crt":
                        data = {"ca.crt": Path(self.agent.ca_file).read_text()}
                    else:
                        data = dict(self.agent.core.read_namespaced_config_map(ref["name"], self.ns).data or {})
                else:
                    raw = self.agent.core.read_namespaced_secret(ref["name"], self.ns).data or {}
                    data = {k: base64.b64decode(v).decode(errors="replace") for k, v in raw.items()}
                items = ref.get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (base / item["path"]).parent.mkdir(parents=True, exist_ok=True)
                    (base / item["path"]).write_text(data[item["key"]])
            elif "downwardAPI" in source:
                fields = {"metadata.namespace": self.ns, "metadata.name": self.name, "metadata.uid": self.uid}
                for item in source["downwardAPI"].get("items") or []:
                    path = (item.get("fieldRef") or {}).get("fieldPath")
                    (base / item["path"]).write_text(fields.get(path, ""))

    def _volume(self, name: str, volume: dict) -> Path | None:
        base = self.dir / "volumes" / name
        if "emptyDir" in volume:
            base.mkdir(parents=True, exist_ok=True)
            return base
        if "hostPath" in volume:
            path = Path(volume["hostPath"]["path"])
            if volume["hostPath"].get("type") in ("DirectoryOrCreate",):
                path.mkdir(parents=True, exist_ok=True)
            return path
        if "projected" in volume:
            base.mkdir(parents=True, exist_ok=True)
            self._projected(base, volume["projected"])
            return base
        if "configMap" in volume or "secret" in volume:
            base.mkdir(parents=True, exist_ok=True)
            if "configMap" in volume:
                obj = self.agent.core.read_namespaced_config_map(volume["configMap"]["name"], self.ns)
                data = dict(obj.data or {})
            else:
                import base64

                obj = self.agent.core.read_namespaced_secret(volume["secret"]["secretName"], self.ns)
                data = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.data or {}).items()}
            for key, value in data.items():
                (base / key).write_text(value)
            return base
        if "persistentVolumeClaim" in volume:
            claim = self.agent.core.read_namespaced_persistent_volume_claim(
                volume["persistentVolumeClaim"]["claimName"], self.ns)
            pv = self.agent.core.read_persistent_volume(claim.spec.volume_name) if claim.spec.volume_name else None
            if pv is None or pv.spec.host_path is None:
                raise RuntimeError(f"PVC {claim.metadata.name} is not bound to a hostPath PersistentVolume")
            return Path(pv.spec.host_path.path)
        return None

    def _env(self, container: dict, home: Path) -> dict:
        env = {
            **IMAGE_ENV,
            "PATH": self.agent.path,
            "HOME": str(home),
            "HOSTNAME": self.name,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": "443",
            "LANG": "C.UTF-8",
        }
        for extra in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
            if extra in os.environ:
                env[extra] = os.environ[extra]
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self.agent.core.read_namespaced_config_map(source["configMapRef"]["name"], self.ns).data
                env.update({prefix + k: v for k, v in (data or {}).items()})
        meta = self.pod["metadata"]
        fields = {"metadata.name": self.name, "metadata.namespace": self.ns, "metadata.uid": self.uid,
                  "spec.nodeName": NODE, "spec.serviceAccountName": self.pod["spec"].get("serviceAccountName", ""),
                  "status.podIP": self.ip, "status.hostIP": "127.0.0.1"}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = _expand(item["value"], env)
                continue
            ref = item.get("valueFrom") or {}
            if "fieldRef" in ref:
                path = ref["fieldRef"]["fieldPath"]
                if path.startswith("metadata.labels['"):
                    env[item["name"]] = (meta.get("labels") or {}).get(path[17:-2], "")
                else:
                    env[item["name"]] = fields.get(path, "")
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                data = self._optional(r, self.agent.core.read_namespaced_config_map)
                if r["key"] in data or not r.get("optional"):
                    env[item["name"]] = data[r["key"]]
            elif "secretKeyRef" in ref:
                import base64

                r = ref["secretKeyRef"]
                data = self._optional(r, self.agent.core.read_namespaced_secret)
                if r["key"] in data or not r.get("optional"):  # optional: a missing key sets nothing
                    env[item["name"]] = base64.b64decode(data[r["key"]]).decode()
            elif "resourceFieldRef" in ref:
                env[item["name"]] = "1"
        return env

    def _optional(self, ref: dict, read) -> dict:
        """The data of the object a key reference names; {} for a missing one marked optional."""
        try:
            return read(ref["name"], self.ns).data or {}
        except ApiException as err:
            if err.status == 404 and ref.get("optional"):
                return {}
            raise

    # --------------------------------------------------------------- status

    def _conditions(self, ready: bool) -> list[dict]:
        t = now()
        r = "True" if ready else "False"
        return [{"type": "PodScheduled", "status": "True", "lastTransitionTime": self.started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": self.started_at},
                {"type": "ContainersReady", "status": r, "lastTransitionTime": t},
                {"type": "Ready", "status": r, "lastTransitionTime": t}]

    def _container_status(self, container: dict, state: dict, ready: bool, last_state) -> dict:
        status = {"name": container["name"], "image": container.get("image", ""), "imageID": "",
                  "containerID": f"kubenas-test://{self.uid}-{self.restarts}", "ready": ready,
                  "started": "running" in state, "restartCount": self.restarts, "state": state}
        if last_state:
            status["lastState"] = last_state
        return status

    def _status_running(self, container, started_at, last_state, ready: bool = True) -> None:
        self._put_status({"phase": "Running", "conditions": self._conditions(ready),
                          "containerStatuses": [self._container_status(
                              container, {"running": {"startedAt": started_at}}, ready, last_state)]})

    def _status_waiting(self, container, reason, message, last_state) -> None:
        self._put_status({"phase": "Running" if self.restarts else "Pending", "conditions": self._conditions(False),
                          "containerStatuses": [self._container_status(
                              container, {"waiting": {"reason": reason, "message": message}}, False, last_state)]})

    def _status_terminated(self, container, code, reason, message, started_at, finished_at, *, phase,
                           pod_reason=None, pod_message=None) -> None:
        terminated = {"exitCode": code, "reason": reason, "startedAt": started_at, "finishedAt": finished_at}
        if message:
            terminated["message"] = message
        status = {"phase": phase, "conditions": self._conditions(False),
                  "containerStatuses": [self._container_status(container, {"terminated": terminated}, False, None)]}
        if pod_reason:
            status["reason"], status["message"] = pod_reason, pod_message
        self._put_status(status)

    def _finish_unsupported(self, message: str) -> None:
        self._put_status({"phase": "Failed", "reason": "UnsupportedByTestNode", "message": message,
                          "conditions": self._conditions(False)})

    def _put_status(self, status: dict) -> None:
        status.update({"hostIP": "127.0.0.1", "podIP": self.ip, "podIPs": [{"ip": self.ip}],
                       "startTime": self.started_at})
        for attempt in range(20):
            try:
                pod = self.agent.core.read_namespaced_pod(self.name, self.ns, _preload_content=False)
                body = json.loads(pod.data)
                if body["metadata"]["uid"] != self.uid:
                    return
                old_phase = (body.get("status") or {}).get("phase")
                if old_phase in ("Succeeded", "Failed"):
                    return  # terminal phases are final, as on a kubelet
                body["status"] = {**(body.get("status") or {}), **status}
                self.agent.core.replace_namespaced_pod_status(self.name, self.ns, body)
                return
            except ApiException as err:
                if err.status == 404:
                    return
                if err.status not in (409, 429, 500, 503):
                    log.warning("pod %s/%s: status write failed: %s %s", self.ns, self.name, err.reason,
                                (err.body or "")[:500])
                    return
            time.sleep(min(0.05 * 2 ** attempt, 1.0))


def _expand(text: str, env: dict) -> str:
    """$(VAR) references, as Kubernetes expands them in command, args and env values."""
    import re

    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


class Agent:
    def __init__(self, kubeconfig: str, state: Path, apiserver_port: int, ca_file: str, path: str,
                 max_backoff: float = BACKOFF_CAP):
        conf = k8s.Configuration()
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=conf)
        self.api = k8s.ApiClient(conf)
        self.api.user_agent = "kubenas-test-node"
        self.core = k8s.CoreV1Api(self.api)
        self.state = state
        self.ca_file = ca_file
        self.path = path
        self.max_backoff = max_backoff
        self.runners: dict[str, PodRunner] = {}
        # Pods whose runner ended: a watch event that still shows one Running (delivered
        # after the runner's last status write) must not run it again, as a kubelet would not.
        self.ran: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.socket_path = str(state / "apiserver.sock")
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.relay = Relay(self.socket_path, apiserver_port)
        threading.Thread(target=self.relay.serve_forever, daemon=True, name="relay").start()
        self.events: queue.Queue = queue.Queue()
        self.host_relays: dict[int, str] = {}
        # Pod IPs: a /16 of 127/8 picked at random, so two node stand-ins on one machine
        # (two test sessions) rarely meet; an address in use is skipped.
        self.ip_prefix = f"127.{random.randrange(64, 250)}"
        self.ip_next = 1
        (state / "ports").mkdir(parents=True, exist_ok=True)
        (state / "logs").mkdir(parents=True, exist_ok=True)
        self.kubelet = KubeletServer(state)
        threading.Thread(target=self.kubelet.serve_forever, daemon=True, name="kubelet").start()

    def host_forwards(self) -> list[dict]:
        """Ports of this machine's loopback that pods reach at the same address, as a
        Service would make a server reachable: one per line of ``<state>/host-ports``
        (:meth:`tests.realtier.cluster.LocalCluster.expose_host_port` writes it), each
        relayed through a Unix socket like the API server's."""
        try:
            ports = [int(line) for line in (self.state / "host-ports").read_text().split()]
        except FileNotFoundError:
            ports = []
        with self.lock:
            for port in ports:
                if port not in self.host_relays:
                    path = str(self.state / f"host-{port}.sock")
                    if os.path.exists(path):
                        os.unlink(path)
                    relay = Relay(path, port)
                    threading.Thread(target=relay.serve_forever, daemon=True, name=f"relay-{port}").start()
                    self.host_relays[port] = path
            return [{"port": port, "socket": self.host_relays[port]} for port in ports]

    def pod_network(self, runner: "PodRunner") -> tuple[str, dict[int, PortRelay]]:
        """An IP for the pod and a listener on it for each TCP port its container declares."""
        ports = [int(p["containerPort"]) for c in (runner.pod["spec"].get("containers") or [])[:1]
                 for p in c.get("ports") or [] if p.get("protocol", "TCP") == "TCP"]
        for _ in range(64):
            with self.lock:
                n = self.ip_next
                self.ip_next += 1
            ip = f"{self.ip_prefix}.{n // 250 % 250}.{n % 250 + 1}"
            listeners: dict[int, PortRelay] = {}
            try:
                for port in ports:
                    path = str(self.state / "ports" / f"{runner.uid[:18]}-{port}.sock")
                    listeners[port] = PortRelay((ip, port), path)
            except OSError:
                for server in listeners.values():
                    server.server_close()
                continue
            for port, server in listeners.items():
                threading.Thread(target=server.serve_forever, daemon=True, name=f"pod-port-{ip}:{port}").start()
            return ip, listeners
        raise RuntimeError("no free pod IP")

    def register(self) -> None:
        body = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux",
                                                      "kubernetes.io/arch": "amd64"}}}
        try:
            self.core.create_node(body)
        except ApiException as err:
            if err.status != 409:
                raise
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "1000", "nvidia.com/gpu": "8",
                    "ephemeral-storage": "100Gi"}
        t = now()
        self.core.patch_node_status(NODE, {"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "kubenas test node", "lastHeartbeatTime": t, "lastTransitionTime": t}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet.port}},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "v0.0.0-test",
                         "bootID": "", "containerRuntimeVersion": "kubenas-test://0", "kernelVersion": "",
                         "kubeProxyVersion": "", "machineID": "", "osImage": "", "systemUUID": ""}}})

    def serve(self) -> None:
        self.register()
        threading.Thread(target=self._watch, daemon=True, name="watch").start()
        while not self.stopping.is_set():
            try:
                kind, pod = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.handle(kind, pod)
            except Exception:  # noqa: BLE001
                log.exception("handling %s of pod %s failed", kind, pod.get("metadata", {}).get("name"))

    def _watch(self) -> None:
        version = None
        while not self.stopping.is_set():
            try:
                if version is None:
                    answer = json.loads(self.core.list_pod_for_all_namespaces(_preload_content=False).data)
                    version = answer["metadata"]["resourceVersion"]
                    for pod in answer.get("items") or []:
                        self.events.put(("ADDED", pod))
                w = watch.Watch()
                for event in w.stream(self.core.list_pod_for_all_namespaces, resource_version=version,
                                      timeout_seconds=300, allow_watch_bookmarks=True, _preload_content=False):
                    raw = event["raw_object"]
                    if event["type"] == "ERROR":
                        version = None
                        break
                    version = raw["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        self.events.put((event["type"], raw))
            except ApiException as err:
                if err.status == 410:
                    version = None
                else:
                    log.warning("pod watch failed: %s", err)
                    time.sleep(1)
            except Exception as err:  # noqa: BLE001
                log.warning("pod watch failed: %s", err)
                time.sleep(1)

    def handle(self, kind: str, pod: dict) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        phase = (pod.get("status") or {}).get("phase")
        with self.lock:
            runner = self.runners.get(uid)
        if kind == "DELETED":
            if runner:
                runner.kill()
            return
        if meta.get("deletionTimestamp"):
            if runner:
                runner.grace = float(meta.get("deletionGracePeriodSeconds", runner.grace))
                runner.stop()
            elif spec.get("nodeName") == NODE:
                self._remove(pod)
            return
        if not spec.get("nodeName"):
            if spec.get("schedulerName", "default-scheduler") == "default-scheduler" \
                    and not spec.get("schedulingGates"):
                self._bind(pod)
            return
        if spec["nodeName"] != NODE or runner is not None or phase in ("Succeeded", "Failed"):
            return
        with self.lock:
            if uid in self.runners or uid in self.ran or self.stopping.is_set():
                return
            runner = self.runners[uid] = PodRunner(self, pod)
        runner.start()

    def _bind(self, pod: dict) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}}
        try:
            self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body, _preload_content=False)
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("binding %s/%s failed: %s", meta["namespace"], meta["name"], err.reason)

    def _remove(self, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            # In the body: the client's grace_period_seconds query parameter is dropped
            # when a body is sent too.
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"],
                                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("removing %s/%s failed: %s", meta["namespace"], meta["name"], err.reason)

    def runner_done(self, runner: PodRunner) -> None:
        with self.lock:
            self.runners.pop(runner.uid, None)
            self.ran.add(runner.uid)
        for server in runner.listeners.values():
            server.shutdown()
            server.server_close()
            try:
                os.unlink(server.socket_path)
            except OSError:
                pass
        if runner.deleting.is_set():
            self._remove(runner.pod)
        shutil.rmtree(runner.dir / "volumes", ignore_errors=True)

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            runners = list(self.runners.values())
        for r in runners:
            r.kill()
        self.relay.shutdown()
        self.kubelet.shutdown()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--apiserver-port", required=True, type=int)
    p.add_argument("--ca-file", required=True)
    p.add_argument("--path", default=os.environ.get("PATH", ""), help="PATH for the pods' commands")
    p.add_argument("--max-backoff", type=float, default=BACKOFF_CAP,
                   help="cap on the crash-loop back-off (the kubelet's is 300 s)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.state.mkdir(parents=True, exist_ok=True)
    agent = Agent(args.kubeconfig, args.state, args.apiserver_port, args.ca_file, args.path, args.max_backoff)

    def stop(*_):
        agent.shutdown()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
