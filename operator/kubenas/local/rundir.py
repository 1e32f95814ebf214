"""The run directory of a local experiment: the files a user and other tools rely on.

    experiment.yaml      the experiment as first run (a rerun must match it but for budget)
    trials.jsonl         one JSON object per finished trial, appended and fsynced
    trials/<name>/       trial.json (input), history.jsonl, result.json, model.pt, log.txt
    strategy.json        the strategy's checkpoint after the last finished trial
    state.json           phase of the experiment and why it ended
    best.json            the best trial; best_model.pt its TorchScript model
    progress.png         reward of each trial and best so far over trial index
    tradeoff.png         reward against parameters/MACs/latency, Pareto front marked
    curves.png           per-epoch validation metric of the top trials
    ops.png              share of each operation chosen, over the trials

trials.jsonl is the source of truth: a trial is finished exactly when its line is
there, so a run killed at any moment resumes without losing or retraining a trial.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

PARTS_ALLOWED_TO_CHANGE = ("budget", "earlyStopping", "controller")


class RunDirMismatch(ValueError):
    pass


class RunDir:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.trials_file = self.root / "trials.jsonl"
        self.experiment_file = self.root / "experiment.yaml"
        self.checkpoint_file = self.root / "strategy.json"
        self.state_file = self.root / "state.json"
        self.best_file = self.root / "best.json"
        self.pareto_file = self.root / "pareto.json"  # with objective.pareto: the front's trials
        self.final_file = self.root / "final.json"  # with spec.final: the re-evaluated candidates
        self.best_model_file = self.root / "best_model.pt"
        self.plot_file = self.root / "progress.png"

    def trial_dir(self, name: str) -> Path:
        return self.root / "trials" / name

    # -- the experiment ------------------------------------------------------------

    def bind(self, experiment: dict) -> None:
        """Record the experiment, or check that a resumed run is the same experiment."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.experiment_file.exists():
            _atomic_write(self.experiment_file, yaml.safe_dump(experiment, sort_keys=False))
            return
        previous = yaml.safe_load(self.experiment_file.read_text())
        changed = sorted(
            key for key in set(previous.get("spec", {})) | set(experiment.get("spec", {}))
            if key not in PARTS_ALLOWED_TO_CHANGE
            and previous.get("spec", {}).get(key) != experiment.get("spec", {}).get(key)
        )
        if changed or previous.get("metadata", {}).get("name") != experiment.get("metadata", {}).get("name"):
            what = ", ".join(f"spec.{key}" for key in changed) or "metadata.name"
            raise RunDirMismatch(
                f"{self.root} holds a different experiment ({what} changed); only "
                f"{', '.join('spec.' + k for k in PARTS_ALLOWED_TO_CHANGE)} may change on resume. "
                "Use another --run-dir, or delete this one to start over.")
        before, now = (previous.get("spec", {}).get("budget") or {}), (experiment["spec"].get("budget") or {})
        if experiment["spec"].get("final") and before.get("maxTrials") != now.get("maxTrials"):
            raise RunDirMismatch(
                f"{self.root}: spec.budget.maxTrials cannot change with spec.final (the re-evaluation trials "
                f"are numbered after it); keep maxTrials {before.get('maxTrials')}, or use another --run-dir.")
        _atomic_write(self.experiment_file, yaml.safe_dump(experiment, sort_keys=False))

    # -- finished trials -----------------------------------------------------------

    def finished(self) -> list[dict]:
        """Finished trials in completion order (a torn last line from a crash is skipped)."""
        if not self.trials_file.exists():
            return []
        records = []
        for line in self.trials_file.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        seen, unique = set(), []
        for record in records:
            if record["index"] not in seen:
                seen.add(record["index"])
                unique.append(record)
        return unique

    def append_finished(self, record: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = self.trials_file.read_bytes() if self.trials_file.exists() else b""
        with open(self.trials_file, "a") as f:
            if data and not data.endswith(b"\n"):
                f.write("\n")  # a crash mid-line must not glue two records together
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # -- proposed trials -----------------------------------------------------------

    def proposed(self) -> list[dict]:
        """Every trial ever proposed (trial.json written), in index order."""
        trials = []
        for path in (self.root / "trials").glob("*/trial.json"):
            try:
                trials.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # torn write: never launched, it will be proposed again
        return sorted(trials, key=lambda t: t["index"])

    def write_trial(self, name: str, trial_spec: dict) -> Path:
        directory = self.trial_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / "trial.json", json.dumps(trial_spec, indent=2, sort_keys=True))
        return directory

    # -- strategy checkpoint and state ----------------------------------------------

    def save_checkpoint(self, state: dict) -> None:
        _atomic_write(self.checkpoint_file, json.dumps(state))

    def load_state(self) -> dict:
        if not self.state_file.exists():
            return {}
        return json.loads(self.state_file.read_text())

    def save_state(self, state: dict) -> None:
        _atomic_write(self.state_file, json.dumps(state, indent=2, sort_keys=True))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
