"""`kubenas controller --namespace NS --experiment NAME`: one experiment's search loop.

Each pass (when a trial changes, and at least every ``poll_seconds``):

1. read the experiment and the spec the operator accepted (annotation);
2. bring its view of the experiment's NASTrials up to date and the strategy with it
   (``rebuild``: register every new proposal, observe every newly finished trial in
   completion order; both are idempotent). The view is an informer (``informer.py``):
   one LIST when the controller starts (and when its watch fails, e.g. 410 Gone), then a
   WATCH of changes that also wakes the loop at once, so a pass costs O(changes), not
   O(trials), and a finished trial is replaced without waiting for the next poll;
3. create NASTrials (deterministic names ``<experiment>-<index>``) to keep
   ``parallelTrials`` in flight, until the budget is spent: the trials the experiment's
   plan (``kubenas.experiment.plan``) asks for, each the strategy's next proposal or
   another run of an existing trial's network, continuing its checkpoint in the
   experiment's artifacts where the plan says so (the strategy sees what the plan shows it);
4. checkpoint ``strategy.state_dict()`` into the ConfigMap ``<experiment>-strategy``
   (``checkpoint.py``) when it changed, at most every ``checkpoint_seconds`` and once
   more when the experiment ends or the controller stops.

Killing the pod at any moment loses nothing: trials are the source of truth, the
checkpoint restores learned policies exactly, and a retried create of the same index
answers 409.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone

from kubenas.cluster.intervals import CONTROLLER_POLL_ENV, CONTROLLER_POLL_SECONDS
from kubenas.cluster.kube import Kube
from kubenas.cluster.metrics_server import ServingError
from kubenas.cluster.objects import accepted_spec, trial_object
from kubenas.contract import EXPERIMENT_PLURAL, EXPERIMENT_TERMINAL, TRIAL_PLURAL
from kubenas.contract import artifacts as art
from kubenas.experiment import candidate, elapsed_seconds, row_from_trial_object
from kubenas.experiment.plan import ExperimentPlan, NextTrial, plan_for

from . import metrics
from .checkpoint import CHECKPOINT_SECONDS, CheckpointStore
from .informer import TrialInformer

log = logging.getLogger("kubenas.controller")

WAKE_DEBOUNCE_SECONDS = 0.05  # after a trial change, before the pass that reacts to it


def _candidate(trial: dict) -> dict:
    return candidate(trial.get("spec") or {})


class Controller:
    def __init__(self, namespace: str, experiment: str, kube: Kube | None = None, poll_seconds: float = CONTROLLER_POLL_SECONDS,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.namespace = namespace
        self.name = experiment
        self.kube = kube or Kube("controller")
        self.poll_seconds = poll_seconds
        self.informer = TrialInformer(self.kube, namespace, experiment)
        self.checkpoints = CheckpointStore(self.kube, namespace, experiment, checkpoint_seconds)
        self.strategy = None
        self.restored = False          # True when the strategy was restored from a checkpoint
        self.created: list[str] = []   # trials this incarnation created (tests, logs)
        self.last_experiment: dict | None = None  # the experiment as last read: the checkpoint on stop is its
        self._observed = 0             # finished trials the strategy has taken in (metrics)
        self.candidates: dict[int, dict] = {}  # candidate (of a plan that tracks them) -> what was proposed

    # --------------------------------------------------------------------- strategy

    def _build_strategy(self, experiment: dict, spec: dict):
        from kubenas.space import SearchSpace, constraints_from_spec
        from kubenas.strategies import make_strategy

        space = SearchSpace.from_spec(spec["searchSpace"])
        constraints = constraints_from_spec(spec)
        strategy = make_strategy(spec["strategy"], space, spec["objective"]["goal"], constraints,
                                 spec["objective"].get("pareto"))
        try:
            state = self.checkpoints.load(experiment)
            if state is not None:
                strategy.load_state_dict(state)
                self.restored = True
                log.info("restored the %s strategy from %s", spec["strategy"]["type"], self.checkpoints.name)
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # any corrupt checkpoint
            log.warning("ignoring checkpoint %s (%s); rebuilding from the trials", self.checkpoints.name, err)
            strategy = make_strategy(spec["strategy"], space, spec["objective"]["goal"], constraints,
                                     spec["objective"].get("pareto"))
        return strategy

    def save_checkpoint(self, experiment: dict, *, force: bool = False) -> None:
        if self.strategy is not None:
            self.checkpoints.save(experiment, self.strategy.state_dict, force=force)

    # ------------------------------------------------------------------------- loop

    def step(self, now: datetime | None = None) -> str:
        """One pass. Returns "gone", "waiting", "running" or "done"."""
        from kubenas.strategies import rebuild

        now = now or datetime.now(timezone.utc)
        experiment = self.kube.get_custom(EXPERIMENT_PLURAL, self.namespace, self.name)
        if experiment is None:
            self.last_experiment = None  # nothing to checkpoint for: its ConfigMap goes with it
            return "gone"
        spec = accepted_spec(experiment)
        if spec is None:
            return "waiting"
        if self.strategy is None:
            self.strategy = self._build_strategy(experiment, spec)

        plan = plan_for(spec)
        # What the strategy observes, under the plan's indices (the plan leaves the rest out).
        new, finished = [], []
        for change in self.informer.sync():  # in completion order
            trial_spec = change.trial.get("spec") or {}
            held = plan.proposals(change.record, trial_spec)
            if not held:
                continue
            if change.record.candidate is not None:  # a candidate the plan trains again: its proposal
                self.candidates[change.record.candidate] = _candidate(change.trial)
            if change.previous is None:
                new += held
            if change.record.finished and (change.previous is None or not change.previous.finished):
                finished += plan.observations(change.record, trial_spec,
                                              (change.trial.get("status") or {}).get("metrics"))
        started = time.perf_counter()
        # Incremental: what the strategy has already registered or observed is skipped.
        rebuild(self.strategy, new, finished)
        if self.informer.finished > self._observed:  # the strategy took in new results
            metrics.strategy_updated(self.namespace, self.name, time.perf_counter() - started)
            self._observed = self.informer.finished

        self.last_experiment = experiment
        if (experiment.get("status") or {}).get("phase") in EXPERIMENT_TERMINAL:
            self.save_checkpoint(experiment, force=True)
            return "done"
        elapsed = elapsed_seconds((experiment.get("status") or {}).get("startTime"), now)
        due = plan.next_trials(self.informer.records(), None, elapsed)
        bodies = [body for body in (self._trial_body(experiment, spec, plan, nxt) for nxt in due) if body is not None]
        for body in bodies:
            if self.kube.create_custom(TRIAL_PLURAL, self.namespace, body):
                self.created.append(body["metadata"]["name"])
                # Read-your-writes: count it in flight now; the watch brings its updates.
                if self.informer.records_by_name(body["metadata"]["name"]) is None:
                    self.informer.remember(body)
                metrics.proposal(self.namespace, self.name)
                log.info("created trial %s", body["metadata"]["name"])
        self.save_checkpoint(experiment)
        return "running"

    def _trial_body(self, experiment: dict, spec: dict, plan: ExperimentPlan, nxt: NextTrial) -> dict | None:
        """The NASTrial the plan asks for: the strategy's next proposal, or another run of
        trial ``nxt.copies``'s network, continuing the checkpoint ``nxt.resume`` left in the
        experiment's artifacts (none configured: it trains from scratch). None: the trial to
        train again is gone (deleted by hand) and nothing else holds its network."""
        source, resume = None, nxt.resume is not None
        proposals = [self.strategy.propose(i) for i in nxt.batch]
        if nxt.proposes is not None:
            proposal = self.strategy.propose(nxt.proposes)
            if nxt.candidate is not None:
                self.candidates[nxt.candidate] = proposal
        elif nxt.given is not None:
            proposal = nxt.given
        else:
            proposal, source = self._copied(plan, nxt)
            if proposal is None and nxt.candidate in self.candidates:  # gone: the candidate retrains
                proposal, resume = self.candidates[nxt.candidate], False
            if proposal is None:
                log.warning("cannot train the network of %s again: the trial is gone", nxt.copies)
                return None
        resume_from = None
        if resume and spec.get("artifacts"):
            resume_from = art.checkpoint_location(spec["artifacts"], self.name, nxt.resume,
                                                  experiment["metadata"].get("uid"))
        body = trial_object(experiment, spec, nxt.index, proposal)
        body["spec"] = plan.trial_spec(nxt, body["spec"], source, resume_from, proposals)
        return body

    def _copied(self, plan: ExperimentPlan, nxt: NextTrial) -> tuple[dict | None, dict | None]:
        """The network trial ``nxt.copies`` trained, and its row (None when not read): the
        candidate's own trial is its proposal, known already; another (the twin that
        answered it, a re-evaluation's original) is read, as it encoded the network,
        which a checkpoint's identity holds. (None, None): the trial is gone."""
        record = self.informer.records_by_name(nxt.copies)
        if nxt.candidate in self.candidates and (record is None or record.candidate == nxt.candidate):
            return self.candidates[nxt.candidate], None
        body = self.kube.get_custom(TRIAL_PLURAL, self.namespace, nxt.copies)
        if body is None:
            return None, None
        row = row_from_trial_object(body)
        return plan.copied_candidate(nxt, body.get("spec") or {}), row

    def run(self, stop: threading.Event | None = None) -> int:
        stop = stop or threading.Event()
        try:
            return self._loop(stop)
        finally:
            if self.last_experiment is not None:  # what the last passes learned: a restart resumes from it
                try:
                    self.save_checkpoint(self.last_experiment, force=True)
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
                self.informer.wait(stop, self.poll_seconds, WAKE_DEBOUNCE_SECONDS)
            return 0
        finally:
            self.informer.close()

    def close(self) -> None:
        self.informer.close()


def run(namespace: str, experiment: str) -> int:
    """Entry point of `kubenas controller --namespace NS --experiment NAME`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    poll = float(os.environ.get(CONTROLLER_POLL_ENV, CONTROLLER_POLL_SECONDS))
    checkpoint = float(os.environ.get("KUBENAS_CONTROLLER_CHECKPOINT_SECONDS", str(CHECKPOINT_SECONDS)))
    if os.environ.get("KUBENAS_CONTROLLER_METRICS_PORT"):
        try:
            metrics.serve(int(os.environ["KUBENAS_CONTROLLER_METRICS_PORT"]), namespace, experiment)
        except ServingError as err:  # the search goes on; its metrics are missing, and the log says why
            log.error("not serving metrics: %s", err)
    return Controller(namespace, experiment, poll_seconds=poll, checkpoint_seconds=checkpoint).run(stop)
