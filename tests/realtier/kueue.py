"""Kueue (sigs.k8s.io/kueue) next to the real-API-server tier, for tests/e2e/test_kueue.py.

Kueue's controller manager is built from its Go module by ``hack/kueue/build.sh`` (once,
into a cache outside the repository, with Kueue's install manifests from the same module
zip) and runs here as a local process, like kube-controller-manager in
:mod:`tests.realtier.controlplane`, installed the way its release manifests install it:

* its CRDs, with the conversion webhook of the five multi-version ones;
* its ServiceAccount ``kueue-system/kueue-controller-manager`` bound to its own
  ClusterRole (``manager-role``), Secret Role and metrics-auth ClusterRole: Kueue acts
  with the rights it ships with, not as an administrator, and its requests are its own
  in the audit log;
* its mutating and validating webhooks for Kueue's own kinds and for ``batch/v1`` Jobs
  (the only integration enabled: ``integrations.frameworks: [batch/job]``), failurePolicy
  Fail as shipped.

The one change: there are no Services or cluster DNS on this tier, so the API server
reaches the webhooks at ``https://127.0.0.1:<port>/<path>`` (``clientConfig.url``) instead
of through ``kueue-webhook-service``. Kueue's internal certificate management (its
default) stays on; the Secret it keeps its certificates in is created beforehand with a CA
and a serving certificate for both names (127.0.0.1 and ``kueue-webhook-service.
kueue-system.svc``), which Kueue's cert rotator accepts as valid and keeps, injecting the
CA into the webhook configurations and CRDs itself; the certificate files are written to
Kueue's ``webhook.certDir`` as the kubelet would mount the Secret.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import yaml

from .controlplane import ControlPlaneError, _tail, free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "kueue" / "build.sh"
NAMESPACE = "kueue-system"
SERVICE_ACCOUNT = "kueue-controller-manager"
SECRET = "kueue-webhook-server-cert"
SERVICE_DNS = f"kueue-webhook-service.{NAMESPACE}.svc"
# The CRDs Kueue's release serves through its conversion webhook (config/components/crd's
# kustomization), which its cert rotator injects the CA into.
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads", "multikueueclusters")
# The webhooks kept: those for Kueue's own kinds and for the batch/job integration.
WEBHOOK_GROUPS = {"kueue.x-k8s.io", "batch"}


def build() -> Path:
    """The folder holding bin/kueue and config/ (building it on first use)."""
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT} failed (exit {done.returncode}); its output is above")
    return Path(done.stdout.strip().splitlines()[-1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certs(folder: Path) -> dict[str, bytes]:
    """ca.crt, ca.key, tls.crt, tls.key as Kueue's cert rotator (open-policy-agent/
    cert-controller) checks them: the CA valid for the name ``kueue-ca`` with a PKCS#1 key,
    the serving certificate for the webhook Service's name, both beyond its 90-day
    look-ahead."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("genrsa", "-traditional", "-out", "ca.key", "2048", cwd=folder)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/O=kueue/CN=kueue-ca", "-addext", "subjectAltName=DNS:kueue-ca", cwd=folder)
    (folder / "ext.cnf").write_text(f"subjectAltName=DNS:{SERVICE_DNS},IP:127.0.0.1\n"
                                    "extendedKeyUsage=serverAuth\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
             "-subj", f"/CN={SERVICE_DNS}", cwd=folder)
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "tls.crt", "-days", "3650", "-extfile", "ext.cnf", cwd=folder)
    return {name: (folder / name).read_bytes() for name in ("ca.crt", "ca.key", "tls.crt", "tls.key")}


def _load_all(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def crds(config: Path, webhook_url: str) -> list[dict]:
    out = []
    for path in sorted((config / "crd" / "bases").glob("*.yaml")):
        for crd in _load_all(path):
            if crd["spec"]["names"]["plural"] in CONVERTED:
                crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
                    "clientConfig": {"url": f"{webhook_url}/convert"}, "conversionReviewVersions": ["v1"]}}
            out.append(crd)
    return out


def webhook_configurations(config: Path, webhook_url: str, ca: bytes) -> list[dict]:
    out = []
    for conf in _load_all(config / "webhook" / "manifests.yaml"):
        conf = copy.deepcopy(conf)
        conf["metadata"]["name"] = "kueue-" + conf["metadata"]["name"]  # as the release names them
        kept = []
        for hook in conf["webhooks"]:
            if not {g for rule in hook["rules"] for g in rule["apiGroups"]} <= WEBHOOK_GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": webhook_url + path, "caBundle": base64.b64encode(ca).decode()}
            kept.append(hook)
        conf["webhooks"] = kept
        out.append(conf)
    return out


