"""Prometheus metrics of an experiment's controller pod (docs/observability.md).

The controller pod serves them on ``KUBENAS_CONTROLLER_METRICS_PORT`` (9091 in the
Deployment the operator builds); the PodMonitor in deploy/components/prometheus-operator
scrapes them (HTTPS, bearer token; docs/security.md, "Metrics"). Labels: namespace and
experiment only.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, make_wsgi_app

disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)

PROPOSALS = Counter("kubenas_controller_proposals_total",
                    "Architectures the strategy proposed and the controller created as NASTrials",
                    ["namespace", "experiment"], registry=REGISTRY)
STRATEGY_UPDATE = Histogram("kubenas_controller_strategy_update_seconds",
                            "Time the strategy took to take in newly finished trials (e.g. a REINFORCE step)",
                            ["namespace", "experiment"],
                            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                            registry=REGISTRY)


def proposal(namespace: str, experiment: str) -> None:
    PROPOSALS.labels(namespace, experiment).inc()


def strategy_updated(namespace: str, experiment: str, seconds: float) -> None:
    STRATEGY_UPDATE.labels(namespace, experiment).observe(seconds)


def serve(port: int, namespace: str, experiment: str, addr: str = "0.0.0.0", review=None, *, tls: bool = True):
    """Serve ``/metrics`` over HTTPS to callers allowed ``get nasexperiments/metrics`` on
    this experiment, asked with their own token (a SelfSubjectAccessReview: this pod's
    ServiceAccount needs no review rights; kubenas.cluster.metrics_server)."""
    from kubenas.cluster import kube, metrics_server

    if review is None:
        review = metrics_server.SelfReview(kube.configuration(),
                                           metrics_server.experiment_metrics(namespace, experiment))
    return metrics_server.serve(make_wsgi_app(REGISTRY), port, addr, review, common_name="kubenas-controller",
                                tls=tls)
