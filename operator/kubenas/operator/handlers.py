"""The kopf wiring: thin handlers that call the reconcilers.

No changing handlers (on.create/update), no timers, no daemons: kubenas puts no
finalizer on anything, so deleting an experiment never waits for the operator, and the
garbage collector removes what it owns (controller Deployment, checkpoint ConfigMap,
trials, and through the trials their Jobs and pods).

* ``on.event`` for experiments, trials and trainer Jobs: react at once. Objects that
  need nothing are recognised from their body alone, with no API call: kopf lists
  every object when it starts (and after 410 Gone), and at 10,000 trials that must not
  cost 10,000 reads (bench/RESULTS.md, control-plane cost).
* a :class:`~kubenas.operator.book.Book` of trial records by experiment (what status
  folding and the median rule need) and of the watched experiments (so that reconciling
  a trial need not read its experiment), in memory: listed in pages at startup, before
  kopf watches anything, so a restarted operator never folds a partial view; then kept
  up to date by the handlers.
* a resync loop (started at startup): folds experiments whose trials changed (debounced)
  and, every ``resync_seconds``, reconciles every experiment and every unfinished trial
  again (deadlines, missed events, failed writes).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import kopf

from kubenas.cluster import kube
from kubenas.cluster.intervals import OPERATOR_RESYNC_SECONDS
from kubenas.cluster.objects import LABEL_COMPONENT, LABEL_EXPERIMENT, LABEL_MANAGED_BY, MANAGED_BY
from kubenas.contract import EARLY_STOPPED, EXPERIMENT_PLURAL, EXPERIMENT_TERMINAL, GROUP, TRIAL_KIND, TRIAL_PLURAL
from kubenas.contract import RUNNING
from kubenas.contract import TRIAL_ACTIVE as ACTIVE
from kubenas.contract import VERSION
from kubenas.experiment import TrialRecord, acknowledged

from . import metrics
from . import tenancy
from .book import Book
from .manifests import Settings
from .reconcile import Reconciler
from .trial_state import job_finished

log = logging.getLogger("kubenas.operator")

registry = kopf.OperatorRegistry()

EXPERIMENTS = dict(group=GROUP, version=VERSION, plural=EXPERIMENT_PLURAL)
TRIALS = dict(group=GROUP, version=VERSION, plural=TRIAL_PLURAL)
TRAINER_JOBS = dict(group="batch", version="v1", plural="jobs",
                    labels={LABEL_MANAGED_BY: MANAGED_BY, LABEL_COMPONENT: "trainer"})


@dataclass
class Options:
    """How the operator runs (from `kubenas operator` flags / the environment)."""

    settings: Settings = field(default_factory=Settings.from_env)
    manage_rbac: bool = True
    resync_seconds: float = OPERATOR_RESYNC_SECONDS  # full pass over experiments and unfinished trials
    debounce_seconds: float = 0.5  # how soon trial changes reach the experiment status
    watch_seconds: int = 600       # server-side watch timeout (whole seconds: the API server refuses 600.0)
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    leader_election: bool = False  # act only while holding the Lease kubenas-operator (leader.py)
    lease_namespace: str = "kubenas-system"


class App:
    """Per-process state kept in kopf's memo."""

    def __init__(self, options: Options):
        self.options = options
        self.reconciler = Reconciler(kube.Kube("operator"), options.settings, manage_rbac=options.manage_rbac)
        self.dirty: set[tuple[str, str]] = set()
        self.wakeup = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task | None = None
        self.book = Book()
        self.reconciler.slots = tenancy.Slots(self.book.holders)  # per-namespace bounds, counted from the Book
        self.progress_at = time.monotonic()  # the resync loop's last sign of life (the liveness probe's)

    def stalled_for(self, now: float | None = None) -> float:
        """Seconds the resync loop has gone beyond its longest expected silence: one
        resync period plus the slowest API call a pass may wait on (each has a
        deadline), twice over. 0 when it is alive."""
        now = time.monotonic() if now is None else now
        allowed = 2 * (self.options.resync_seconds + kube.REQUEST_TIMEOUT[1] + kube.REQUEST_TIMEOUT[0])
        return max(0.0, now - (self.progress_at + allowed))  # against the deadline: exact at it

    def mark(self, namespace: str, experiment: str) -> None:
        """Fold this experiment's status soon (called from handler threads)."""
        self.dirty.add((namespace, experiment))
        self.loop.call_soon_threadsafe(self.wakeup.set)


