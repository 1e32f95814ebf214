"""`kubenas controller --namespace NS --experiment NAME`: one experiment's search loop.

Each pass (every ``poll_seconds``):

1. read the experiment and the spec the operator accepted (annotation);
2. list the experiment's NASTrials and bring the strategy up to date with them
   (``rebuild``: register every existing proposal, observe every finished trial in
   completion order; both are idempotent);
3. create NASTrials (deterministic names ``<experiment>-<index>``) to keep
   ``parallelTrials`` in flight, until the budget is spent;
4. checkpoint ``strategy.state_dict()`` into the ConfigMap ``<experiment>-strategy``
   (owned by the experiment) when it changed.

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
from ..operator.status import trial_summary
from ..operator.trial_state import TERMINAL
from . import metrics

log = logging.getLogger("kubenas.controller")

EXPERIMENT_TERMINAL = ("Succeeded", "Failed", "Stopped")
MAX_CHECKPOINT_BYTES = 900 * 1024  # a ConfigMap holds 1 MiB, keys and metadata included


def _candidate(trial: dict) -> dict:
    spec = trial.get("spec") or {}
    return {"architecture": spec.get("architecture") or {}, "hyperparameters": spec.get("hyperparameters") or {}}


def _completion_key(trial: dict):
    status = trial.get("status") or {}
    return (status.get("completionTime") or "9999", (trial.get("spec") or {}).get("index", 0))


class Controller:
    def __init__(self, namespace: str, experiment: str, kube: Kube | None = None, poll_seconds: float = 3.0):
        self.namespace = namespace
        self.name = experiment
        self.kube = kube or Kube("controller")
        self.poll_seconds = poll_seconds
        self.strategy = None
        self.restored = False          # True when the strategy was restored from a checkpoint
        self._saved_state: dict | None = None
        self.created: list[str] = []   # trials this incarnation created (tests, logs)
        self._warned_checkpoint_size = False
        self._observed = 0             # finished trials the strategy has taken in (metrics)

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

    def _save_checkpoint(self, experiment: dict) -> None:
        state = self.strategy.state_dict()
        if state == self._saved_state:
            return
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
        if not self.kube.create("ConfigMap", self.namespace, body):
            self.kube.patch("ConfigMap", self.namespace, body["metadata"]["name"], {"data": body["data"]})
        self._saved_state = state

    # ------------------------------------------------------------------------- loop

    def trials(self) -> list[dict]:
        items = self.kube.list_custom(TRIAL_PLURAL, self.namespace, f"{LABEL_EXPERIMENT}={label_value(self.name)}")
        # Filter again: a selector is an optimization, the spec is the truth.
        return [t for t in items if (t.get("spec") or {}).get("experiment") == self.name]

    def step(self, now: datetime | None = None) -> str:
        """One pass. Returns "gone", "waiting", "running" or "done"."""
        now = now or datetime.now(timezone.utc)
        experiment = self.kube.get_custom(EXPERIMENT_PLURAL, self.namespace, self.name)
        if experiment is None:
            return "gone"
        spec = accepted_spec(experiment)
        if spec is None:
            return "waiting"
        if self.strategy is None:
            self.strategy = self._build_strategy(experiment, spec)
        from kubenas.strategies import rebuild

        trials = self.trials()
        proposed = [(t["spec"]["index"], _candidate(t)) for t in trials]
        finished = [(t["spec"]["index"], _candidate(t),
                     strategy_reward((t.get("status") or {}).get("phase"), (t.get("status") or {}).get("reward")))
                    for t in sorted(trials, key=_completion_key)
                    if (t.get("status") or {}).get("phase") in TERMINAL]
        started = time.perf_counter()
        rebuild(self.strategy, proposed, finished)
        if len(finished) > self._observed:  # the strategy took in new results
            metrics.strategy_updated(self.namespace, self.name, time.perf_counter() - started)
            self._observed = len(finished)

        phase = (experiment.get("status") or {}).get("phase")
        if phase in EXPERIMENT_TERMINAL:
            self._save_checkpoint(experiment)
            return "done"
        summaries = [trial_summary(t) for t in trials]
        elapsed = elapsed_seconds((experiment.get("status") or {}).get("startTime"), now)
        for index in trials_to_start(spec, summaries, elapsed):
            candidate = self.strategy.propose(index)
            body = trial_object(experiment, spec, index, candidate)
            if self.kube.create_custom(TRIAL_PLURAL, self.namespace, body):
                self.created.append(body["metadata"]["name"])
                metrics.proposal(self.namespace, self.name)
                log.info("created trial %s", body["metadata"]["name"])
        self._save_checkpoint(experiment)
        return "running"

    def run(self, stop: threading.Event | None = None) -> int:
        stop = stop or threading.Event()
        while not stop.is_set():
            try:
                state = self.step()
            except Exception:  # noqa: BLE001 - log, wait, try again: the pod must not crash-loop
                log.exception("controller pass failed; retrying")
                state = "error"
            if state == "gone":
                log.info("experiment %s/%s is gone; exiting", self.namespace, self.name)
                return 0
            stop.wait(self.poll_seconds)
        return 0


def run(namespace: str, experiment: str) -> int:
    """Entry point of `kubenas controller --namespace NS --experiment NAME`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    poll = float(os.environ.get("KUBENAS_CONTROLLER_POLL_SECONDS", "3"))
    if os.environ.get("KUBENAS_CONTROLLER_METRICS_PORT"):
        metrics.serve(int(os.environ["KUBENAS_CONTROLLER_METRICS_PORT"]))
    return Controller(namespace, experiment, poll_seconds=poll).run(stop)
