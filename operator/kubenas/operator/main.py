"""Entry point of `kubenas operator` (wired by kubenas.cli)."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence

import kopf

from kubenas.cluster.intervals import OPERATOR_RESYNC_ENV, OPERATOR_RESYNC_SECONDS

log = logging.getLogger("kubenas.operator")

from . import decoding, handlers, metrics
from .handlers import Options
from .manifests import Settings


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def _env_seconds(name: str, default: int) -> int:
    """A whole number of seconds: the API server parses timeoutSeconds as an integer and
    answers 400 to "600.0" (which once crash-looped the operator on a real cluster)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number of seconds; set it to a whole number such as {default}")
    if value < 1:
        raise SystemExit(f"{name}={raw!r} must be at least 1 second; set it to a whole number such as {default}")
    return int(value)


def options_from_env(namespaces: Sequence[str] = ()) -> Options:
    return Options(
        settings=Settings.from_env(),
        manage_rbac=_env_bool("KUBENAS_MANAGE_RBAC", True),
        resync_seconds=float(os.environ.get(OPERATOR_RESYNC_ENV, OPERATOR_RESYNC_SECONDS)),
        watch_seconds=_env_seconds("KUBENAS_WATCH_SECONDS", 600),
        namespaces=tuple(namespaces),
        leader_election=_env_bool("KUBENAS_LEADER_ELECTION", False),
        lease_namespace=os.environ.get("POD_NAMESPACE", "kubenas-system"),
    )


class _ForeignTasks:
    """The tasks kopf must not wait for at shutdown: those that existed before it
    started, plus (when embedded, as in tests) those ``foreign`` says are not its own."""

    def __init__(self, existing, foreign=None):
        self.existing = set(existing)
        self.foreign = foreign

    def __contains__(self, task) -> bool:
        return task in self.existing or bool(self.foreign and self.foreign(task))

    def __iter__(self):
        return iter(self.existing)

    def __len__(self) -> int:
        return len(self.existing)


