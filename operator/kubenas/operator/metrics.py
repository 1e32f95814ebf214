"""The operator's Prometheus metrics (docs/observability.md has the catalogue).

Names follow the rules of docs/observability.md ("Metrics"): ``kubenas_`` prefix, counters end in ``_total``,
durations are histograms in seconds, labels have bounded cardinality (namespace,
experiment, phase, outcome, reason; never a trial name).

Two kinds of metrics:

* **State gauges** (experiments by phase, trials by phase, best reward, GPUs requested
  by pending and running trials) are computed at scrape time by a custom collector from
  what the operator already holds in memory: its book of trial summaries and the
  last seen phase of each experiment. They cannot drift, and after a restart they are
  right as soon as kopf has listed the objects.
* **Transition counters and histograms** (trials created, finished, retried; trial
  duration; queue wait; experiments finished; reconcile errors) are updated when a
  transition is seen. Trial transitions are derived from the trial objects the watch
  delivers (:func:`observe_trial`), and each is counted once per operator lifetime: a
  trial first seen already finished (acknowledged by an earlier operator incarnation)
  is not counted again; one first seen already running adds no queue-wait sample.
  Memory stays flat: only unfinished trials are tracked.
"""
from __future__ import annotations

import logging
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from kubenas.cluster.objects import accepted_spec
from kubenas.contract import EXPERIMENT_PHASES, EXPERIMENT_TERMINAL, PENDING, RUNNING, TRIAL_PHASES
from kubenas.contract import TRIAL_TERMINAL as TERMINAL
from kubenas.experiment import TrialRecord, acknowledged, best_reward, seconds_between
from kubenas.experiment.times import DURATION_BUCKETS

log = logging.getLogger("kubenas.operator")

disable_created_metrics()  # no *_created series next to every counter and histogram
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes & co: the operator's memory stays flat

# Queue wait: the pod starts at once, or waits for Kueue admission / a GPU node to come up.
QUEUE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400)


TRIALS_CREATED = Counter("kubenas_trials_created_total", "Trials whose Job the operator created",
                         ["namespace", "experiment"], registry=REGISTRY)
TRIALS_FINISHED = Counter("kubenas_trials_finished_total",
                          "Trials that reached a terminal phase, by outcome (Succeeded, Failed, EarlyStopped)",
                          ["namespace", "experiment", "outcome"], registry=REGISTRY)
TRIAL_RETRIES = Counter("kubenas_trial_retries_total",
                        "Trial pods that failed for a retryable reason (evicted, preempted, node lost) and were "
                        "replaced; these do not count as failed trials", ["namespace", "experiment"],
                        registry=REGISTRY)
TRIAL_DURATION = Histogram("kubenas_trial_duration_seconds",
                           "Trial run time, from its pod starting to the trial's completion",
                           ["namespace", "experiment", "outcome"], buckets=DURATION_BUCKETS, registry=REGISTRY)
QUEUE_WAIT = Histogram("kubenas_trial_queue_wait_seconds",
                       "Time from a trial's creation to its pod running (Kueue admission, scheduling, "
                       "GPU node scale-up, image pull)", ["namespace", "experiment"],
                       buckets=QUEUE_BUCKETS, registry=REGISTRY)
EXPERIMENTS_FINISHED = Counter("kubenas_experiments_finished_total",
                               "Experiments that finished, by outcome (Succeeded, Failed, Stopped) and reason",
                               ["namespace", "outcome", "reason"], registry=REGISTRY)
RECONCILE_ERRORS = Counter("kubenas_reconcile_errors_total", "Reconciliations that raised (they are retried)",
                           ["kind"], registry=REGISTRY)
for _kind in ("experiment", "trial"):
    RECONCILE_ERRORS.labels(_kind)  # exported as 0 from the start: rate() and alerts need the series
WATCH_RESTARTS = Counter("kubenas_operator_watch_restarts_total",
                         "Times kopf's watches failed and the operator listed and watched again, by error type",
                         ["error"], registry=REGISTRY)


# ------------------------------------------------------------------ reconciler calls


def trial_job_created(namespace: str, experiment: str) -> None:
    TRIALS_CREATED.labels(namespace, experiment).inc()


def experiment_finished(namespace: str, phase: str, reason: str) -> None:
    EXPERIMENTS_FINISHED.labels(namespace, phase, reason).inc()


def reconcile_error(kind: str) -> None:
    RECONCILE_ERRORS.labels(kind).inc()


def operator_restart(error: str) -> None:
    WATCH_RESTARTS.labels(error[:64]).inc()


