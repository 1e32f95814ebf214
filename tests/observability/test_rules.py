"""The PrometheusRule as Prometheus reads it: ``promtool check rules`` on its groups, and
``promtool test rules`` (tests/observability/alerts_test.yaml) for every alert, firing when
it should and silent when it should not. The dashboard's queries pass Prometheus' own
PromQL parser. (That they return data, with the labels the legends use, from what kubenas
exports is tests/e2e/test_prometheus.py, on a real Prometheus scraping the real tier.)"""
from __future__ import annotations

import shutil

import yaml

from . import prom

HERE = prom.Path(__file__).resolve().parent
ALERT_TESTS = HERE / "alerts_test.yaml"


def test_prometheusrule_passes_promtool_check_rules(tmp_path):
    rules = prom.write_rules(tmp_path)
    done = prom.promtool("check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in prom.rule_groups())} rules found" in done.stdout


def test_every_alert_fires_when_it_should_and_stays_silent_when_not(tmp_path):
    cases = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fires, silent = set(), set()
    for case in cases:
        for check in case.get("alert_rule_test") or []:
            (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = set(prom.alerts())
    assert len(alerts) == 7, sorted(alerts)
    assert fires == alerts, f"alerts without a firing case: {sorted(alerts - fires)}"
    assert silent == alerts, f"alerts without a silent case: {sorted(alerts - silent)}"

    prom.write_rules(tmp_path)
    shutil.copy(ALERT_TESTS, tmp_path / ALERT_TESTS.name)
    done = prom.promtool("test", "rules", ALERT_TESTS.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_dashboard_queries_parse_as_promql(tmp_path):
    """Each query, with Grafana's variables in (docs/observability.md), through Prometheus'
    parser: loaded as recording rules by ``promtool check rules``."""
    chosen = {"namespace": ["research"], "experiment": ["$__all"]}
    queries = prom.panel_queries()
    assert len(queries) >= 20
    rules = [{"record": f"kubenas:panel_{i}", "expr": prom.interpolate(q.expr, chosen, scrape_interval_s=30,
                                                                      range_s=6 * 3600)}
             for i, q in enumerate(queries)]
    for name, var in prom.variables().items():
        if var["type"] == "query":
            # label_values(selector, label) is Grafana's; the selector is PromQL
            inner = var["query"]["query"].removeprefix("label_values(").rsplit(",", 1)[0]
            rules.append({"record": f"kubenas:variable_{name}", "expr": prom.interpolate(
                inner, chosen, scrape_interval_s=30, range_s=3600)})
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = prom.promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_monitors_translate_to_a_prometheus_config(tmp_path):
    """The shipped ServiceMonitor and PodMonitor as Prometheus Operator's scrape jobs
    (what tests/e2e/test_prometheus.py runs): accepted by ``promtool check config``, with
    every field the monitors set carried over (a field the translation does not know
    fails here, so the e2e test cannot silently scrape differently from the monitors)."""
    sd = prom.KubernetesDiscovery(tmp_path, core=None)  # files only: nothing is listed here
    def secret_file(namespace, name, key):
        path = tmp_path / f"{namespace}-{name}-{key}"
        path.write_text("token")
        return str(path)

    jobs = {}
    for name in ("servicemonitor.yaml", "podmonitor.yaml"):
        monitor = yaml.safe_load((prom.MONITORING / name).read_text())
        for job in prom.scrape_configs(monitor, discovery=sd.file_sd, secret_file=secret_file):
            jobs[job["job_name"]] = (monitor, job)
    assert set(jobs) == {"serviceMonitor/kubenas-system/kubenas-operator/0",
                         "podMonitor/kubenas-system/kubenas-controllers/0"}
    for monitor, job in jobs.values():
        (ep,) = monitor["spec"].get("endpoints") or monitor["spec"]["podMetricsEndpoints"]
        assert job["scheme"] == ep.get("scheme", "http") and job["honor_labels"] == bool(ep.get("honorLabels"))
        assert job["scrape_interval"] == ep["interval"] and job["metrics_path"] == ep["path"]
        if ep.get("authorization"):
            ref = ep["authorization"]["credentials"]
            assert job["authorization"]["credentials_file"] == secret_file(monitor["metadata"]["namespace"],
                                                                           ref["name"], ref["key"])
    for path in sd.files.values():
        path.write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"scrape_configs": [job for _, job in jobs.values()]}))
    done = prom.promtool("check", "config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
