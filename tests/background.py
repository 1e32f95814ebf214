"""Threads that run beside a test's ``with`` block (a watch that records, a client that
keeps sending): started on entry; on exit told to stop and joined, and an error one of
them kept fails the block."""
from __future__ import annotations

import threading


class Background:
    """Runs each of ``targets`` in a daemon thread while the ``with`` block does. A target
    loops until ``self.stopping`` is set and appends what it cannot handle to ``self.errors``."""

    join_seconds = 30.0

    def __init__(self, *targets):
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=target, daemon=True) for target in targets]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(self.join_seconds)
        assert not self.errors, self.errors
