"""Run one NASExperiment on this machine: the same strategies and trainer as a cluster.

The loop, written down as a state machine of the experiment:

    Running --(the experiment plan's budget spent | target reached)--> Succeeded
    Running --(failed > maxFailedTrials)----------------> Failed
    Running --(a trial failed Unsatisfiable)------------> Failed   (every trial would fail so)
    Running --(the budget spent, no trial succeeded)----> Failed   (NoTrialSucceeded)
    Running --(deadlineSeconds passed)------------------> Stopped
    Running --(Ctrl-C)--> (process exits; a rerun resumes in Running)

and of each trial: proposed (trial.json written) -> running (a process) -> finished
(a line in trials.jsonl: Succeeded | Failed | EarlyStopped). A trial proposed but not
finished when the runner died is run again, under the same index, on resume. The
experiment's plan (kubenas.experiment.plan) decides which trials to start, which the
strategy observes, which the median rule may stop and when the experiment ends; a trial
it asks for is a proposal of the strategy, or another run of an existing trial's network
(its trial.json), continuing that trial's checkpoint.pt where the plan says so.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime

from kubenas.api.trials import build_trial_spec, trial_name
from kubenas.api.defaults import with_defaults
from kubenas.contract import FAILED, RUNNING, STOPPED_BY_RUNNER, SUCCEEDED
from kubenas.contract import artifacts as art
from kubenas.contract.distributed import distributed_for
from kubenas.contract.genotype import genotype_hash
from kubenas.contract.result import timestamp
from kubenas.early_stopping import median_stop
from kubenas.experiment import Outcome, answered_by, best_reward, can_answer, counts_by_phase, from_row, twin_key
from kubenas.experiment.plan import plan_for, row_marks
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
        self.plan = plan_for(self.spec)
        self.running_specs: dict[int, dict] = {}  # index -> the trial.json of a trial in flight

    # -- setup and resume ------------------------------------------------------------

    def _restore(self):
        space = SearchSpace.from_spec(self.spec["searchSpace"])
        strategy = make_strategy(self.spec["strategy"], space, self.goal, constraints_from_spec(self.spec),
                                 self.pareto)
        finished = self.run_dir.finished()
        proposed = self.run_dir.proposed()
        # The strategy knows the trials the plan shows it, under the plan's index.
        searched = self._proposals(proposed)
        observed = self._observations(finished)
        if not self._load_checkpoint(strategy, len(searched), len(observed)):
            rebuild(strategy, proposed=searched, finished=observed)
        return strategy, proposed, finished

    def _proposals(self, rows: list) -> list:
        """The strategy's proposals the trials (specs or rows) hold, as (index, candidate)."""
        return [p for r in rows for p in self.plan.proposals(from_row(r, details=False), r)]

    def _observations(self, rows: list) -> list:
        """What the strategy observes of the finished trials (rows), in order."""
        return [o for r in rows for o in self.plan.observations(from_row(r, details=False), r, r.get("metrics"))]

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
        proposed_count = len(self._proposals(proposed))  # as the strategy's checkpoint counts them
        # Succeeded trials by (candidate hash, rung): a repeated candidate is not retrained.
        hashes: dict = {}
        for row in records:
            self._remember(hashes, row)

        self.progress.start(self.plan.planned_trials(), len(records))
        outcome = None
        try:
            while True:
                outcome = self.plan.outcome(self._records(), time.time() - started_epoch)
                if outcome is not None:
                    break
                # Fill the free slots: unfinished trials from a killed run first, then what the plan asks for.
                while len(self.running) < self.parallel:
                    if unfinished:
                        trial = unfinished.pop(0)
                    else:
                        trial, proposed = self._next_trial(strategy)
                        if trial is None:
                            break
                        proposed_count += proposed
                        # a candidate trained before is answered by its twin (a re-evaluation never is)
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
        """The trials in flight as records."""
        return [self._active_record(index, proc) for index, proc in self.running.items()]

    def _active_record(self, index: int, proc: TrialProcess):
        return from_row({**self.running_specs[index], "name": proc.name, "status": RUNNING}, details=False)

    def _records(self) -> list:
        """Every trial's record, finished or in flight: what the plan decides on."""
        return self.trial_records + self._active_records()

    def _next_trial(self, strategy) -> tuple[dict | None, int]:
        """The next trial the plan asks for, written to its trial.json (None: none is due
        now), and how many of the strategy's proposals it holds."""
        due = self.plan.next_trials(self._records(), 1)
        if not due:
            return None, 0
        nxt = due[0]
        source, resume_from = None, None
        proposals = [strategy.propose(i) for i in nxt.batch]
        if nxt.proposes is not None:
            proposal = strategy.propose(nxt.proposes)
        elif nxt.given is not None:
            proposal = nxt.given
        else:
            # Another run of a trial's network, as that trial encoded it (a checkpoint's
            # identity holds the encoding): its trial.json.
            source = json.loads((self.run_dir.trial_dir(nxt.copies) / "trial.json").read_text())
            proposal = self.plan.copied_candidate(nxt, source)
        if nxt.resume is not None:
            resume_from = str(self.run_dir.trial_dir(nxt.resume) / art.CHECKPOINT_FILE)
        trial = self.plan.trial_spec(nxt, build_trial_spec(self.name, self.spec, nxt.index, proposal), source,
                                     resume_from, proposals)
        self.run_dir.write_trial(trial_name(self.name, nxt.index), trial)
        return trial, len(proposals) + (nxt.proposes is not None)

    def _launch(self, trial: dict) -> None:
        name = trial_name(self.name, trial["index"])
        directory = self.run_dir.trial_dir(name)
        for stale in ("result.json", "history.jsonl", "stop"):  # from a run killed mid-trial
            (directory / stale).unlink(missing_ok=True)
        self.running[trial["index"]] = TrialProcess(name, trial["index"], directory,
                                                    trial["timeoutSeconds"], self.threads, self.artifacts_env,
                                                    command=self.spec["trial"].get("command"),
                                                    python_path=self.python_path,
                                                    distributed=distributed_for(self.spec["trial"]))
        self.running_specs[trial["index"]] = trial
        self.progress.trial_started(name)
        if self.metrics:
            self.metrics.trial_started(self.name)

    def _poll(self, strategy, records: list, proposed_count: int, hashes: dict) -> None:
        stopping = self.spec["earlyStopping"]
        completed = None
        for index, proc in list(self.running.items()):
            if proc.poll() is None:
                if stopping["type"] == "median" and self.plan.may_stop_early(self._active_record(index, proc)):
                    if completed is None:
                        completed = [r.get("history") or [] for r in records if r.get("status") == SUCCEEDED]
                    if not proc.early_stop_requested and median_stop(
                            proc.history(), completed, self.metric, self.goal,
                            stopping["minTrials"], stopping["startEpoch"]):
                        proc.request_early_stop()
                continue
            del self.running[index]
            self.running_specs.pop(index, None)
            trial = json.loads((proc.directory / "trial.json").read_text())
            record = _record(trial, proc, self.name)
            records.append(record)
            self._remember(hashes, record)
            self._finish(strategy, record, records, proposed_count)

    def _finish(self, strategy, record: dict, records: list, proposed_count: int) -> None:
        self.run_dir.append_finished(record)
        observed = self._observations([record])
        for observation in observed:
            strategy.observe(*observation)
        if observed:
            self._checkpoint(strategy, proposed_count, len(self._observations(records)))
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
        from . import plots, summary

        if self.metrics and hasattr(self.metrics, "experiment_finished"):
            self.metrics.experiment_finished(outcome.phase)
        best = summary.write_best(self.run_dir, records, self.goal, self.spec)
        summary.write_pareto(self.run_dir, records, self.goal, self.pareto)
        summary.write_plot(self.run_dir, records, self.goal, self.metric, self.name)
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
        # one result per candidate of a trial that scores several (a one-shot score trial)
        **({"scores": result["scores"]} if isinstance(result.get("scores"), list) else {}),
        **row_marks(trial),
        "startTime": timestamp(proc.started_at),
        "completionTime": _now(),
    }


def _duplicate_record(trial: dict, twin: dict, experiment: str) -> dict:
    now = _now()
    return {**{k: twin[k] for k in ("status", "reward", "metrics", "history", "hash")},
            **({"split": twin["split"]} if twin.get("split") else {}),
            "name": trial_name(experiment, trial["index"]), "index": trial["index"],
            "architecture": trial["architecture"], "hyperparameters": trial.get("hyperparameters") or {},
            **answered_by(twin["name"]), "exitCode": None, "startTime": now, "completionTime": now,
            **row_marks(trial)}


def _now() -> str:
    return timestamp()
