"""The shipped monitoring as Prometheus and Grafana read it, for the tests.

* :func:`binaries`: prometheus and promtool (Debian 12's package, unpacked once into a
  cache outside the repository by hack/prometheus/install.sh).
* :func:`write_rules`: the PrometheusRule's ``spec.groups`` as a Prometheus rules file
  (what Prometheus Operator hands Prometheus).
* :func:`panel_queries` and :func:`interpolate`: the dashboard's queries with its
  variables replaced the way Grafana's Prometheus data source does before it sends them.
* :class:`Prometheus`: a Prometheus server started by a test, queried over its HTTP API.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from tests.realtier.controlplane import stop_process

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "hack" / "prometheus" / "install.sh"
MONITORING = REPO / "deploy" / "components" / "prometheus-operator"
RULE = MONITORING / "prometheusrule.yaml"
DASHBOARD = REPO / "deploy" / "components" / "grafana" / "dashboards" / "kubenas.json"


@cache
def binaries() -> Path:
    """The folder holding bin/prometheus and bin/promtool (fetched on first use)."""
    done = subprocess.run(["bash", str(INSTALL)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{INSTALL} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(binaries() / "bin" / "promtool"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def rule_groups() -> list[dict]:
    return yaml.safe_load(RULE.read_text())["spec"]["groups"]


def write_rules(folder: Path, name: str = "kubenas.rules.yaml") -> Path:
    path = Path(folder) / name
    path.write_text(yaml.safe_dump({"groups": rule_groups()}, sort_keys=False))
    return path


def alerts() -> dict[str, dict]:
    return {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}


# ------------------------------------------------------------------ the dashboard


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref: str
    expr: str
    legend: str
    instant: bool

    @property
    def legend_labels(self) -> list[str]:
        return re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", self.legend)

    def __str__(self) -> str:
        return f"panel {self.panel!r} query {self.ref}"


def panel_queries(board: dict | None = None) -> list[PanelQuery]:
    board = board or dashboard()
    return [PanelQuery(p["title"], t["refId"], t["expr"], t.get("legendFormat", ""), bool(t.get("instant")))
            for p in board["panels"] for t in p.get("targets", [])]


def variables(board: dict | None = None) -> dict[str, dict]:
    return {v["name"]: v for v in (board or dashboard())["templating"]["list"]}


def _regex_value(values: list[str], variable: dict) -> str:
    """A multi-value variable inside a regex matcher (=~), as Grafana's Prometheus data
    source formats it: All is the variable's allValue, one value is regex-escaped, several
    are (a|b)."""
    if values == ["$__all"]:
        if not variable.get("allValue"):
            raise ValueError(f"variable {variable['name']}: All without an allValue means every option (not modelled)")
        return variable["allValue"]
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, chosen: dict[str, list[str]], *, scrape_interval_s: float, range_s: float,
                max_data_points: int = 1000, board: dict | None = None) -> str:
    """``expr`` as Grafana sends it to Prometheus (documented in docs/observability.md):

    * ``$__interval`` = range / max data points, at least the scrape interval (the data
      source's "Scrape interval", which is also its minimum step);
    * ``$__rate_interval`` = max(``$__interval`` + scrape interval, 4 x scrape interval);
    * ``$__range`` = the dashboard's time range in seconds;
    * ``$name``/``${name}``: the values chosen for the variable (``["$__all"]``: All).
    """
    interval = max(scrape_interval_s, range_s / max_data_points)
    rate_interval = max(interval + scrape_interval_s, 4 * scrape_interval_s)
    builtins = {"__rate_interval": f"{int(rate_interval)}s", "__interval": f"{int(interval)}s",
                "__range": f"{int(range_s)}s"}
    defined = variables(board)

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in builtins:
            return builtins[name]
        if name not in defined:
            raise KeyError(f"${name} is not a variable of the dashboard")
        return _regex_value(chosen[name], defined[name])

    return re.sub(r"\$\{([a-zA-Z_][a-zA-Z0-9_]*)\}|\$([a-zA-Z_][a-zA-Z0-9_]*)", value, expr)


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matcher text) of every ``name{...}`` selector in a dashboard query
    (the dashboard writes every selector with braces; tests check that it does)."""
    return SELECTOR.findall(expr)


# ------------------------------------------------------------------ a Prometheus server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A Prometheus server on loopback: config and rule files in ``workdir``."""

    def __init__(self, workdir: Path, config: dict, rule_files: list[Path] = ()):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config)
        if rule_files:
            self.config["rule_files"] = [str(p) for p in rule_files]
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "Prometheus":
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config, sort_keys=False))
        checked = promtool("check", "config", str(config))
        if checked.returncode != 0:
            raise RuntimeError(f"promtool check config:\n{checked.stdout}{checked.stderr}")
        self.port = free_port()
        log = open(self.workdir / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [str(binaries() / "bin" / "prometheus"), f"--config.file={config}",
             f"--storage.tsdb.path={self.workdir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--web.enable-lifecycle", "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with status {self.proc.returncode}: {self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"prometheus not ready in {timeout:.0f} s: {self.log()[-3000:]}")

    def log(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def api(self, path: str, **params) -> dict | list:
        url = f"{self.url}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
        with urllib.request.urlopen(url, timeout=30) as answer:
            body = json.loads(answer.read())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        return self.api("query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step}s")["result"]

    def targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, 20)
        shutil.rmtree(self.workdir / "data", ignore_errors=True)


# ------------------------------------------------------------------ ServiceMonitor / PodMonitor


def _label(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _keep_labels(role: str, match_labels: dict) -> list[dict]:
    return [{"action": "keep",
             "source_labels": [f"__meta_kubernetes_{role}_label_{_label(k)}",
                               f"__meta_kubernetes_{role}_labelpresent_{_label(k)}"],
             "regex": f"({re.escape(str(v))});true"} for k, v in sorted(match_labels.items())]


def scrape_configs(monitor: dict, *, discovery, secret_file, interval: str | None = None) -> list[dict]:
    """The scrape jobs Prometheus Operator generates for a ServiceMonitor or PodMonitor
    (its job names, relabelling and target labels), for the fields kubenas' monitors use:
    ``selector.matchLabels``, ``namespaceSelector`` (``any``/``matchNames``), and per
    endpoint ``port``, ``path``, ``scheme``, ``interval``, ``honorLabels``,
    ``tlsConfig.insecureSkipVerify``/``ca``, ``authorization`` (a Secret's key: the file
    ``secret_file(namespace, name, key)`` returns holds it) and ``bearerTokenFile``.
    ``discovery(role, namespaces)`` gives the job's service discovery (``namespaces`` None:
    all): :func:`kubernetes_sd` as Prometheus Operator writes it, or
    :meth:`KubernetesDiscovery.file_sd`. ``interval`` replaces every endpoint's interval
    (a test's shorter one)."""
    kind, meta, spec = monitor["kind"], monitor["metadata"], monitor["spec"]
    service = kind == "ServiceMonitor"
    known = {"selector", "namespaceSelector", "endpoints" if service else "podMetricsEndpoints", "jobLabel"}
    if set(spec) - known:
        raise ValueError(f"{kind} {meta['name']}: fields {sorted(set(spec) - known)} are not translated here")
    if set(spec["selector"]) - {"matchLabels"}:
        raise ValueError(f"{kind} {meta['name']}: only selector.matchLabels is translated here")
    ns_sel = spec.get("namespaceSelector") or {}
    namespaces = None if ns_sel.get("any") else (ns_sel.get("matchNames") or [meta["namespace"]])
    sd = discovery("endpoints" if service else "pod", namespaces)
    role = "service" if service else "pod"
    jobs = []
    for i, ep in enumerate(spec["endpoints" if service else "podMetricsEndpoints"]):
        job: dict = {"job_name": f"{'serviceMonitor' if service else 'podMonitor'}/{meta['namespace']}/{meta['name']}/{i}",
                     "honor_labels": bool(ep.get("honorLabels")),
                     "scrape_interval": interval or ep.get("interval", "30s"),
                     "metrics_path": ep.get("path", "/metrics"), "scheme": ep.get("scheme", "http"), **sd}
        tls = ep.get("tlsConfig") or {}
        if tls:
            job["tls_config"] = {"insecure_skip_verify": bool(tls.get("insecureSkipVerify"))}
            if (tls.get("ca") or {}).get("secret"):
                ref = tls["ca"]["secret"]
                job["tls_config"]["ca_file"] = secret_file(meta["namespace"], ref["name"], ref["key"])
        auth = ep.get("authorization")
        if auth:
            ref = auth["credentials"]
            job["authorization"] = {"type": auth.get("type", "Bearer"),
                                    "credentials_file": secret_file(meta["namespace"], ref["name"], ref["key"])}
        elif ep.get("bearerTokenFile"):
            job["authorization"] = {"credentials_file": ep["bearerTokenFile"]}
        relabel: list[dict] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
        if not service:  # Prometheus Operator leaves out pods that have ended
            relabel.append({"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"],
                            "regex": "(Failed|Succeeded)"})
        relabel += _keep_labels(role, spec["selector"].get("matchLabels") or {})
        port_label = "__meta_kubernetes_endpoint_port_name" if service else "__meta_kubernetes_pod_container_port_name"
        relabel.append({"action": "keep", "source_labels": [port_label], "regex": ep["port"]})
        if service:
            relabel += [
                {"source_labels": ["__meta_kubernetes_endpoint_address_target_kind",
                                   "__meta_kubernetes_endpoint_address_target_name"],
                 "separator": ";", "regex": "Pod;(.*)", "replacement": "${1}", "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"},
            ]
            if spec.get("jobLabel"):
                relabel.append({"source_labels": [f"__meta_kubernetes_service_label_{_label(spec['jobLabel'])}"],
                                "target_label": "job", "regex": "(.+)", "replacement": "${1}"})
        else:
            relabel += [
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
                {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                {"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"},
            ]
        relabel.append({"target_label": "endpoint", "replacement": ep["port"]})
        job["relabel_configs"] = relabel
        jobs.append(job)
    return jobs


def strip_threshold(expr: str) -> str:
    """An alert's expression without its final comparison with a number (``... > 1800``):
    what it measures, which returns data even when the alert is silent."""
    return re.sub(r"\s*(>|<|>=|<=|==|!=)\s*[0-9.e+-]+\s*$", "", expr.strip())


def kubernetes_sd(api_server: str, ca_file: str, token_file: str):
    """Prometheus' own Kubernetes service discovery (a Prometheus built with it)."""
    def sd(role: str, namespaces: list[str] | None) -> dict:
        config = {"role": role, "api_server": api_server, "tls_config": {"ca_file": ca_file},
                  "authorization": {"credentials_file": token_file}}
        if namespaces is not None:
            config["namespaces"] = {"names": list(namespaces)}
        return {"kubernetes_sd_configs": [config]}
    return sd


def core_api(api_server: str, ca_file: str, token: str):
    from kubernetes import client as k8s

    conf = k8s.Configuration()
    conf.host, conf.ssl_ca_cert = api_server, ca_file
    conf.api_key = {"authorization": f"Bearer {token}"}
    return k8s.CoreV1Api(k8s.ApiClient(conf))


class KubernetesDiscovery:
    """Kubernetes service discovery for a Prometheus built without it (Debian's package
    leaves it out): lists Endpoints, Services and Pods from the API server as Prometheus'
    ServiceAccount every ``period`` seconds and writes the targets, with the
    ``__meta_kubernetes_*`` labels Prometheus' ``role: endpoints`` and ``role: pod``
    discovery gives them (docs: kubernetes_sd_config), to files that ``file_sd_configs``
    read. Relabelling, scraping and everything after are Prometheus' own."""

    def __init__(self, folder: Path, core, period: float = 2.0):
        self.core = core  # a kubernetes CoreV1Api with Prometheus' token (core_api)
        self.folder = Path(folder)
        self.period = period
        self.files: dict[tuple[str, tuple | None], Path] = {}
        self.stopping = None
        self.errors: list[str] = []

    def file_sd(self, role: str, namespaces: list[str] | None) -> dict:
        key = (role, tuple(namespaces) if namespaces is not None else None)
        path = self.files.setdefault(key, self.folder / f"sd-{role}-{len(self.files)}.json")
        return {"file_sd_configs": [{"files": [str(path)], "refresh_interval": f"{int(self.period)}s"}]}

    @staticmethod
    def _labels(prefix: str, labels: dict | None) -> dict:
        out = {}
        for k, v in (labels or {}).items():
            out[f"{prefix}_label_{_label(k)}"] = v
            out[f"{prefix}_labelpresent_{_label(k)}"] = "true"
        return out

    @classmethod
    def _pod_meta(cls, pod) -> dict:
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        return {"__meta_kubernetes_namespace": pod.metadata.namespace,
                "__meta_kubernetes_pod_name": pod.metadata.name, "__meta_kubernetes_pod_ip": pod.status.pod_ip or "",
                "__meta_kubernetes_pod_ready": str(ready).lower(), "__meta_kubernetes_pod_phase": pod.status.phase or "",
                "__meta_kubernetes_pod_node_name": pod.spec.node_name or "",
                "__meta_kubernetes_pod_host_ip": pod.status.host_ip or "", "__meta_kubernetes_pod_uid": pod.metadata.uid,
                **cls._labels("__meta_kubernetes_pod", pod.metadata.labels)}

    def _pods(self, namespaces) -> list:
        if namespaces is None:
            return self.core.list_pod_for_all_namespaces().items
        return [p for ns in namespaces for p in self.core.list_namespaced_pod(ns).items]

    def pod_targets(self, namespaces) -> list[dict]:
        groups = []
        for pod in self._pods(namespaces):
            if not pod.status.pod_ip:
                continue
            meta = self._pod_meta(pod)
            for c in pod.spec.containers:
                for port in c.ports or []:
                    groups.append({"targets": [f"{pod.status.pod_ip}:{port.container_port}"], "labels": {
                        **meta, "__meta_kubernetes_pod_container_name": c.name,
                        "__meta_kubernetes_pod_container_port_name": port.name or "",
                        "__meta_kubernetes_pod_container_port_number": str(port.container_port),
                        "__meta_kubernetes_pod_container_port_protocol": port.protocol or "TCP"}})
        return groups

    def endpoints_targets(self, namespaces) -> list[dict]:
        """``role: endpoints``: a target per address and port of each Service's endpoints.
        The API server refuses loopback addresses in Endpoints and EndpointSlices (the
        node stand-in's pod IPs are on loopback), so the endpoints are joined here as the
        endpoints controller joins them: the Service's selector over the namespace's pods
        that have an IP and have not ended, ready or not, its ports resolved by name or
        number to the containers' ports."""
        groups = []
        for ns in namespaces if namespaces is not None else [n.metadata.name for n in self.core.list_namespace().items]:
            pods = [p for p in self.core.list_namespaced_pod(ns).items
                    if p.status.pod_ip and p.status.phase not in ("Succeeded", "Failed")
                    and not p.metadata.deletion_timestamp]
            for svc in self.core.list_namespaced_service(ns).items:
                selector = svc.spec.selector or {}
                if not selector:
                    continue  # endpoints of a Service without a selector are written by hand
                base = {"__meta_kubernetes_namespace": ns, "__meta_kubernetes_endpoints_name": svc.metadata.name,
                        "__meta_kubernetes_service_name": svc.metadata.name,
                        **self._labels("__meta_kubernetes_service", svc.metadata.labels)}
                for pod in pods:
                    if not selector.items() <= (pod.metadata.labels or {}).items():
                        continue
                    meta = self._pod_meta(pod)
                    for port in svc.spec.ports or []:
                        target = port.target_port if port.target_port is not None else port.port
                        found = [(c, cp) for c in pod.spec.containers for cp in c.ports or []
                                 if cp.name == target or cp.container_port == target]
                        if isinstance(target, str) and not found:
                            continue  # a named port the pod does not have: no endpoint
                        number = found[0][1].container_port if found else int(target)
                        labels = {**base, **meta, "__meta_kubernetes_endpoint_port_name": port.name or "",
                                  "__meta_kubernetes_endpoint_port_protocol": port.protocol or "TCP",
                                  "__meta_kubernetes_endpoint_ready": meta["__meta_kubernetes_pod_ready"],
                                  "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                                  "__meta_kubernetes_endpoint_address_target_name": pod.metadata.name}
                        if found:
                            c, cp = found[0]
                            labels.update({"__meta_kubernetes_pod_container_name": c.name,
                                           "__meta_kubernetes_pod_container_port_name": cp.name or "",
                                           "__meta_kubernetes_pod_container_port_number": str(cp.container_port)})
                        groups.append({"targets": [f"{pod.status.pod_ip}:{number}"], "labels": labels})
        return groups

    def refresh(self) -> None:
        for (role, namespaces), path in list(self.files.items()):
            groups = self.pod_targets(namespaces) if role == "pod" else self.endpoints_targets(namespaces)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(groups))
            tmp.replace(path)

    def start(self) -> "KubernetesDiscovery":
        import threading

        self.refresh()
        self.stopping = threading.Event()

        def loop():
            while not self.stopping.wait(self.period):
                try:
                    self.refresh()
                except Exception as err:  # noqa: BLE001 - keep discovering; the test reports it
                    self.errors.append(repr(err))
        threading.Thread(target=loop, daemon=True, name="kubernetes-sd").start()
        return self

    def stop(self) -> None:
        if self.stopping is not None:
            self.stopping.set()
