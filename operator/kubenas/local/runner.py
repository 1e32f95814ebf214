"""Run one NASExperiment on this machine: the same strategies and trainer as a cluster.

The loop, written down as a state machine of the experiment:

    Running --(finished >= maxTrials | target reached)--> Succeeded
    Running --(with strategy.fidelity: maxTrials candidates, nothing left to promote)--> Succeeded
    Running --(with spec.final: maxTrials finished)-----> re-evaluating (still phase Running)
    re-evaluating --(every re-evaluation finished)------> Succeeded
    Running --(failed > maxFailedTrials)----------------> Failed
    Running --(a trial failed Unsatisfiable)------------> Failed   (every trial would fail so)
    Running --(the budget spent, no trial succeeded)----> Failed   (NoTrialSucceeded)
    Running --(deadlineSeconds passed)------------------> Stopped
    Running --(Ctrl-C)--> (process exits; a rerun resumes in Running)

and of each trial: proposed (trial.json written) -> running (a process) -> finished
(a line in trials.jsonl: Succeeded | Failed | EarlyStopped). A trial proposed but not
finished when the runner died is run again, under the same index, on resume. Re-evaluation
trials (spec.final, kubenas.experiment.final) are trials of a top candidate with another
training seed: never proposed by, nor shown to, the strategy. With ``strategy.fidelity``
(kubenas.experiment.fidelity) each trial trains one candidate to one rung; a promotion is
a new trial that continues the candidate's previous trial from its checkpoint.pt, and
the strategy observes each candidate's first result (its bracket's rung) under the candidate's number.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from kubenas.api.trials import build_trial_spec, trial_name
from kubenas.api.validation import with_defaults
from kubenas.contract import FAILED, RUNNING, STOPPED_BY_RUNNER, SUCCEEDED
from kubenas.contract import artifacts as art
from kubenas.contract.genotype import genotype_hash
from kubenas.early_stopping import median_stop
from kubenas.experiment import (Outcome, answered_by, best_reward, can_answer, candidate, counts_by_phase, experiment_outcome,
                                from_row, strategy_reward, twin_key)
from kubenas.experiment import fidelity
from kubenas.experiment import final as final_phase
from kubenas.space import SearchSpace, constraints_from_spec
from kubenas.strategies import make_strategy, rebuild


from .process import TrialProcess
from .rundir import RunDir

POLL_SECONDS = 0.2
CHECKPOINT_VERSION = 1


@dataclass
class RunSummary:
    phase: str
    reason: str
    message: str
    counts: dict
    best: dict | None
    records: list = field(default_factory=list)
    trials_run: int = 0  # trials finished by this call of run(); 0: the run directory's run had ended already


class NullProgress:
    """What the runner tells a progress display; this one shows nothing."""

    def start(self, total: int, done: int) -> None: ...
    def trial_started(self, name: str) -> None: ...
    def trial_finished(self, record: dict, done: int, running: int, failed: int, best: float | None) -> None: ...
    def stop(self) -> None: ...


class LocalRunner:
    def __init__(self, experiment: dict, run_dir: str, progress=None, metrics=None, python_path=None):
        self.experiment = experiment
        self.name = experiment["metadata"]["name"]
        self.spec = with_defaults(experiment["spec"])
        self.run_dir = RunDir(run_dir)
        self.progress = progress or NullProgress()
        self.metrics = metrics
        # Folders put first on the trials' Python path (the experiment file's folder for
        # `kubenas run`): where trial.command, model.builder and dataset.loader find user modules.
        self.python_path = [str(p) for p in python_path or []]
        self.goal = self.spec["objective"]["goal"]
        self.metric = self.spec["objective"]["metric"]
        self.pareto = self.spec["objective"].get("pareto") or []  # objective.pareto: costs of a Pareto search
        budget = self.spec["budget"]
        self.parallel = budget["parallelTrials"]
        self.threads = max(1, (os.cpu_count() or 1) // self.parallel)
        self.running: dict[int, TrialProcess] = {}
        self.trial_records: list = []  # the finished rows as kubenas.experiment.TrialRecords (what decides)
        self.artifacts_env = artifacts_env(self.spec, self.name)
        self.fidelity = fidelity.plan(self.spec)  # None unless spec.strategy.fidelity
        self.running_fidelity: dict[int, dict | None] = {}  # index -> the fidelity field of a trial in flight

    # -- setup and resume ------------------------------------------------------------

    def _restore(self):
        space = SearchSpace.from_spec(self.spec["searchSpace"])
        strategy = make_strategy(self.spec["strategy"], space, self.goal, constraints_from_spec(self.spec),
                                 self.pareto)
        finished = self.run_dir.finished()
        proposed = self.run_dir.proposed()
        # The strategy knows the search's trials only, never the re-evaluations; with
        # fidelity, each candidate's first trial (its bracket's rung), under the candidate's number.
        searched = self._strategy_rows(proposed)
        observed = self._strategy_rows(finished)
        if not self._load_checkpoint(strategy, len(searched), len(observed)):
            rebuild(strategy,
                    proposed=[(self._strategy_index(t), candidate(t)) for t in searched],
                    finished=[(self._strategy_index(r), candidate(r), _strategy_reward(r), r.get("metrics"))
                              for r in observed])
        return strategy, proposed, finished

    def _strategy_rows(self, rows: list) -> list:
        """The trials (specs or rows) the strategy proposed and learns from."""
        if self.fidelity is not None:
            return [r for r in rows if fidelity.is_first_trial(self.fidelity, *_ladder_place(r))]
        return final_phase.search_rows(self.spec, rows)

    def _strategy_index(self, row: dict) -> int:
        """The strategy's index of a trial: the candidate's number with fidelity, else the trial's."""
        return row[fidelity.FIDELITY]["candidate"] if self.fidelity is not None else row["index"]

    def _load_checkpoint(self, strategy, proposed: int, finished: int) -> bool:
        """Use the checkpoint when it matches the history exactly; else replay history."""
        path = self.run_dir.checkpoint_file
        if not path.exists():
            return False
        try:
            checkpoint = json.loads(path.read_text())
        except json.JSONDecodeError:
            return False
        if (checkpoint.get("version"), checkpoint.get("proposed"), checkpoint.get("finished")) != (
                CHECKPOINT_VERSION, proposed, finished):
            return False
        strategy.load_state_dict(checkpoint["state"])
        return True

    def _checkpoint(self, strategy, proposed: int, finished: int) -> None:
        self.run_dir.save_checkpoint({"version": CHECKPOINT_VERSION, "proposed": proposed,
                                      "finished": finished, "state": strategy.state_dict()})

    # -- the loop --------------------------------------------------------------------

    def run(self) -> RunSummary:
        self.run_dir.bind(self.experiment)
        strategy, proposed, records = self._restore()
        self.trial_records = [from_row(r, details=False) for r in records]
        finished_before = len(records)
        state = self.run_dir.load_state()
        started = state.get("startTime") or _now()
        self.run_dir.save_state({**state, "phase": RUNNING, "startTime": started, "reason": "", "message": ""})
        started_epoch = datetime.fromisoformat(started).timestamp()

        finished_indices = {r["index"] for r in records}
        unfinished = [t for t in proposed if t["index"] not in finished_indices]
        proposed_indices = {t["index"] for t in proposed}
        searched = self._strategy_rows(proposed)
        proposed_count = len(searched)  # the search's, as the strategy's checkpoint counts them
        next_index = max((t["index"] for t in (proposed if self.fidelity else searched)), default=-1) + 1
        max_trials = self.spec["budget"]["maxTrials"]
        # Succeeded trials by (candidate hash, rung): a repeated candidate is not retrained.
        hashes: dict = {}
        for row in records:
            self._remember(hashes, row)

        self.progress.start(fidelity.planned_trials(self.spec) if self.fidelity
                            else final_phase.planned_trials(self.spec), len(records))
        outcome = None
        try:
            while True:
                elapsed = time.time() - started_epoch
                if self.spec.get("final"):
                    outcome = final_phase.outcome(self.spec, self.trial_records, elapsed)
                elif self.fidelity is not None:  # the trials in flight count: promotions are decided on them
                    outcome = experiment_outcome(self.spec, self.trial_records + self._active_records(), elapsed)
                else:
                    outcome = experiment_outcome(self.spec, self.trial_records, elapsed)
                if outcome is not None:
                    break
                # Fill the free slots: unfinished trials from a killed run first, then the
                # search's, then (spec.final, once the search has finished) re-evaluations.
                while len(self.running) < self.parallel:
                    if unfinished:
                        trial = unfinished.pop(0)
                    elif self.fidelity is not None:
                        trial = self._next_fidelity_trial(strategy, next_index)
                        if trial is None:
                            break
                        next_index += 1
                        if fidelity.is_first_trial(self.fidelity, *_ladder_place(trial)):
                            proposed_count += 1
                        # a promotion too: its twin may have reached this rung already
                        if self._answered_by_twin(trial, hashes, strategy, records, proposed_count):
                            continue
                    elif next_index >= max_trials:
                        trial = self._next_reevaluation(records, proposed_indices)
                        if trial is None:
                            break
                        proposed_indices.add(trial["index"])
                    else:
                        proposal = strategy.propose(next_index)
                        trial = build_trial_spec(self.name, self.spec, next_index, proposal)
                        self.run_dir.write_trial(trial_name(self.name, next_index), trial)
                        proposed_indices.add(next_index)
                        next_index += 1
                        proposed_count += 1
                        if self._answered_by_twin(trial, hashes, strategy, records, proposed_count):
                            continue
                    self._launch(trial)
                self._poll(strategy, records, proposed_count, hashes)
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            self._stop_all(STOPPED_BY_RUNNER)
            self.progress.stop()
            self.run_dir.save_state({"phase": RUNNING, "startTime": started, "reason": "Interrupted",
                                     "message": "stopped by the user; rerun the same command to resume"})
            raise
        self._stop_all(STOPPED_BY_RUNNER)
        self.progress.stop()
        summary = self._conclude(outcome, records, started)
        summary.trials_run = len(records) - finished_before
        return summary

    @staticmethod
    def _remember(hashes: dict, record: dict) -> None:
        """Keep a trained result as the answer to later repeats (kubenas.experiment.twins);
        the first one stays, so a restart picks the same twins."""
        answer = from_row(record, details=False)
        if can_answer(answer):
            hashes.setdefault(twin_key(answer), record)

    def _answered_by_twin(self, trial: dict, hashes: dict, strategy, records: list, proposed_count: int) -> bool:
        """A candidate trained before (kubenas.experiment.twins) is not retrained: its twin's
        result is recorded for it, and True returned."""
        key = twin_key(from_row({**trial, "name": ""}, details=False))
        twin = hashes.get(key) if key is not None else None
        if twin is None:
            return False
        record = _duplicate_record(trial, twin, self.name)
        records.append(record)
        self._finish(strategy, record, records, proposed_count)
        return True

    def _active_records(self) -> list:
        """The trials in flight as records (what a multi-fidelity decision counts)."""
        return [from_row({"name": proc.name, "index": index, "status": RUNNING,
                          fidelity.FIDELITY: self.running_fidelity.get(index)}, details=False)
                for index, proc in self.running.items()]

    def _next_fidelity_trial(self, strategy, index: int) -> dict | None:
        """The next trial of a multi-fidelity experiment (trial ``index``), written to its
        trial.json: a due promotion, else a new candidate; None when neither is due now."""
        jobs = fidelity.next_jobs(self.spec, self.trial_records + self._active_records(), 1)
        if not jobs:
            return None
        job = jobs[0]
        if job.is_new:
            proposal = strategy.propose(job.candidate)
            resume_from = None
        else:
            # The trial below, or the twin that answered it: the network as that trial
            # encoded it (the checkpoint's identity holds the encoding).
            previous = self.run_dir.trial_dir(job.resume_trial)
            proposal = candidate(json.loads((previous / "trial.json").read_text()))
            resume_from = str(previous / art.CHECKPOINT_FILE)
        trial = fidelity.trial_fields(build_trial_spec(self.name, self.spec, index, proposal), job,
                                      self.fidelity, resume_from)
        self.run_dir.write_trial(trial_name(self.name, index), trial)
        return trial

    def _next_reevaluation(self, records: list, proposed_indices: set) -> dict | None:
        """The next re-evaluation trial not yet made (written to its trial.json), or None."""
        by_name = {r["name"]: r for r in records}
        for reevaluation in final_phase.reevaluation_plan(self.spec, records):
            if reevaluation.index in proposed_indices:
                continue
            original = by_name[reevaluation.of]
            trial = final_phase.reevaluation_trial(
                build_trial_spec(self.name, self.spec, reevaluation.index, candidate(original)), reevaluation)
            self.run_dir.write_trial(trial_name(self.name, reevaluation.index), trial)
            return trial
        return None

    def _launch(self, trial: dict) -> None:
        name = trial_name(self.name, trial["index"])
        directory = self.run_dir.trial_dir(name)
        for stale in ("result.json", "history.jsonl", "stop"):  # from a run killed mid-trial
            (directory / stale).unlink(missing_ok=True)
        self.running[trial["index"]] = TrialProcess(name, trial["index"], directory,
                                                    trial["timeoutSeconds"], self.threads, self.artifacts_env,
                                                    command=self.spec["trial"].get("command"),
                                                    python_path=self.python_path)
        self.running_fidelity[trial["index"]] = trial.get(fidelity.FIDELITY)
        self.progress.trial_started(name)
        if self.metrics:
            self.metrics.trial_started(self.name)

    def _poll(self, strategy, records: list, proposed_count: int, hashes: dict) -> None:
        stopping = self.spec["earlyStopping"]
        completed = None
        for index, proc in list(self.running.items()):
            if proc.poll() is None:
                # A re-evaluation is never stopped early: its full run is what the mean needs.
                if stopping["type"] == "median" and final_phase.is_search(self.spec, index):
                    if completed is None:
                        completed = [r.get("history") or [] for r in records if r.get("status") == SUCCEEDED]
                    if not proc.early_stop_requested and median_stop(
                            proc.history(), completed, self.metric, self.goal,
                            stopping["minTrials"], stopping["startEpoch"]):
                        proc.request_early_stop()
                continue
            del self.running[index]
            self.running_fidelity.pop(index, None)
            trial = json.loads((proc.directory / "trial.json").read_text())
            record = _record(trial, proc, self.name)
            records.append(record)
            self._remember(hashes, record)
            self._finish(strategy, record, records, proposed_count)

    def _finish(self, strategy, record: dict, records: list, proposed_count: int) -> None:
        self.run_dir.append_finished(record)
        if self._strategy_rows([record]):
            strategy.observe(self._strategy_index(record), candidate(record), _strategy_reward(record),
                             record.get("metrics"))
            self._checkpoint(strategy, proposed_count, len(self._strategy_rows(records)))
        self.trial_records.append(from_row(record, details=False))
        best = best_reward(self.trial_records, self.goal)
        failed = counts_by_phase(self.trial_records).get(FAILED, 0)
        self.progress.trial_finished(record, len(records), len(self.running), failed, best)
        if self.metrics:
            self.metrics.trial_finished(self.name, record, best)

    def _stop_all(self, reason: str) -> None:
        for proc in self.running.values():
            proc.stop(reason)
        self.running.clear()

    def _conclude(self, outcome: Outcome, records: list, started: str) -> RunSummary:
        from . import plots, report

        if self.metrics and hasattr(self.metrics, "experiment_finished"):
            self.metrics.experiment_finished(outcome.phase)
        best = report.write_best(self.run_dir, records, self.goal, self.spec)
        report.write_pareto(self.run_dir, records, self.goal, self.pareto)
        report.write_plot(self.run_dir, records, self.goal, self.metric, self.name)
        plots.write_plots(self.run_dir.root, records, self.goal, self.metric, self.name, self.pareto)
        self.run_dir.save_state({"phase": outcome.phase, "reason": outcome.reason, "message": outcome.message,
                                 "startTime": started, "completionTime": _now()})
        return RunSummary(outcome.phase, outcome.reason, outcome.message, counts_by_phase(self.trial_records),
                          best, records)


