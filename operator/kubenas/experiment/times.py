"""Timestamps as Kubernetes writes them (RFC 3339, UTC, seconds)."""
from __future__ import annotations

from datetime import datetime

from kubenas.contract.result import timestamp

# Prometheus buckets of trial durations (seconds): from seconds (digits on a CPU) to a day
# (CIFAR-10 on a GPU); the operator's and the local run's histograms use the same.
DURATION_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400)


def now_iso(now: datetime | None = None) -> str:
    return timestamp(now)


def parse_time(text) -> datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def elapsed_seconds(start: str | None, now: datetime) -> float:
    started = parse_time(start)
    return max(0.0, (now - started).total_seconds()) if started else 0.0


def seconds_between(start, end) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    return max(0.0, (b - a).total_seconds())
