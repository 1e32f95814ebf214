"""How many Events one experiment's trials may post: a token bucket per experiment.

A tenant whose trials all fail (a broken image, a quota) must not flood the API server
and etcd with Events (two per failed trial: one on the trial, one on its experiment).
Like client-go's EventRecorder spam filter, each experiment gets a burst, then one Event
per refill interval; what is left out is counted and said in the next Event that goes
out ("... ; 37 similar Events about this experiment's trials were not posted"). The
trial's status says the same thing anyway; Events are for attention, not for records.
Events about the experiment itself (Accepted, the finish, refusals) are not limited.
"""
from __future__ import annotations

import threading
import time

BURST = 25
REFILL_SECONDS = 30.0


class EventBudget:
    def __init__(self, burst: int = BURST, refill_seconds: float = REFILL_SECONDS, clock=time.monotonic):
        self.burst, self.refill_seconds, self.clock = burst, refill_seconds, clock
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], list] = {}  # key -> [tokens, last refill, suppressed]

    def take(self, key: tuple[str, str]) -> int | None:
        """None: leave this Event out. Otherwise post it, noting how many were left out
        since the last one that went out (0: none)."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(key, [float(self.burst), now, 0])
            bucket[0] = min(float(self.burst), bucket[0] + (now - bucket[1]) / self.refill_seconds)
            bucket[1] = now
            if bucket[0] < 1.0:
                bucket[2] += 1
                return None
            bucket[0] -= 1.0
            suppressed, bucket[2] = bucket[2], 0
            return suppressed

    def forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._buckets.pop(key, None)


def with_suppressed(message: str, suppressed: int) -> str:
    if not suppressed:
        return message
    return f"{message}; {suppressed} similar Event{'s' if suppressed != 1 else ''} about this experiment's " \
           f"trials were not posted (rate limit)"