def _guard(kind: str, fn, *args, app: "App | None" = None, **kwargs):
    if app is not None:
        app.progress_at = time.monotonic()
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the resync loop retries; never kill the handler machinery
        if kube.namespace_terminating(err):  # its objects go with the namespace: not an error
            log.info("not reconciling a %s: its namespace is being deleted", kind)
            return None
        metrics.reconcile_error(kind)
        log.exception("reconciling a %s failed; it will be retried", kind)
        return None


# ------------------------------------------------------------------------- activities

_options: Options | None = None
current_app: App | None = None  # the running operator's state (tests and debugging)


def configure(options: Options) -> None:
    """Set the options before kopf starts (main.run does this)."""
    global _options
    _options = options


@kopf.on.startup(registry=registry)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_):
    options = _options or Options()
    settings.scanning.disabled = True          # no CRD/namespace watching: less RBAC
    settings.posting.enabled = False           # Events are posted by the reconcilers
    # Event handlers keep no progress; should a changing handler ever come, its progress
    # goes to annotations: the CRDs have no status.kopf (a free-form field a trainer
    # could fill with anything the operator would then have to parse).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage()
    settings.watching.server_timeout = int(options.watch_seconds)  # timeoutSeconds=600.0 is a 400
    settings.watching.client_timeout = options.watch_seconds + 60
    settings.watching.chunk_size = 500         # list in pages, not 10,000 objects in one answer
    select_on_the_server(settings)
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10   # a dead API server fails the call, not the worker
    # Handlers wait on the API server, a few calls each: 8 workers held 20 experiments'
    # trials ~19 s before a first look (bench/RESULTS.md, "Scale"). One pooled connection
    # per worker: beyond urllib3's 10 each call opened, then discarded, a TLS connection.
    workers = int(os.environ.get("KUBENAS_OPERATOR_WORKERS", "32"))
    settings.execution.max_workers = workers
    # kopf's last resort SIGKILLs the process 10 min after any stop that was not asked by
    # the stop flag, even one that ended cleanly before main.operator restarted kopf in
    # this process; main._run_bounded bounds a stuck stop instead.
    settings.process.ultimate_exiting_timeout = None
    kube.configuration().connection_pool_maxsize = workers + 4
    global current_app
    if current_app is not None and current_app.task is not None:  # kopf restarted after a failure
        current_app.task.cancel()
    app = App(options)
    # Before kopf watches anything (startup handlers come first): the whole picture.
    await asyncio.to_thread(app.book.fill, app.reconciler.kube, EXPERIMENT_PLURAL, TRIAL_PLURAL,
                            options.namespaces)
    metrics.bind_trial_index(app.book)
    memo["app"] = app
    current_app = app
    app.task = asyncio.create_task(_resync_loop(app))


