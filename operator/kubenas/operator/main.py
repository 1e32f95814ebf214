"""Entry point of `kubenas operator` (wired by kubenas.cli)."""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence

import kopf

from . import handlers
from .handlers import Options
from .manifests import Settings


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def options_from_env(namespaces: Sequence[str] = ()) -> Options:
    return Options(
        settings=Settings.from_env(),
        manage_rbac=_env_bool("KUBENAS_MANAGE_RBAC", True),
        resync_seconds=float(os.environ.get("KUBENAS_RESYNC_SECONDS", "30")),
        watch_seconds=float(os.environ.get("KUBENAS_WATCH_SECONDS", "600")),
        namespaces=tuple(namespaces),
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
                   liveness_endpoint: str | None = None, foreign_task=None) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set.

    ``foreign_task(task) -> bool`` marks tasks of an embedding application (an
    in-process API server in tests) that kopf should neither wait for nor cancel.
    """
    handlers.configure(options)
    ignored = _ForeignTasks(asyncio.all_tasks(), foreign_task)
    tasks = await kopf.spawn_tasks(
        registry=handlers.registry,
        standalone=True,  # one replica (Recreate): no peering objects, no extra RBAC
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
        memo=kopf.Memo(),
    )
    await kopf.run_tasks(tasks, ignored=ignored)


def run(namespaces: Sequence[str] | None = None, all_namespaces: bool = False, metrics_port: int | None = None,
        *, liveness_port: int | None = 8080, verbose: bool = False) -> int:
    """`kubenas operator [--namespace NS ...] [--all-namespaces]`: serve until SIGTERM.

    Watches the whole cluster unless namespaces are given. Liveness probe:
    http://:8080/healthz (kopf). Prometheus metrics: http://:``metrics_port``/metrics
    (kubenas.operator.metrics; docs/observability.md); it must differ from the liveness port.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if metrics_port is not None and metrics_port == liveness_port:
        raise SystemExit(f"--metrics-port {metrics_port} is the liveness port; use another one (9090)")
    options = options_from_env(() if all_namespaces else (namespaces or ()))
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    if metrics_port is not None:
        from . import metrics

        metrics.serve(metrics_port)
    asyncio.run(operator(options, liveness_endpoint=liveness))
    return 0