# ------------------------------------------------------------------ helpers (pure)


def _quantity(value) -> float:
    try:
        return float(str(value))
    except ValueError:
        return 0.0


def gpus_per_trial(spec: dict | None) -> float:
    """GPUs one trial pod asks for: every ``*/gpu`` extended resource (nvidia.com/gpu,
    amd.com/gpu, ...) of ``spec.trial.template.resources``; limits first, as Kubernetes
    requires extended-resource requests to equal limits."""
    resources = (((spec or {}).get("trial") or {}).get("template") or {}).get("resources") or {}
    for key in ("limits", "requests"):
        values = resources.get(key) or {}
        total = sum(_quantity(v) for k, v in values.items() if str(k).endswith("/gpu"))
        if total:
            return total
    return 0.0


# ------------------------------------------------------------------ tracked state


class _State:
    def __init__(self):
        self.lock = threading.Lock()
        self.experiments: dict[tuple[str, str], dict] = {}
        self.unfinished: dict[tuple[str, str], int] = {}      # trial -> retries seen
        self.not_started: dict[tuple[str, str], str] = {}     # trial -> creation time
        self.trial_index = None                              # the operator's Book (or () -> it)

    def forget(self, key: tuple[str, str], *tables: dict) -> None:
        with self.lock:
            for table in tables:
                table.pop(key, None)

    def reset(self) -> None:
        with self.lock:
            self.experiments.clear()
            self.unfinished.clear()
            self.not_started.clear()
            self.trial_index = None


STATE = _State()


def bind_trial_index(source) -> None:
    """``source`` (or ``source()``) has ``items()``: (namespace, experiment) and its trial records."""
    STATE.trial_index = source


def _never_raise(fn):
    """Metrics must never break a handler."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001
            log.exception("updating metrics failed")
            return None
    return wrapper


PER_EXPERIMENT = (TRIALS_CREATED, TRIAL_RETRIES, QUEUE_WAIT)
PER_EXPERIMENT_OUTCOME = (TRIALS_FINISHED, TRIAL_DURATION)


def remove_experiment_series(namespace: str, name: str) -> None:
    """A deleted experiment's labelled series go with it: one tenant's thousands of
    experiments do not pile up in the operator's memory and every scrape, and its names
    stop being served."""
    for metric in PER_EXPERIMENT:
        try:
            metric.remove(namespace, name)
        except KeyError:
            pass
    for metric in PER_EXPERIMENT_OUTCOME:
        for outcome in TERMINAL:
            try:
                metric.remove(namespace, name, outcome)
            except KeyError:
                pass


@_never_raise
def observe_experiment(namespace: str, name: str, body: dict | None, deleted: bool = False) -> None:
    """Remember an experiment's phase, goal and GPUs per trial (from every watch event)."""
    key = (namespace, name)
    if deleted or body is None:
        if deleted:
            remove_experiment_series(namespace, name)
        return STATE.forget(key, STATE.experiments)
    spec = accepted_spec(body) or body.get("spec") or {}
    info = {"phase": (body.get("status") or {}).get("phase") or PENDING,
            "goal": (spec.get("objective") or {}).get("goal") or "maximize",
            "gpus": gpus_per_trial(spec)}
    with STATE.lock:
        first = key not in STATE.experiments
        STATE.experiments[key] = info
    if first and info["phase"] not in EXPERIMENT_TERMINAL:
        start_experiment_series(namespace, name)


def start_experiment_series(namespace: str, name: str) -> None:
    """A running experiment's counters are exported at 0 from the start: a series that
    first appears at 1 hides that step from rate() and increase(), so the first failed or
    retried trial would reach neither the dashboard nor the alerts (the Prometheus tests,
    tests/observability/alerts_test.yaml and tests/e2e/test_prometheus.py, show it)."""
    for metric in PER_EXPERIMENT:
        metric.labels(namespace, name)
    for outcome in TERMINAL:
        TRIALS_FINISHED.labels(namespace, name, outcome)


