"""Per-namespace bounds: one tenant's flood waits, other tenants' experiments start as usual.

Two keys of the cluster admin's policy (kubenas.api.policy; docs/security.md):

* ``maxRunningExperimentsPerNamespace``: experiments that have started and not finished.
  One more waits ``Pending`` before it is judged, with the condition ``Admitted=False``
  (reason ``NamespaceBound``) and a message naming the key; when one of them finishes or
  is deleted it is judged (validation, policy) and, accepted, starts, controller and all.
* ``maxTrialsInFlightPerNamespace``: trials that hold a Job and have not finished. One
  more stays ``Pending`` without a Job (reason ``NamespaceBound``) until one finishes; the
  full resync (``KUBENAS_RESYNC_SECONDS``) gives it its Job. A waiting experiment is judged
  as soon as a running one of its namespace ends (handlers._room_freed).

The operator's work per tenant is bounded with them: a waiting experiment costs a slot
check and one status write (no validation, no controller, no trials), a waiting trial
no Job and no pod.

The decision is pure (:func:`room`); :class:`Slots` makes it hold under concurrent
reconciles (kopf runs handlers in several threads): who holds a slot is what the watch
shows (the Book) plus what this operator granted and the watch has not shown yet, and a
grant is decided under the namespace's lock.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubenas.api.policy import WHERE, TenancyPolicy
from kubenas.contract import PENDING
from kubenas.contract.reasons import NAMESPACE_BOUND

from .status import get_condition, set_condition

ADMITTED = "Admitted"
EXPERIMENT, TRIAL = "experiment", "trial"
KEYS = {EXPERIMENT: "maxRunningExperimentsPerNamespace", TRIAL: "maxTrialsInFlightPerNamespace"}
WHAT = {EXPERIMENT: "experiments run", TRIAL: "trials hold a Job"}
GRANT_SECONDS = 60.0  # a grant the watch has not shown by then is forgotten


@dataclass(frozen=True)
class Wait:
    """Why something waits: ``held`` of the ``bound`` that ``key`` allows are taken."""

    kind: str
    bound: int
    held: int

    @property
    def key(self) -> str:
        return KEYS[self.kind]

    @property
    def message(self) -> str:
        return (f"waiting: {self.held} {WHAT[self.kind]} in this namespace, the most that {self.key} in {WHERE} "
                f"allows ({self.bound}); this {self.kind} starts when one of them finishes")


def bound(policy: TenancyPolicy, kind: str) -> int:
    return policy.max_running_experiments if kind == EXPERIMENT else policy.max_trials_in_flight


def room(holders: Iterable[str], name: str, limit: int) -> bool:
    """May ``name`` take a slot, when ``holders`` hold one each and ``limit`` allows that many (0: no bound)?"""
    others = set(holders) - {name}
    return limit <= 0 or name in set(holders) or len(others) < limit


class Slots:
    """Slots per (kind, namespace). ``observe(kind, namespace)`` returns the names the
    watch shows holding one (the Book: experiments Running, trials with a Job not finished)."""

    def __init__(self, observe: Callable[[str, str], Iterable[str]] | None = None, clock=time.monotonic,
                 grant_seconds: float = GRANT_SECONDS):
        self.observe = observe or (lambda kind, namespace: ())
        self.clock = clock
        self.grant_seconds = grant_seconds
        self._granted: dict[tuple[str, str], dict[str, float]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def take(self, kind: str, namespace: str, name: str, limit: int) -> Wait | None:
        """Take a slot for ``name`` (None: taken, or no bound), or say why it waits."""
        if limit <= 0:
            return None
        key = (kind, namespace)
        with self._lock(key):
            observed = set(self.observe(kind, namespace))
            now = self.clock()
            granted = self._granted.setdefault(key, {})
            for other, at in list(granted.items()):
                if other in observed or now - at >= self.grant_seconds:
                    del granted[other]  # the watch shows it now (or never will)
            holders = observed | set(granted)
            if not room(holders, name, limit):
                return Wait(kind, limit, len(holders - {name}))
            if name not in observed:
                granted[name] = now
            return None

    def release(self, kind: str, namespace: str, name: str) -> None:
        """A grant that was not used (the Job was refused)."""
        with self._lock((kind, namespace)):
            (self._granted.get((kind, namespace)) or {}).pop(name, None)


# ------------------------------------------------------------ what the status says (pure)


def waiting_experiment(conditions: list, wait: Wait, now: str, generation) -> dict:
    """The status of an accepted experiment that waits for room in its namespace."""
    return {"phase": PENDING, "message": wait.message, "observedGeneration": generation,
            "conditions": set_condition(conditions, ADMITTED, "False", NAMESPACE_BOUND, wait.message,
                                        now=now, generation=generation)}


def admitted(conditions: list, now: str, generation) -> list:
    """The conditions of an experiment that starts: ``Admitted=True`` if it had waited."""
    if get_condition(conditions, ADMITTED) is None:
        return conditions
    return set_condition(conditions, ADMITTED, "True", "RoomInNamespace", "there was room in the namespace; started",
                         now=now, generation=generation)


def waiting_trial(status: dict, wait: Wait) -> dict:
    """The changes to a trial's status while it waits for a Job (empty when it says so already)."""
    wanted = {"phase": status.get("phase") or PENDING, "reason": NAMESPACE_BOUND, "message": wait.message}
    return {k: v for k, v in wanted.items() if status.get(k) != v}


def no_longer_waiting(status: dict) -> dict:
    """What a trial that gets its Job after waiting no longer says."""
    return {"reason": None, "message": None} if status.get("reason") == NAMESPACE_BOUND else {}
