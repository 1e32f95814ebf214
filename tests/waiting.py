"""Waiting on a condition with a timeout (never sleep-and-hope): ``wait_until`` for
synchronous tests, ``wait_for`` inside an event loop (the emulated cluster's tests, whose
predicates read memory only, never HTTP)."""
from __future__ import annotations

import asyncio
import time


def _values(predicate, timeout: float, what: str):
    """``predicate()``, again each time the caller (having slept its own way) asks for the
    next value; at the deadline fails naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        yield last
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    """Poll ``predicate`` until it returns something true (returned); fail naming
    ``what`` and the last value seen."""
    for value in _values(predicate, timeout, what):
        if value:
            return value
        time.sleep(interval)


async def wait_for(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """``wait_until`` for a coroutine: the event loop runs on between polls."""
    for value in _values(predicate, timeout, what):
        if value:
            return value
        await asyncio.sleep(interval)
