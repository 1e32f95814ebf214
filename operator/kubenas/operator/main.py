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
        namespaces=tuple(namespaces),
    )


async def operator(options: Options, *, stop_flag: asyncio.Event | threading.Event | None = None,
                   ready_flag: asyncio.Event | threading.Event | None = None,
                   liveness_endpoint: str | None = None) -> None:
    """Run the operator in the current event loop until ``stop_flag`` is set."""
    handlers.configure(options)
    await kopf.operator(
        registry=handlers.registry,
        standalone=True,  # one replica (Recreate): no peering objects, no extra RBAC
        clusterwide=not options.namespaces,
        namespaces=list(options.namespaces),
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
        memo=kopf.Memo(),
    )


def run(namespaces: Sequence[str] = (), *, liveness_port: int | None = 8080, verbose: bool = False) -> int:
    """`kubenas operator [--namespace NS ...]`: serve until SIGTERM.

    Liveness: http://:8080/healthz (kopf's probe endpoint).
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = options_from_env(namespaces)
    liveness = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    asyncio.run(operator(options, liveness_endpoint=liveness))
    return 0
