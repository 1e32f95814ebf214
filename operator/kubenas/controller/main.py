"""`kubenas controller --namespace NS --experiment NAME`: one experiment's search loop.

Each pass (every ``poll_seconds``):

1. read the experiment and the spec the operator accepted (annotation);
2. bring its view of the experiment's NASTrials up to date and the strategy with it
   (``rebuild``: register every new proposal, observe every newly finished trial in
   completion order; both are idempotent). The view is an informer: one LIST when the
   controller starts (and when its watch fails, e.g. 410 Gone), then a WATCH of changes in a
   background thread that also wakes the loop at once, so a pass costs O(changes), not
   O(trials), and a finished trial is replaced without waiting for the next poll. Only a
   small record per trial is kept (index, phase, reward, completion time);
3. create NASTrials (deterministic names ``<experiment>-<index>``) to keep
   ``parallelTrials`` in flight, until the budget is spent;
4. checkpoint ``strategy.state_dict()`` into the ConfigMap ``<experiment>-strategy``
   (owned by the experiment) when it changed, at most every ``checkpoint_seconds`` and
   once more when the experiment ends or the controller stops: the state grows with the
   trials (hashes of seen candidates), so writing it on every pass would cost O(trials)
   per pass; what a restart finds missing from it, it replays from the trials.

Killing the pod at any moment loses nothing: trials are the source of truth, the
checkpoint restores learned policies exactly, and a retried create of the same index
answers 409.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone

from kubenas.api import EXPERIMENT_PLURAL, TRIAL_PLURAL
from kubenas.api.trials import strategy_reward

from ..operator.budget import elapsed_seconds, trials_to_start
from ..operator.kube import Kube
from ..operator.manifests import (LABEL_EXPERIMENT, accepted_spec, checkpoint_configmap, checkpoint_name,
                                  label_value, trial_object)
from ..operator.status import _number
from ..operator.trial_state import PENDING, TERMINAL
from . import metrics

log = logging.getLogger("kubenas.controller")

EXPERIMENT_TERMINAL = ("Succeeded", "Failed", "Stopped")
WAKE_DEBOUNCE_SECONDS = 0.05  # after a trial change, before the pass that reacts to it
MAX_CHECKPOINT_BYTES = 900 * 1024  # a ConfigMap holds 1 MiB, keys and metadata included
CHECKPOINT_SECONDS = 60.0


def _candidate(trial: dict) -> dict:
    spec = trial.get("spec") or {}
    return {"architecture": spec.get("architecture") or {}, "hyperparameters": spec.get("hyperparameters") or {}}


def _record(trial: dict) -> dict:
    """What the controller remembers about a trial: what the budget decisions read."""
    status = trial.get("status") or {}
    return {"name": trial["metadata"]["name"], "index": (trial.get("spec") or {}).get("index"),
            "phase": status.get("phase") or PENDING, "reward": _number(status.get("reward"))}


def _completion_key(trial: dict):
    status = trial.get("status") or {}
    return (status.get("completionTime") or "9999", (trial.get("spec") or {}).get("index", 0))


class Controller:
    def __init__(self, namespace: str, experiment: str, kube: Kube | None = None, poll_seconds: float = 3.0,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.namespace = namespace
        self.name = experiment
        self.kube = kube or Kube("controller")
        self.poll_seconds = poll_seconds
        self.checkpoint_seconds = checkpoint_seconds
        self._checkpoint_at: float | None = None   # monotonic time of the last checkpoint write
        self._checkpoint_exists = False
        self._experiment: dict | None = None       # last read, for the checkpoint on stop
        self._finished = 0                          # records in a terminal phase
        self.strategy = None
        self.restored = False          # True when the strategy was restored from a checkpoint
        self._saved_state: dict | None = None
        self.created: list[str] = []   # trials this incarnation created (tests, logs)
        self._warned_checkpoint_size = False
        self._observed = 0             # finished trials the strategy has taken in (metrics)
        # The informer: small records of this experiment's trials, and what changed since the last pass.
        self._records: dict[str, dict] = {}
        self._changes: dict[str, dict | None] = {}  # name -> latest object (None: deleted)
        self._changes_lock = threading.Lock()
        self._wake = threading.Event()
        self._watch_generation = 0
        self._watching = False
        self._watcher = None
        self._closed = False

    # --------------------------------------------------------------------- strategy

    def _build_strategy(self, experiment: dict, spec: dict):
        from kubenas.space import SearchSpace
        from kubenas.strategies import make_strategy

        space = SearchSpace.from_spec(spec["searchSpace"])
        strategy = make_strategy(spec["strategy"], space, spec["objective"]["goal"])
        checkpoint = self.kube.get("ConfigMap", self.namespace, checkpoint_name(self.name))
        if checkpoint:
            try:
                payload = json.loads((checkpoint.get("data") or {}).get("checkpoint.json") or "{}")
                if payload.get("experimentUid") not in (None, experiment["metadata"].get("uid")):
                    raise ValueError("the checkpoint belongs to an earlier experiment of the same name")
                strategy.load_state_dict(payload["state"])
                self.restored = True
                self._saved_state = payload["state"]
                log.info("restored the %s strategy from %s", spec["strategy"]["type"], checkpoint_name(self.name))
            except (ValueError, KeyError, TypeError) as err:
                log.warning("ignoring checkpoint %s (%s); rebuilding from the trials", checkpoint_name(self.name), err)
                strategy = make_strategy(spec["strategy"], space, spec["objective"]["goal"])
        return strategy

    def _save_checkpoint(self, experiment: dict, *, force: bool = False) -> None:
        if self.strategy is None:
            return
        now = time.monotonic()
        if (not force and self._checkpoint_at is not None
                and now - self._checkpoint_at < self.checkpoint_seconds):
            return  # not yet: state_dict() alone is O(trials)
        state = self.strategy.state_dict()
        if state == self._saved_state:
            return
        self._checkpoint_at = now
        body = checkpoint_configmap(experiment, {"experimentUid": experiment["metadata"].get("uid"), "state": state})
        size = len(body["data"]["checkpoint.json"])
        if size > MAX_CHECKPOINT_BYTES:
            # A ConfigMap holds at most 1 MiB. Without a checkpoint a restarted
            # controller replays the trials instead, which restores the same state.
            if not self._warned_checkpoint_size:
                log.warning("strategy checkpoint is %d bytes, over the %d a ConfigMap can hold; "
                            "a restart will rebuild the strategy from the trials instead", size, MAX_CHECKPOINT_BYTES)
                self._warned_checkpoint_size = True
            self._saved_state = state
            return
        name = body["metadata"]["name"]
        if not (self._checkpoint_exists and self.kube.patch("ConfigMap", self.namespace, name, {"data": body["data"]})):
            if not self.kube.create("ConfigMap", self.namespace, body):  # exists: an earlier incarnation's
                self.kube.patch("ConfigMap", self.namespace, name, {"data": body["data"]})
        self._checkpoint_exists = True
        self._saved_state = state

    # ------------------------------------------------------------------------- loop

    def _selector(self) -> str:
        return f"{LABEL_EXPERIMENT}={label_value(self.name)}"

    def _ours(self, trial: dict) -> bool:
        # Filter again: a selector is an optimization, the spec is the truth.
        return (trial.get("spec") or {}).get("experiment") == self.name

    def trials(self) -> list[dict]:
        """Every trial of the experiment, listed now (the informer's LIST)."""
        return [t for t in self.kube.list_custom(TRIAL_PLURAL, self.namespace, self._selector()) if self._ours(t)]

    def _sync_trials(self) -> list[dict]:
        """Bring ``_records`` up to date; returns the trials that are new or changed since
        the last pass (all of them after a (re)list)."""
        if not self._watching:
            items, version = self.kube.list_custom_with_version(TRIAL_PLURAL, self.namespace, self._selector())
            with self._changes_lock:
                self._watch_generation += 1
                self._changes = {}
                self._watching = True
                generation = self._watch_generation
            self._records, self._finished = {}, 0
            threading.Thread(target=self._watch, args=(generation, version), daemon=True,
                             name=f"watch-trials-{self.name}").start()
            return [t for t in items if self._ours(t)]
        with self._changes_lock:
            changes, self._changes = self._changes, {}
        changed = []
        for name, trial in changes.items():
            if trial is None:
                gone = self._records.pop(name, None)
                self._finished -= bool(gone and gone["phase"] in TERMINAL)
            elif self._ours(trial):
                changed.append(trial)
        return changed

    def _watch(self, generation: int, version: str | None) -> None:
        """Background thread: feed trial changes to the loop. When a watch ends (the
        server's timeout) it watches again from the last version seen, as an informer
        does; only an error (410 Gone: that version is too old) makes the next pass
        list everything again."""
        from kubernetes import watch

        try:
            while not self._closed and generation == self._watch_generation:
                self._watcher = watcher = watch.Watch()
                started = time.monotonic()
                for event in self.kube.watch_custom(TRIAL_PLURAL, self.namespace, self._selector(), version,
                                                    watcher=watcher):
                    if self._closed or generation != self._watch_generation:
                        return
                    kind, obj = event.get("type"), event.get("object")
                    if kind == "ERROR":
                        log.info("trial watch ended: %s; listing again", obj)
                        return
                    if not isinstance(obj, dict):
                        continue
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind not in ("ADDED", "MODIFIED", "DELETED"):
                        continue  # BOOKMARK: only the version moves on
                    name = (obj.get("metadata") or {}).get("name")
                    with self._changes_lock:
                        if generation == self._watch_generation:
                            self._changes[name] = None if kind == "DELETED" else obj
                    self._wake.set()
                if time.monotonic() - started < 1.0:
                    time.sleep(1.0)  # a server that ends watches at once must not make this spin
        except Exception as err:  # noqa: BLE001 - list again on the next pass
            if not self._closed:
                log.info("trial watch failed (%s); listing again", err)
        finally:
            with self._changes_lock:
                if generation == self._watch_generation:
                    self._watching = False
            self._wake.set()

    def close(self) -> None:
        """Stop watching (closes the watch connection)."""
        self._closed = True
        self._wake.set()
        watcher = self._watcher
        if watcher is not None:
            watcher.stop()

    def step(self, now: datetime | None = None) -> str:
        """One pass. Returns "gone", "waiting", "running" or "done"."""
        now = now or datetime.now(timezone.utc)
        experiment = self.kube.get_custom(EXPERIMENT_PLURAL, self.namespace, self.name)
        if experiment is None:
            self._experiment = None  # nothing to checkpoint for: its ConfigMap goes with it
            return "gone"
        spec = accepted_spec(experiment)
        if spec is None:
            return "waiting"
        if self.strategy is None:
            self.strategy = self._build_strategy(experiment, spec)
        from kubenas.strategies import rebuild

        changed = self._sync_trials()
        new = [t for t in changed if t["metadata"]["name"] not in self._records]
        finished = []
        for t in sorted(changed, key=_completion_key):
            status = t.get("status") or {}
            record = _record(t)
            previous = self._records.get(record["name"])
            self._records[record["name"]] = record
            self._finished += (record["phase"] in TERMINAL) - (previous is not None and previous["phase"] in TERMINAL)
            if record["phase"] in TERMINAL and (previous is None or previous["phase"] not in TERMINAL):
                finished.append((t["spec"]["index"], _candidate(t),
                                 strategy_reward(status.get("phase"), status.get("reward"))))
        started = time.perf_counter()
        # Incremental: what the strategy has already registered or observed is skipped.
        rebuild(self.strategy, [(t["spec"]["index"], _candidate(t)) for t in new], finished)
        if self._finished > self._observed:  # the strategy took in new results
            metrics.strategy_updated(self.namespace, self.name, time.perf_counter() - started)
            self._observed = self._finished

        self._experiment = experiment
        phase = (experiment.get("status") or {}).get("phase")
        if phase in EXPERIMENT_TERMINAL:
            self._save_checkpoint(experiment, force=True)
            return "done"
        summaries = list(self._records.values())
        elapsed = elapsed_seconds((experiment.get("status") or {}).get("startTime"), now)
        for index in trials_to_start(spec, summaries, elapsed):
            candidate = self.strategy.propose(index)
            body = trial_object(experiment, spec, index, candidate)
            if self.kube.create_custom(TRIAL_PLURAL, self.namespace, body):
                self.created.append(body["metadata"]["name"])
                # Read-your-writes: count it in flight now; the watch brings its updates.
                self._records.setdefault(body["metadata"]["name"], _record(body))
                metrics.proposal(self.namespace, self.name)
                log.info("created trial %s", body["metadata"]["name"])
        self._save_checkpoint(experiment)
        return "running"

    def run(self, stop: threading.Event | None = None) -> int:
        stop = stop or threading.Event()
        try:
            return self._loop(stop)
        finally:
            if self._experiment is not None:  # what the last passes learned: a restart resumes from it
                try:
                    self._save_checkpoint(self._experiment, force=True)
                except Exception:  # noqa: BLE001 - stopping anyway; a restart replays the trials
                    log.warning("could not save the strategy checkpoint on stop", exc_info=True)

    def _loop(self, stop: threading.Event) -> int:
        try:
            while not stop.is_set():
                try:
                    state = self.step()
                except Exception:  # noqa: BLE001 - log, wait, try again: the pod must not crash-loop
                    log.exception("controller pass failed; retrying")
                    state = "error"
                if state == "gone":
                    log.info("experiment %s/%s is gone; exiting", self.namespace, self.name)
                    return 0
                self._wait(stop)
            return 0
        finally:
            self.close()

    def _wait(self, stop: threading.Event) -> None:
        """Until a trial changes (the watch wakes us), ``poll_seconds`` pass, or ``stop``."""
        deadline = time.monotonic() + self.poll_seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if self._wake.wait(min(left, 0.5)):
                # Let a burst of changes (several trials finishing together) gather.
                stop.wait(WAKE_DEBOUNCE_SECONDS)
                break
        self._wake.clear()


def run(namespace: str, experiment: str) -> int:
    """Entry point of `kubenas controller --namespace NS --experiment NAME`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    poll = float(os.environ.get("KUBENAS_CONTROLLER_POLL_SECONDS", "3"))
    checkpoint = float(os.environ.get("KUBENAS_CONTROLLER_CHECKPOINT_SECONDS", str(CHECKPOINT_SECONDS)))
    if os.environ.get("KUBENAS_CONTROLLER_METRICS_PORT"):
        metrics.serve(int(os.environ["KUBENAS_CONTROLLER_METRICS_PORT"]))
    return Controller(namespace, experiment, poll_seconds=poll, checkpoint_seconds=checkpoint).run(stop)