async def operator(options: Options, *, stop_flag: asyncio.Event | threading.Event | None = None,
                   ready_flag: asyncio.Event | threading.Event | None = None,
                   liveness_endpoint: str | None = None, foreign_task=None,
                   backoff: Backoff | None = None) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set or a signal
    (SIGTERM, SIGINT) asks kopf to stop.

    kopf ends all of its tasks when any watch fails with an error it does not retry
    itself (a 400, 403 or 500 answer to a watch, an ERROR event other than 410 Gone). The
    operator does not exit then: it logs the cause, waits (``backoff``: exponential with
    jitter, reset after a healthy run) and starts kopf again, which lists and watches
    anew (the Book is refilled first). It exits only when asked to stop, or when its
    options are wrong (SystemExit before this point).

    ``foreign_task(task) -> bool`` marks tasks of an embedding application (an
    in-process API server in tests) that kopf should neither wait for nor cancel.
    """
    handlers.configure(options)
    decoding.install()  # one deeply nested object must not stop kopf's lists and watches
    backoff = backoff or Backoff()
    loop = asyncio.get_running_loop()
    elector = None
    if options.leader_election:
        from .leader import LeaderElector

        elector = LeaderElector(options.lease_namespace)
    while True:
        term = None
        if elector is not None:
            if not await _lead(elector, stop_flag):
                return  # asked to stop while waiting to lead
            term = _Term(elector, stop_flag)
        ignored = _ForeignTasks(asyncio.all_tasks(), foreign_task)
        started = loop.time()
        delay = 0.0
        try:
            tasks = await kopf.spawn_tasks(
                registry=handlers.registry,
                standalone=True,  # no kopf peering: the Lease (leader.py) decides who acts
                clusterwide=not options.namespaces,
                namespaces=list(options.namespaces),
                stop_flag=term.flag if term else stop_flag,
                ready_flag=ready_flag,
                liveness_endpoint=liveness_endpoint,
                memo=kopf.Memo(),
            )
            if term:
                term.start()
            await _run_bounded(tasks, ignored)
            if term and term.lost:
                log.error("lost the lease %s/%s; stopped acting, waiting to lead again",
                          elector.namespace, elector.name)
                continue
            if elector is not None:
                await asyncio.to_thread(elector.release)
            return  # asked to stop (stop_flag or a signal)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure of kopf's machinery: watch again
            if _stopping(stop_flag):
                return
            delay = backoff.next(healthy_for=loop.time() - started)
            metrics.operator_restart(type(err).__name__)
            log.error("kopf stopped: %s: %s; listing and watching again in %.1f s",
                      type(err).__name__, err, delay)
        finally:
            if term:
                term.stop()
        await asyncio.sleep(delay)
        if _stopping(stop_flag):
            return


STOP_DEADLINE_SECONDS = 60.0
STUCK_EXIT_CODE = 70  # EX_SOFTWARE: the Deployment starts a fresh process


async def _run_bounded(tasks, ignored, deadline: float = STOP_DEADLINE_SECONDS) -> None:
    """``kopf.run_tasks``, bounded once kopf begins to stop.

    kopf stops when one of its root tasks ends (a watch failed, a signal, the stop flag).
    If its shutdown then waits on something that never ends (seen after an injected 400
    on a watch: the event loop idle, no thread busy, no log line), the operator would sit
    there acting for nobody. ``deadline`` seconds after the first root task ended, the
    process exits ``STUCK_EXIT_CODE`` instead and its Deployment starts a fresh one, which
    lists and watches anew (everything it needs is in the API server). This replaces
    kopf's own last resort (``settings.process.ultimate_exiting_timeout``, off in
    handlers.configure), which also fired 10 minutes after a stop that had ended
    cleanly and been followed by a restart in this process."""
    runner = asyncio.ensure_future(kopf.run_tasks(tasks, ignored=ignored))
    first = asyncio.ensure_future(asyncio.wait(list(tasks), return_when=asyncio.FIRST_COMPLETED))
    try:
        done, _ = await asyncio.wait({runner, first}, return_when=asyncio.FIRST_COMPLETED)
        if runner not in done:
            try:
                await asyncio.wait_for(asyncio.shield(runner), deadline)
            except asyncio.TimeoutError:
                log.critical("kopf did not stop within %.0f s of beginning to; exiting %d so that a fresh "
                             "process lists and watches anew", deadline, STUCK_EXIT_CODE)
                logging.shutdown()
                os._exit(STUCK_EXIT_CODE)
        runner.result()  # kopf's own error, if it ended with one
    except asyncio.CancelledError:
        runner.cancel()
        raise
    finally:
        first.cancel()


async def _lead(elector, stop_flag) -> bool:
    """Wait until this replica holds the Lease (True), or until asked to stop (False)."""
    waiting_logged = False
    while not _stopping(stop_flag):
        try:
            if await asyncio.to_thread(elector.try_acquire_or_renew):
                log.info("leading: holding the lease %s/%s as %s", elector.namespace, elector.name,
                         elector.identity)
                return True
        except Exception as err:  # noqa: BLE001 - the API server may be away: try again
            log.warning("cannot read the lease %s/%s: %s", elector.namespace, elector.name, err)
        if not waiting_logged:
            log.info("another replica leads (lease %s/%s); standing by", elector.namespace, elector.name)
            waiting_logged = True
        await asyncio.sleep(elector.renew_seconds)
    return False


class _Term:
    """One term as leader: renews the Lease every ``renew_seconds``; when it cannot
    renew before the Lease would expire (or when asked to stop), sets ``flag``, which
    stops kopf."""

    def __init__(self, elector, stop_flag):
        self.elector, self.stop_flag = elector, stop_flag
        self.flag = asyncio.Event()
        self.lost = False
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._renew())

    def stop(self) -> None:
        if self.task:
            self.task.cancel()

    async def _renew(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        margin = self.elector.lease_seconds - self.elector.renew_seconds
        while not self.flag.is_set():
            await asyncio.sleep(min(self.elector.renew_seconds, 0.5) if _stopping(self.stop_flag) else
                                self.elector.renew_seconds)
            if _stopping(self.stop_flag):
                self.flag.set()
                return
            try:
                if await asyncio.to_thread(self.elector.try_acquire_or_renew):
                    renewed = loop.time()
                    continue
            except Exception as err:  # noqa: BLE001
                log.warning("cannot renew the lease: %s", err)
            if loop.time() - renewed >= margin:
                self.lost = True
                self.flag.set()
                return


def _stopping(flag) -> bool:
    return flag is not None and flag.is_set()


class Backoff:
    """Delays between restarts of kopf's watches: ``base * 2**n`` with full jitter,
    capped at ``cap``; n resets after a run that stayed healthy for ``reset_after`` s."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, reset_after: float = 300.0, rng=None):
        import random

        self.base, self.cap, self.reset_after = base, cap, reset_after
        self.failures = 0
        self.rng = rng or random.Random()

    def next(self, healthy_for: float = 0.0) -> float:
        if healthy_for >= self.reset_after:
            self.failures = 0
        ceiling = min(self.cap, self.base * 2 ** self.failures)
        self.failures += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)


def run(namespaces: Sequence[str] | None = None, all_namespaces: bool = False, metrics_port: int | None = None,
        *, liveness_port: int | None = 8080, verbose: bool = False) -> int:
    """`kubenas operator [--namespace NS ...] [--all-namespaces]`: serve until SIGTERM.

    Watches the whole cluster unless namespaces are given. Liveness probe:
    http://:8080/healthz (kopf; it shows the progress probe only, no counts of anything).
    Prometheus metrics: https://:``metrics_port``/metrics to a bearer token allowed ``get``
    on ``/metrics`` (kubenas.operator.metrics; docs/observability.md); it must differ from
    the liveness port.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if metrics_port is not None and metrics_port == liveness_port:
        raise SystemExit(f"--metrics-port {metrics_port} is the liveness port; use another one (9090)")
    options = options_from_env(() if all_namespaces else (namespaces or ()))
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    if metrics_port is not None:
        from . import metrics

        from kubenas.cluster.metrics_server import ServingError

        try:
            metrics.serve(metrics_port)
        except ServingError as err:
            raise SystemExit(f"cannot serve metrics on :{metrics_port}: {err}")
    asyncio.run(operator(options, liveness_endpoint=liveness))
    return 0
