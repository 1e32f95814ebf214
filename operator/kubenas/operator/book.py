"""What the operator remembers of its trials and experiments, in memory.

One small record per trial (``kubenas.experiment.TrialRecord``), grouped by experiment, and the
last watched version of each experiment. Filled by a paged LIST at startup, before kopf
starts watching, so that no handler ever folds a partial view; then kept up to date by
the watch handlers (every event, kopf's own listing included). Thread-safe: handlers run
in kopf's worker threads.

It replaces kopf indexes, whose readiness bookkeeping costs O(objects) per object at
startup (kopf 1.45: a toggle per object, and every toggle wakes a check of all of them):
at 10,000 trials a restarted operator spent minutes of CPU on it (bench/RESULTS.md).
"""
from __future__ import annotations

import threading

from kubenas.cluster.objects import owned_by
from kubenas.experiment import TrialRecord, from_trial_object


class Book:
    def __init__(self):
        self._lock = threading.Lock()
        self._trials: dict[tuple[str, str], dict[str, TrialRecord]] = {}  # (namespace, experiment) -> name -> record
        self._experiments: dict[tuple[str, str], dict] = {}        # (namespace, name) -> body

    # ---------------------------------------------------------------- trials

    def put_trial(self, trial: dict) -> TrialRecord:
        record = from_trial_object(trial)
        key = (trial["metadata"].get("namespace"), (trial.get("spec") or {}).get("experiment"))
        with self._lock:
            experiment = self._experiments.get(key)
            if experiment is not None and experiment["metadata"].get("uid") and not owned_by(trial, experiment):
                return record  # not made by this experiment's controller: it counts for nothing
            self._trials.setdefault(key, {})[record.name] = record
        return record

    def drop_trial(self, namespace: str, experiment: str | None, name: str) -> None:
        with self._lock:
            trials = self._trials.get((namespace, experiment))
            if trials is not None:
                trials.pop(name, None)
                if not trials:
                    del self._trials[(namespace, experiment)]

    def summaries(self, namespace: str, experiment: str | None) -> list[TrialRecord]:
        """The experiment's trial records now (a copy: safe to iterate while others write)."""
        with self._lock:
            return list((self._trials.get((namespace, experiment)) or {}).values())

    def items(self) -> list[tuple[tuple[str, str], list[TrialRecord]]]:
        """Every experiment's trial records (for the metrics collector)."""
        with self._lock:
            return [(key, list(trials.values())) for key, trials in self._trials.items()]

    def trial_count(self) -> int:
        with self._lock:
            return sum(len(trials) for trials in self._trials.values())

    # ----------------------------------------------------------- experiments

    def put_experiment(self, experiment: dict) -> None:
        meta = experiment["metadata"]
        with self._lock:
            self._experiments[(meta.get("namespace"), meta["name"])] = experiment

    def drop_experiment(self, namespace: str, name: str) -> None:
        """Forget an experiment and its trials (the garbage collector deletes them too)."""
        with self._lock:
            self._experiments.pop((namespace, name), None)
            self._trials.pop((namespace, name), None)

    def experiment(self, namespace: str, name: str | None) -> dict | None:
        with self._lock:
            return self._experiments.get((namespace, name))

    def experiment_keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._experiments)

    # ----------------------------------------------------------------- start

    def fill(self, kube, plural_experiments: str, plural_trials: str, namespaces: tuple[str, ...] = ()) -> None:
        """List every experiment and trial (paged) in the watched namespaces (all if none)."""
        for namespace in namespaces or (None,):
            for body in kube.iter_custom(plural_experiments, namespace):
                self.put_experiment(body)
            for body in kube.iter_custom(plural_trials, namespace):
                self.put_trial(body)
