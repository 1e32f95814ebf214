"""What the operator remembers of its trials and experiments, in memory.

One small record per trial (``kubenas.experiment.TrialRecord``), grouped by experiment, the
last watched version of each experiment, and, for the trials whose end the operator has not
recorded yet (those in flight: a handful per experiment), the last watched version of the
trial and of its Job, which the trial reconcile observes instead of reading them again
(controller-runtime's informer cache, kept to what can still change). Filled by a paged LIST at startup, before kopf
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
from kubenas.contract import RUNNING
from kubenas.experiment import TrialRecord, from_trial_object


class Book:
    def __init__(self):
        self._lock = threading.Lock()
        self._trials: dict[tuple[str, str], dict[str, TrialRecord]] = {}  # (namespace, experiment) -> name -> record
        self._experiments: dict[tuple[str, str], dict] = {}        # (namespace, name) -> body
        self._jobs: dict[str, set[str]] = {}  # namespace -> its trials that hold a Job, not finished
        # (namespace, trial) -> the last watched trial / Job body, while the trial's end is not recorded
        self._watched_trials: dict[tuple[str, str], dict] = {}
        self._watched_jobs: dict[tuple[str, str], dict] = {}

    # ---------------------------------------------------------------- trials

    def put_trial(self, trial: dict) -> TrialRecord:
        record = from_trial_object(trial)
        key = (trial["metadata"].get("namespace"), (trial.get("spec") or {}).get("experiment"))
        holds_job = bool((trial.get("status") or {}).get("jobName")) and not record.finished
        with self._lock:
            experiment = self._experiments.get(key)
            if experiment is not None and experiment["metadata"].get("uid") and not owned_by(trial, experiment):
                return record  # not made by this experiment's controller: it counts for nothing
            self._trials.setdefault(key, {})[record.name] = record
            if record.acknowledged:
                self._watched_trials.pop((key[0], record.name), None)
                self._watched_jobs.pop((key[0], record.name), None)
            else:
                self._watched_trials[(key[0], record.name)] = trial
            jobs = self._jobs.setdefault(key[0], set())
            if holds_job:
                jobs.add(record.name)
            else:
                jobs.discard(record.name)
        return record

    def drop_trial(self, namespace: str, experiment: str | None, name: str) -> None:
        with self._lock:
            trials = self._trials.get((namespace, experiment))
            self._jobs.get(namespace, set()).discard(name)
            self._watched_trials.pop((namespace, name), None)
            self._watched_jobs.pop((namespace, name), None)
            if trials is not None:
                trials.pop(name, None)
                if not trials:
                    del self._trials[(namespace, experiment)]

    def record(self, namespace: str, experiment: str | None, name: str) -> TrialRecord | None:
        with self._lock:
            return (self._trials.get((namespace, experiment)) or {}).get(name)

    def watched_trial(self, namespace: str, name: str) -> dict | None:
        """The trial as last watched, while its end is not recorded; else None."""
        with self._lock:
            return self._watched_trials.get((namespace, name))

    # ------------------------------------------------------------------ Jobs

    def put_job(self, trial: str, job: dict) -> None:
        """The trial's Job as watched, kept while the trial's end is not recorded."""
        key = (job["metadata"].get("namespace"), trial)
        with self._lock:
            if key in self._watched_trials:
                self._watched_jobs[key] = job

    def drop_job(self, namespace: str, trial: str) -> None:
        with self._lock:
            self._watched_jobs.pop((namespace, trial), None)

    def watched_job(self, namespace: str, trial: str) -> dict | None:
        """The trial's Job as last watched; None when none was (it may still exist)."""
        with self._lock:
            return self._watched_jobs.get((namespace, trial))

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
            gone = self._trials.pop((namespace, name), None) or {}
            self._jobs.get(namespace, set()).difference_update(gone)
            for trial in gone:
                self._watched_trials.pop((namespace, trial), None)
                self._watched_jobs.pop((namespace, trial), None)

    def experiment(self, namespace: str, name: str | None) -> dict | None:
        with self._lock:
            return self._experiments.get((namespace, name))

    def experiment_keys(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._experiments)

    # ------------------------------------------------------ per namespace

    def holders(self, kind: str, namespace: str) -> set[str]:
        """Who holds a slot of ``namespace`` (kubenas.operator.tenancy): for "experiment"
        the experiments Running, for "trial" the trials that hold a Job and have not finished."""
        with self._lock:
            if kind == "trial":
                return set(self._jobs.get(namespace) or ())
            return {name for (ns, name), body in self._experiments.items()
                    if ns == namespace and (body.get("status") or {}).get("phase") == RUNNING}

    def waiting_experiments(self, namespace: str) -> list[str]:
        """The experiments of ``namespace`` waiting for room (condition Admitted=False)."""
        with self._lock:
            return sorted(name for (ns, name), body in self._experiments.items() if ns == namespace and any(
                c.get("type") == "Admitted" and c.get("status") == "False"
                for c in (body.get("status") or {}).get("conditions") or []))

    # ----------------------------------------------------------------- start

    def fill(self, kube, plural_experiments: str, plural_trials: str, namespaces: tuple[str, ...] = ()) -> None:
        """List every experiment and trial (paged) in the watched namespaces (all if none)."""
        for namespace in namespaces or (None,):
            for body in kube.iter_custom(plural_experiments, namespace):
                self.put_experiment(body)
            for body in kube.iter_custom(plural_trials, namespace):
                self.put_trial(body)
