"""Readiness probes for the node stand-in (tests/realtier/node.py), as a kubelet runs them.

A container with an ``httpGet`` readinessProbe starts not ready; a prober thread GETs
``http://<podIP>:<port><path>`` every ``periodSeconds`` (after ``initialDelaySeconds``)
and writes the pod's ``Ready``/``ContainersReady`` conditions and the container's
``ready`` when ``successThreshold`` answers in a row were 2xx/3xx (ready) or
``failureThreshold`` were not (not ready), until the container's process ends. So the
ReplicaSet controller's rolling update waits for a new pod to answer (maxUnavailable 0),
and a pod that reports not ready while it drains (kubenas serve --drain-seconds) is
shown so. Only httpGet probes (the ones kubenas' manifests use); liveness is not run.
"""
from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request


def readiness_probe(container: dict) -> dict | None:
    """The container's httpGet readinessProbe, or None (ready once running)."""
    probe = container.get("readinessProbe") or {}
    return probe if probe.get("httpGet") else None


def _port(container: dict, port) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    named = {p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []}
    return named[port]


def probe_once(url: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return 200 <= answer.status < 400
    except urllib.error.HTTPError as err:
        return 200 <= err.code < 400
    except OSError:
        return False


def watch_readiness(runner, container: dict, proc, write) -> None:
    """Probe ``container`` of ``runner`` (a PodRunner) while ``proc`` runs; ``write(ready)``
    records each change of readiness in the pod's status."""
    probe = readiness_probe(container)
    if probe is None:
        return
    get = probe["httpGet"]
    url = f"http://{runner.ip}:{_port(container, get['port'])}{get.get('path', '/')}"
    period = float(probe.get("periodSeconds", 10))
    timeout = float(probe.get("timeoutSeconds", 1))
    needed = {True: int(probe.get("successThreshold", 1)), False: int(probe.get("failureThreshold", 3))}

    def run():
        time.sleep(float(probe.get("initialDelaySeconds", 0)))
        ready, streak, last = False, 0, None
        while proc.poll() is None:
            ok = probe_once(url, timeout)
            streak = streak + 1 if ok == last else 1
            last = ok
            if ok != ready and streak >= needed[ok] and proc.poll() is None:
                ready = ok
                write(ready)
            time.sleep(period)

    threading.Thread(target=run, daemon=True, name=f"readiness-{runner.ns}/{runner.name}").start()
