"""A seam for the operator's Prometheus metrics (issue 5 fills it in).

The reconcilers call these functions at each state change; they only count here.
Names follow DESIGN.md section 5 (``kubenas_`` prefix, ``_total`` counters, bounded
label cardinality: namespace, experiment, phase, never a trial name).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry(auto_describe=True)

TRIALS_CREATED = Counter("kubenas_trial_jobs_created_total", "Trial Jobs created by the operator",
                         ["namespace", "experiment"], registry=REGISTRY)
TRIALS_FINISHED = Counter("kubenas_trials_finished_total", "Trials that reached a terminal phase",
                          ["namespace", "experiment", "phase"], registry=REGISTRY)
EXPERIMENTS_FINISHED = Counter("kubenas_experiments_finished_total", "Experiments that finished",
                               ["namespace", "phase", "reason"], registry=REGISTRY)
RECONCILE_ERRORS = Counter("kubenas_reconcile_errors_total", "Reconciliations that raised",
                           ["kind"], registry=REGISTRY)


def trial_job_created(namespace: str, experiment: str) -> None:
    TRIALS_CREATED.labels(namespace, experiment).inc()


def trial_finished(namespace: str, experiment: str, phase: str) -> None:
    TRIALS_FINISHED.labels(namespace, experiment, phase).inc()


def experiment_finished(namespace: str, phase: str, reason: str) -> None:
    EXPERIMENTS_FINISHED.labels(namespace, phase, reason).inc()


def reconcile_error(kind: str) -> None:
    RECONCILE_ERRORS.labels(kind).inc()
