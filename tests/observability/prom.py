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
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

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
                raise RuntimeError(f"prometheus exited: {self.log()[-3000:]}")
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
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