def rbac(config: Path) -> list[dict]:
    """Kueue's ClusterRoles and its Secret Role, bound to its ServiceAccount."""
    subject = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]
    out: list[dict] = [{"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": SERVICE_ACCOUNT, "namespace": NAMESPACE}}]
    for file in ("role.yaml", "metrics_auth_role.yaml", "manager_secrets_role.yaml"):
        for role in _load_all(config / "rbac" / file):
            role["metadata"]["name"] = "kueue-" + role["metadata"]["name"]
            namespaced = role["kind"] == "Role"
            if namespaced:
                role["metadata"]["namespace"] = NAMESPACE
            out.append(role)
            out.append({"apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "RoleBinding" if namespaced else "ClusterRoleBinding",
                        "metadata": {"name": role["metadata"]["name"],
                                     **({"namespace": NAMESPACE} if namespaced else {})},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role["kind"],
                                    "name": role["metadata"]["name"]},
                        "subjects": subject})
    return out


def configuration(workdir: Path, webhook_port: int, health_port: int, metrics_port: int) -> dict:
    """Kueue's Configuration (config.kueue.x-k8s.io/v1beta2): Jobs only, and only those
    that name a queue; no leader election (one replica); loopback ports."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
        "namespace": NAMESPACE,
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": ["batch/job"]},
        "internalCertManagement": {"enable": True, "webhookServiceName": "kueue-webhook-service",
                                   "webhookSecretName": SECRET},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(workdir / "certs")},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "leaderElection": {"leaderElect": False},
        # the on-demand visibility API server wants an APIService and its own port
        "featureGates": {"VisibilityOnDemand": False},
    }


class Kueue:
    """Installs Kueue into ``cluster`` (a tests.realtier.cluster.LocalCluster) and runs it;
    :meth:`stop` removes its webhook configurations first, so the cluster's Jobs do not
    fail admission once it is gone."""

    user = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"  # its identity in the audit log

    def __init__(self, cluster, workdir: Path):
        self.cluster = cluster
        self.workdir = Path(workdir)
        self.proc: subprocess.Popen | None = None
        self.webhooks: list[dict] = []

    @property
    def log(self) -> Path:
        return self.workdir / "kueue.log"

    def apply(self, objects: list[dict]) -> None:
        self.cluster.kubectl("apply", "--server-side", "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    def start(self, timeout: float = 180.0) -> "Kueue":
        home = build()
        config = home / "config"
        self.workdir.mkdir(parents=True, exist_ok=True)
        webhook_port, health_port, metrics_port = free_port(), free_port(), free_port()
        url = f"https://127.0.0.1:{webhook_port}"
        certs = make_certs(self.workdir / "pki")
        (self.workdir / "certs").mkdir(exist_ok=True)
        for name in ("tls.crt", "tls.key"):  # where the kubelet would mount the Secret
            (self.workdir / "certs" / name).write_bytes(certs[name])

        self.apply(crds(config, url))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             *[f"crd/{c['metadata']['name']}" for c in crds(config, url)])
        self.cluster.kubectl("create", "namespace", NAMESPACE, check=False)
        self.apply(rbac(config) + [{
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v).decode() for k, v in certs.items()}}])
        self.webhooks = webhook_configurations(config, url, certs["ca.crt"])
        self.apply(self.webhooks)

        token = self.cluster.kubectl("create", "token", SERVICE_ACCOUNT, "-n", NAMESPACE,
                                     "--duration=4h").stdout.strip()
        plane = self.cluster.plane
        kubeconfig = self.workdir / "kueue.kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "kueue",
            "clusters": [{"name": "t", "cluster": {"server": plane.server,
                                                   "certificate-authority": str(plane.ca_file)}}],
            "users": [{"name": "kueue", "user": {"token": token}}],
            "contexts": [{"name": "kueue", "context": {"cluster": "t", "user": "kueue"}}]}))
        (self.workdir / "config.yaml").write_text(
            yaml.safe_dump(configuration(self.workdir, webhook_port, health_port, metrics_port)))
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(home / "bin" / "kueue"), "--config", str(self.workdir / "config.yaml"), "--zap-log-level=2"],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        self._wait_ready(f"http://127.0.0.1:{health_port}/readyz", webhook_port, self.workdir / "pki" / "ca.crt",
                         timeout)
        return self

    def _wait_ready(self, url: str, webhook_port: int, ca: Path, timeout: float) -> None:
        """Until the main manager is ready and its webhook server answers TLS with the
        certificate the API server is given (the certificate bootstrap runs a first
        manager whose /readyz answers 200 before the webhooks serve)."""
        deadline, last = time.monotonic() + timeout, ""
        context = ssl.create_default_context(cafile=str(ca))
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ControlPlaneError(f"kueue exited with {self.proc.returncode}:\n" + _tail(self.log, 40))
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    ready = answer.status == 200
                if ready:
                    with socket.create_connection(("127.0.0.1", webhook_port), timeout=5) as raw, \
                            context.wrap_socket(raw, server_hostname="127.0.0.1"):
                        return
            except OSError as err:
                last = str(err)
            time.sleep(0.5)
        raise ControlPlaneError(f"kueue not ready after {timeout:.0f} s ({last}):\n" + _tail(self.log, 40))

    def stop(self) -> None:
        for conf in self.webhooks:
            self.cluster.kubectl("delete", conf["kind"].lower(), conf["metadata"]["name"], "--ignore-not-found",
                                 check=False)
        if self.proc is not None:
            stop_process(self.proc, 20)
