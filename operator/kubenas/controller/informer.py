"""The controller's view of its experiment's NASTrials: an informer.

One LIST when it starts (and when its WATCH fails, e.g. 410 Gone), then a WATCH of
changes from the list's version, in a background thread that queues the changed
objects and wakes the loop at once. A watch the server ends (its timeout) is resumed
from the last version seen. A pass (``sync``) therefore costs O(changes), not
O(trials). Only a small record per trial is kept (``kubenas.experiment.TrialRecord``
without details: what the budget reads).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kubenas.cluster.objects import experiment_selector
from kubenas.contract import TRIAL_PLURAL
from kubenas.experiment import TrialRecord, from_trial_object

log = logging.getLogger("kubenas.controller")

WATCH_EVENTS = ("ADDED", "MODIFIED", "DELETED")


@dataclass(frozen=True)
class Change:
    """A trial that is new or changed since the last ``sync``, and what was known of it before."""

    trial: dict
    previous: TrialRecord | None
    record: TrialRecord


class TrialInformer:
    def __init__(self, kube, namespace: str, experiment: str):
        self.kube = kube
        self.namespace = namespace
        self.experiment = experiment
        self.selector = experiment_selector(experiment)
        self._records: dict[str, TrialRecord] = {}
        self._finished = 0                          # records in a terminal phase
        self._queued: dict[str, dict | None] = {}   # name -> latest object (None: deleted)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._generation = 0
        self._watching = False
        self._watcher = None
        self._closed = False

    # ----------------------------------------------------------------- the loop's side

    def records(self) -> list[TrialRecord]:
        return list(self._records.values())

    def records_by_name(self, name: str) -> TrialRecord | None:
        return self._records.get(name)

    @property
    def finished(self) -> int:
        """How many trials are in a terminal phase."""
        return self._finished

    @property
    def watching(self) -> bool:
        return self._watching

    def queued(self) -> dict[str, dict | None]:
        """The changes the watch has queued for the next ``sync`` (a copy)."""
        with self._lock:
            return dict(self._queued)

    def sync(self) -> list[Change]:
        """Take in what changed since the last call (everything after a (re)list): the
        records are updated in completion order, and the changes returned in that order."""
        if not self._watching:
            items, version = self.kube.list_custom_with_version(TRIAL_PLURAL, self.namespace, self.selector)
            with self._lock:
                self._queued = {}
            self._records, self._finished = {}, 0
            self._start_watch(version)
            changed = [t for t in items if self._ours(t)]
        else:
            with self._lock:
                queued, self._queued = self._queued, {}
            changed = []
            for name, trial in queued.items():
                if trial is None:
                    self._forget(name)
                elif self._ours(trial):
                    changed.append(trial)
        changes = []
        for trial in sorted(changed, key=_completion_key):
            previous = self._records.get(trial["metadata"]["name"])
            changes.append(Change(trial, previous, self.remember(trial)))
        return changes

    def remember(self, trial: dict) -> TrialRecord:
        """Record a trial as the loop now knows it (also read-your-writes: one just created)."""
        record = from_trial_object(trial, details=False)
        previous = self._records.get(record.name)
        self._records[record.name] = record
        self._finished += record.finished - (previous is not None and previous.finished)
        return record

    def wait(self, stop: threading.Event, seconds: float, debounce: float) -> None:
        """Until a trial changes (the watch wakes us), ``seconds`` pass, or ``stop``; after
        a wake-up, ``debounce`` more so that a burst of changes is taken in one pass."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._wake.wait(min(left, 0.5)):
                stop.wait(debounce)
                break
        self._wake.clear()

    def close(self) -> None:
        """Stop watching (closes the watch connection)."""
        self._closed = True
        self._wake.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.stop()

    # -------------------------------------------------------------------- the watch

    def watch(self, version: str | None) -> None:
        """Watch from ``version`` in this thread until the watch fails or ``close()``."""
        self._watch(self._next_generation(), version)

    def _next_generation(self) -> int:
        with self._lock:
            self._generation += 1
            self._watching = True
            return self._generation

    def _start_watch(self, version: str | None) -> None:
        threading.Thread(target=self._watch, args=(self._next_generation(), version), daemon=True,
                         name=f"watch-trials-{self.experiment}").start()

    def _watch(self, generation: int, version: str | None) -> None:
        """Feed trial changes to the loop. When a watch ends (the server's timeout) it
        watches again from the last version seen, as an informer does; only an error
        (410 Gone: that version is too old) makes the next ``sync`` list everything again."""
        from kubernetes import watch

        try:
            while not self._closed and generation == self._generation:
                self._watcher = watcher = watch.Watch()
                started = time.monotonic()
                for event in self.kube.watch_custom(TRIAL_PLURAL, self.namespace, self.selector, version,
                                                    watcher=watcher):
                    if self._closed or generation != self._generation:
                        return
                    kind, obj = event.get("type"), event.get("object")
                    if kind == "ERROR":
                        log.info("trial watch ended: %s; listing again", obj)
                        return
                    if not isinstance(obj, dict):
                        continue
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind not in WATCH_EVENTS:
                        continue  # BOOKMARK: only the version moves on
                    name = (obj.get("metadata") or {}).get("name")
                    with self._lock:
                        if generation == self._generation:
                            self._queued[name] = None if kind == "DELETED" else obj
                    self._wake.set()
                if time.monotonic() - started < 1.0:
                    time.sleep(1.0)  # a server that ends watches at once must not make this spin
        except Exception as err:  # noqa: BLE001 - list again on the next sync
            if not self._closed:
                log.info("trial watch failed (%s); listing again", err)
        finally:
            with self._lock:
                if generation == self._generation:
                    self._watching = False
            self._wake.set()

    # ----------------------------------------------------------------------- helpers

    def _ours(self, trial: dict) -> bool:
        # Filter again: a selector is an optimization, the spec is the truth.
        return (trial.get("spec") or {}).get("experiment") == self.experiment

    def _forget(self, name: str) -> None:
        gone = self._records.pop(name, None)
        self._finished -= bool(gone and gone.finished)


def _completion_key(trial: dict):
    status = trial.get("status") or {}
    return (status.get("completionTime") or "9999", (trial.get("spec") or {}).get("index", 0))
