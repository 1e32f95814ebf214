"""Prometheus metrics of a local run (`kubenas run --metrics-port N`).

The same names and labels as the operator's (docs/observability.md), with
``namespace="local"`` and ``experiment`` = the experiment's name, so the Grafana
dashboard works unchanged against a Prometheus that scrapes the laptop. Local trials
start as soon as they are created: there is no queue wait and no GPU node pool, so
``kubenas_trial_queue_wait_seconds`` and ``kubenas_gpus_requested`` are not served.
"""
from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily

from kubenas.contract import EXPERIMENT_PHASES, FAILED, RUNNING, TRIAL_PHASES
from kubenas.experiment import seconds_between
from kubenas.experiment.times import DURATION_BUCKETS

NAMESPACE = "local"


class LocalMetrics:
    def __init__(self, experiment: dict, registry: CollectorRegistry | None = None):
        disable_created_metrics()
        self.name = experiment["metadata"]["name"]
        self.goal = ((experiment.get("spec") or {}).get("objective") or {}).get("goal") or "maximize"
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.lock = threading.Lock()
        self.phase = RUNNING
        self.running = 0
        self.finished: dict[str, int] = {}
        self.best: float | None = None
        self.server = None
        self.created = Counter("kubenas_trials_created_total", "Trials started", ["namespace", "experiment"],
                               registry=self.registry)
        self.finished_total = Counter("kubenas_trials_finished_total", "Trials that finished, by outcome",
                                      ["namespace", "experiment", "outcome"], registry=self.registry)
        self.duration = Histogram("kubenas_trial_duration_seconds", "Trial run time",
                                  ["namespace", "experiment", "outcome"], buckets=DURATION_BUCKETS,
                                  registry=self.registry)
        self.registry.register(_Gauges(self))

    @classmethod
    def serve(cls, port: int, experiment: dict, addr: str = "0.0.0.0") -> "LocalMetrics":
        """Serve ``/metrics`` on ``port`` (0: any free port; see ``.port``) in a daemon thread."""
        metrics = cls(experiment)
        metrics.server, _thread = start_http_server(port, addr=addr, registry=metrics.registry)
        return metrics

    @property
    def port(self) -> int | None:
        return self.server.server_port if self.server else None

    def close(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # The runner's calls.

    def trial_started(self, experiment: str) -> None:
        with self.lock:
            self.running += 1
        self.created.labels(NAMESPACE, experiment).inc()

    def trial_finished(self, experiment: str, record: dict, best_reward: float | None) -> None:
        outcome = record.get("status") or FAILED
        with self.lock:
            self.running = max(0, self.running - 1)
            self.finished[outcome] = self.finished.get(outcome, 0) + 1
            if best_reward is not None:
                self.best = best_reward
        self.finished_total.labels(NAMESPACE, experiment, outcome).inc()
        seconds = seconds_between(record.get("startTime"), record.get("completionTime"))
        if seconds is not None and not record.get("duplicateOf"):
            self.duration.labels(NAMESPACE, experiment, outcome).observe(seconds)

    def experiment_finished(self, phase: str) -> None:
        with self.lock:
            self.phase = phase


class _Gauges:
    def __init__(self, metrics: LocalMetrics):
        self.m = metrics

    def describe(self):
        return []

    def collect(self):
        m = self.m
        with m.lock:
            phase, running, finished, best = m.phase, m.running, dict(m.finished), m.best
        experiments = GaugeMetricFamily("kubenas_experiments", "Experiments by phase", labels=["namespace", "phase"])
        for p in EXPERIMENT_PHASES:
            experiments.add_metric([NAMESPACE, p], 1 if p == phase else 0)
        yield experiments
        trials = GaugeMetricFamily("kubenas_trials", "Trials by phase", labels=["namespace", "experiment", "phase"])
        for p in TRIAL_PHASES:
            trials.add_metric([NAMESPACE, m.name, p], running if p == RUNNING else finished.get(p, 0))
        yield trials
        reward = GaugeMetricFamily("kubenas_experiment_best_reward", "Best reward of the experiment's trials",
                                   labels=["namespace", "experiment"])
        if best is not None:
            reward.add_metric([NAMESPACE, m.name], best)
        yield reward