def label_selector(labels: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def select_on_the_server(settings: kopf.OperatorSettings) -> None:
    """Only kubenas' trainer Jobs reach the operator: the API server filters the Job
    watch by the labels the Job handler asks for. kopf keeps a memory for every object
    its watches deliver (~1 KiB, until the object is deleted) and hands every event to a
    worker; the cluster's other Jobs (CronJobs' runs, other teams' batch work) are none of
    the operator's business, and without this they cost it memory and CPU all the same."""
    settings.watching.label_selectors[(TRAINER_JOBS["group"], TRAINER_JOBS["plural"])] = \
        label_selector(TRAINER_JOBS["labels"])


@kopf.on.cleanup(registry=registry)
async def cleanup(memo: kopf.Memo, **_):
    app: App | None = memo.get("app")
    if app and app.task:
        app.task.cancel()
        await asyncio.gather(app.task, return_exceptions=True)
        app.reconciler.kube.close()


@kopf.on.login(registry=registry)
def login(**kwargs):
    conf = kube.override()
    if conf is not None:
        return kopf.ConnectionInfo(server=conf.host, insecure=True, token=(conf.api_key or {}).get("authorization"))
    return kopf.login_via_client(**kwargs)


class Stalled(kopf.PermanentError):
    """Permanent: kopf fails the probe at once (500) instead of retrying the handler."""


@kopf.on.probe(id="progress", registry=registry)
def progress_probe(memo: kopf.Memo, **_):
    """Liveness that reflects progress: /healthz fails (kopf answers 500 when a probe
    raises) once the resync loop has made no pass and no reconcile for longer than it
    can legitimately take, so the kubelet restarts a wedged operator."""
    app: App | None = memo.get("app")
    if app is None:
        return 0
    stalled = app.stalled_for()
    if stalled > 0:
        raise Stalled(f"the resync loop made no progress for {stalled:.0f} s beyond its longest expected pass")
    return round(time.monotonic() - app.progress_at, 1)


# --------------------------------------------------------------------- decisions (pure)

def trial_needs_reconcile(event_type: str | None, body: dict) -> bool:
    """False for a trial whose terminal phase the operator has already recorded: there is
    nothing left to do (kopf's listing at start replays every such trial). An early-stopped
    trial's Job is deleted by the reconcile that stopped it; a change to such a trial
    (not a listing) is reconciled, in case that deletion did not happen."""
    status = body.get("status") or {}
    if not acknowledged(status):
        return True
    return status.get("phase") == EARLY_STOPPED and event_type is not None


def experiment_needs_reconcile(body: dict) -> bool:
    """False for an event that brings only status news of a running experiment whose
    current spec the operator has seen (status.observedGeneration is its generation):
    the operator's own status writes and the trial counts they fold. Those are folded by
    the resync loop, debounced (App.mark): any number of them cost one fold. Reconciling
    each at once cost a read and a write per event, and each write is an event again:
    kopf hands an object's events to its handler one at a time, so at a few trials/s the
    experiment's backlog in kopf grew without end, every queued event holding a full
    body (bench/RESULTS.md, "Scale": the operator's memory per trial). A new or changed
    spec, and every phase but Running (judging, waiting for room, ending), is reconciled
    at once."""
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    return status.get("phase") != RUNNING or generation is None or status.get("observedGeneration") != generation


def job_needs_reconcile(event_type: str | None, body: dict) -> bool:
    """False for a finished Job seen by a (re-)listing (event type None): its trial has
    either recorded the outcome, or is still active and then reconciled by the resync
    pass, which reads the Job. Every real change of a Job is reconciled."""
    return event_type is not None or not job_finished(body)


def job_concerns_trial(record: TrialRecord | None) -> bool:
    """Whether a change of a trial's Job can change anything for the trial, from the
    Book's record of it (None: not known yet, so it may): not once the trial's end is
    recorded, unless it was stopped early (its Job is deleted if it still runs)."""
    return record is None or not record.acknowledged or record.phase == EARLY_STOPPED


# -------------------------------------------------------------------------- handlers

@kopf.on.event(**EXPERIMENTS, registry=registry)
def experiment_event(type, namespace, name, body, memo: kopf.Memo, **_):
    app: App = memo["app"]
    metrics.observe_experiment(namespace, name, dict(body), deleted=type == "DELETED")
    if type == "DELETED":
        held = name in app.book.holders(tenancy.EXPERIMENT, namespace)
        app.book.drop_experiment(namespace, name)
        app.reconciler.forget("experiment", namespace, name)
        if held:
            _room_freed(app, namespace)
        return
    held = name in app.book.holders(tenancy.EXPERIMENT, namespace)
    app.book.put_experiment(dict(body))
    if not experiment_needs_reconcile(body):
        app.mark(namespace, name)  # folded soon, once for a burst of such events
        return
    _guard("experiment", app.reconciler.experiment, namespace, name, app.book.summaries(namespace, name))
    if held and name not in app.book.holders(tenancy.EXPERIMENT, namespace):
        _room_freed(app, namespace)


def _room_freed(app: App, namespace: str) -> None:
    """A running experiment ended or went: those waiting for room in its namespace are
    judged at once, not at the next full resync (tenancy.py)."""
    for waiting in app.book.waiting_experiments(namespace):
        app.mark(namespace, waiting)


@kopf.on.event(**TRIALS, registry=registry)
def trial_event(type, namespace, name, spec, body, memo: kopf.Memo, **_):
    app: App = memo["app"]
    experiment = spec.get("experiment")
    metrics.observe_trial(namespace, name, dict(body), deleted=type == "DELETED")
    if type == "DELETED":
        app.book.drop_trial(namespace, experiment, name)
    else:
        app.book.put_trial(dict(body))
        if trial_needs_reconcile(type, body):
            _guard("trial", app.reconciler.trial, namespace, name, app.book.summaries(namespace, experiment),
                   body=dict(body), experiment=app.book.experiment(namespace, experiment),
                   job=app.book.watched_job(namespace, name))
    if experiment:
        app.mark(namespace, experiment)


@kopf.on.event(**TRAINER_JOBS, registry=registry)
def job_event(type, namespace, body, memo: kopf.Memo, **_):
    app: App = memo["app"]
    owners = [o for o in (body.get("metadata", {}).get("ownerReferences") or []) if o.get("kind") == TRIAL_KIND]
    if not owners or not job_needs_reconcile(type, body):
        return
    trial = owners[0]["name"]
    experiment = (body.get("metadata", {}).get("labels") or {}).get(LABEL_EXPERIMENT, "")
    if type == "DELETED":
        app.book.drop_job(namespace, trial)
    else:
        app.book.put_job(trial, dict(body))
    if not job_concerns_trial(app.book.record(namespace, experiment, trial)):
        return  # the trial's end is recorded: nothing its Job does changes it (no read)
    watched = app.book.watched_trial(namespace, trial)
    # The trial as last watched, and this Job as delivered: no read. A deleted Job's
    # trial is read afresh (its watched version may predate the stop that deleted it).
    fresh = type == "DELETED" or watched is None
    _guard("trial", app.reconciler.trial, namespace, trial, app.book.summaries(namespace, experiment),
           body=None if fresh else watched, experiment=app.book.experiment(namespace, experiment),
           job=None if type == "DELETED" else dict(body))


# ------------------------------------------------------------------------ resync loop

RESYNC_WORKERS = 8  # reconciliations a full pass runs at once


async def _resync_loop(app: App) -> None:
    loop = asyncio.get_running_loop()
    next_full = loop.time() + app.options.resync_seconds
    while True:
        timeout = max(0.0, next_full - loop.time())
        try:
            await asyncio.wait_for(app.wakeup.wait(), timeout=timeout)
            await asyncio.sleep(app.options.debounce_seconds)  # gather a burst of trial changes
        except asyncio.TimeoutError:
            pass
        app.wakeup.clear()
        dirty, app.dirty = app.dirty, set()
        full = loop.time() >= next_full
        if full:
            next_full = loop.time() + app.options.resync_seconds
        try:
            await asyncio.to_thread(_resync, app, dirty, full)
            app.progress_at = time.monotonic()
        except Exception:  # noqa: BLE001
            log.exception("resync failed; retrying on the next pass")


def _resync(app: App, dirty: set, full: bool) -> None:
    r, book = app.reconciler, app.book
    for namespace, name in sorted(dirty):
        _guard("experiment", r.experiment, namespace, name, book.summaries(namespace, name), app=app)
    if not full:
        return
    r.new_full_pass()
    calls = []
    for key in book.experiment_keys():  # the watched experiments: no LIST needed
        exp = book.experiment(*key)
        if exp is None:
            continue
        summaries = book.summaries(*key)
        if (exp.get("status") or {}).get("phase") in EXPERIMENT_TERMINAL and not any(
                s.phase in ACTIVE for s in summaries):
            continue
        if key not in dirty:
            calls.append(functools.partial(_guard, "experiment", r.experiment, *key, summaries, app=app))
        calls += [functools.partial(_guard, "trial", r.trial, key[0], s.name, summaries, experiment=exp, app=app)
                  for s in summaries if s.phase in ACTIVE]
    # A few at a time: one by one, a pass over 20 experiments' 100 running trials took
    # minutes on a busy API server, and no experiment status was folded meanwhile.
    with ThreadPoolExecutor(max_workers=RESYNC_WORKERS, thread_name_prefix="kubenas-resync") as pool:
        list(pool.map(lambda call: call(), calls))