# -- records ---------------------------------------------------------------------------


def artifacts_env(spec: dict, experiment: str) -> dict:
    """What the trial processes need to copy their outputs to ``spec.artifacts.url`` too
    (credentials: this machine's own environment). A claim is a cluster volume: a local
    run keeps its outputs in the run directory only (``kubenas run`` says so)."""
    artifacts = spec.get("artifacts") or {}
    if not artifacts.get("url"):
        return {}
    return art.trainer_env(artifacts, experiment, art.experiment_location(artifacts, experiment))


def _record(trial: dict, proc: TrialProcess, experiment: str) -> dict:
    result = proc.result()
    return {
        "name": trial_name(experiment, trial["index"]),
        "index": trial["index"],
        "architecture": trial["architecture"],
        "hyperparameters": trial.get("hyperparameters") or {},
        "hash": genotype_hash(trial["architecture"], trial.get("hyperparameters")),
        "status": result.get("status", FAILED),
        "reward": result.get("reward"),
        "reason": result.get("reason"),
        "message": result.get("message") or "",
        "metrics": result.get("metrics") or {},
        "history": result.get("history") or [],
        **({"split": result["split"]} if result.get("split") else {}),  # the validation split the trainer used
        "exitCode": result.get("exitCode"),
        **({final_phase.REEVALUATION_OF: trial[final_phase.REEVALUATION_OF], "seed": trial["training"]["seed"]}
           if trial.get(final_phase.REEVALUATION_OF) else {}),
        **_fidelity_fields(trial),
        "startTime": datetime.fromtimestamp(proc.started_at, timezone.utc).isoformat(),
        "completionTime": _now(),
    }