@_never_raise
def observe_trial(namespace: str, name: str, body: dict | None, deleted: bool = False) -> None:
    """Count a trial's transitions from its object, once per operator lifetime."""
    key = (namespace, name)
    if deleted or body is None:
        return STATE.forget(key, STATE.unfinished, STATE.not_started)
    status = body.get("status") or {}
    experiment = (body.get("spec") or {}).get("experiment") or ""
    phase = status.get("phase") or PENDING
    start = status.get("startTime")
    recorded = acknowledged(status)
    with STATE.lock:
        if not recorded and key not in STATE.unfinished:
            STATE.unfinished[key] = int(status.get("retries") or 0)
            if not start and phase not in TERMINAL:
                STATE.not_started[key] = (status.get("createdTime")
                                          or (body.get("metadata") or {}).get("creationTimestamp") or "")
        if key in STATE.not_started and (start or phase in TERMINAL):
            created = STATE.not_started.pop(key)
            wait = seconds_between(created, start) if start else None
            if wait is not None:
                QUEUE_WAIT.labels(namespace, experiment).observe(wait)
        if key in STATE.unfinished:
            retries = int(status.get("retries") or 0)
            if retries > STATE.unfinished[key]:
                TRIAL_RETRIES.labels(namespace, experiment).inc(retries - STATE.unfinished[key])
                STATE.unfinished[key] = retries
            if recorded:
                del STATE.unfinished[key]
                TRIALS_FINISHED.labels(namespace, experiment, phase).inc()
                duration = seconds_between(start, status.get("completionTime"))
                if duration is not None:
                    TRIAL_DURATION.labels(namespace, experiment, phase).observe(duration)


# ------------------------------------------------------------------ scrape-time gauges


def _snapshot_index() -> dict:
    source = STATE.trial_index
    if source is None:
        return {}
    book = source() if callable(source) else source
    if book is None:
        return {}
    return {key: list(summaries) for key, summaries in book.items()}  # Book.items() copies under its lock


class StateCollector:
    """Gauges computed at scrape time from the operator's in-memory view."""

    def describe(self):
        return []

    def collect(self):
        with STATE.lock:
            experiments = dict(STATE.experiments)
        by_experiment: dict[tuple[str, str], list[TrialRecord]] = {}
        for key, summaries in _snapshot_index().items():
            if isinstance(key, tuple) and len(key) == 2 and key[1]:
                by_experiment.setdefault(key, []).extend(summaries)

        exp_phase = GaugeMetricFamily("kubenas_experiments", "Experiments by phase", labels=["namespace", "phase"])
        counts: dict[str, dict[str, int]] = {}
        for (namespace, _), info in experiments.items():
            per = counts.setdefault(namespace, {p: 0 for p in EXPERIMENT_PHASES})
            per[info["phase"]] = per.get(info["phase"], 0) + 1
        for namespace, per in sorted(counts.items()):
            for phase, n in sorted(per.items()):
                exp_phase.add_metric([namespace, phase], n)
        yield exp_phase

        trials = GaugeMetricFamily("kubenas_trials", "Trials by phase", labels=["namespace", "experiment", "phase"])
        best = GaugeMetricFamily("kubenas_experiment_best_reward",
                                 "Best reward (objective metric) of the experiment's succeeded trials",
                                 labels=["namespace", "experiment"])
        gpus = GaugeMetricFamily("kubenas_gpus_requested",
                                 "GPUs requested by the experiment's trials, by trial phase: Pending is the demand "
                                 "a GPU node pool autoscaler has to meet, Running what is in use",
                                 labels=["namespace", "experiment", "phase"])
        for key in sorted(set(experiments) | set(by_experiment)):
            namespace, name = key
            summaries = by_experiment.get(key, [])
            info = experiments.get(key) or {"goal": "maximize", "gpus": 0.0}
            per = {p: 0 for p in TRIAL_PHASES}
            for s in summaries:
                per[s.phase] = per.get(s.phase, 0) + 1
            for phase, n in per.items():
                trials.add_metric([namespace, name, phase], n)
            reward = best_reward(summaries, info["goal"])
            if reward is not None:
                best.add_metric([namespace, name], reward)
            for phase in (PENDING, RUNNING):
                gpus.add_metric([namespace, name, phase], per[phase] * info["gpus"])
        yield trials
        yield best
        yield gpus


REGISTRY.register(StateCollector())


# ----------------------------------------------------------------------------- serving


def serve(port: int, addr: str = "0.0.0.0", review=None, *, tls: bool = True):
    """Serve ``/metrics`` on ``port`` (0: any free port) in a daemon thread, over HTTPS, to
    callers allowed ``get`` on the non-resource URL ``/metrics`` (TokenReview +
    SubjectAccessReview: kubenas.cluster.metrics_server); returns the server."""
    from kubenas.cluster import kube, metrics_server

    if review is None:
        review = metrics_server.DelegatedReview(kube.api_client("operator"), metrics_server.non_resource())
    return metrics_server.serve(make_wsgi_app(REGISTRY), port, addr, review, common_name="kubenas-operator", tls=tls)