def _duplicate_record(trial: dict, twin: dict, experiment: str) -> dict:
    now = _now()
    return {**{k: twin[k] for k in ("status", "reward", "metrics", "history", "hash")},
            **({"split": twin["split"]} if twin.get("split") else {}),
            "name": trial_name(experiment, trial["index"]), "index": trial["index"],
            "architecture": trial["architecture"], "hyperparameters": trial.get("hyperparameters") or {},
            **answered_by(twin["name"]), "exitCode": None, "startTime": now, "completionTime": now,
            **_fidelity_fields(trial)}


def _ladder_place(row: dict) -> tuple:
    """``(candidate, rung)`` of a multi-fidelity trial spec or row; ``(None, -1)`` without one."""
    field = row.get(fidelity.FIDELITY) or {}
    return field.get("candidate"), field.get("rung", -1)


def _fidelity_fields(trial: dict) -> dict:
    """A multi-fidelity trial's candidate and rung, and the epochs it was trained to."""
    if not trial.get(fidelity.FIDELITY):
        return {}
    return {fidelity.FIDELITY: {**trial[fidelity.FIDELITY], "epochs": trial["training"]["epochs"]}}


def _strategy_reward(record: dict) -> float | None:
    return strategy_reward(record.get("status"), record.get("reward"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
