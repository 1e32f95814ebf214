"""`kubenas run` where no trial can succeed, as a new user meets it: the run ends Failed with
the reason, the command exits 1, and trials.jsonl says what each program did."""
from __future__ import annotations

import io
import json
import pathlib

import pytest
import yaml
from rich.console import Console

from kubenas.cli import main
from kubenas.local.progress import RichProgress

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "examples"


def rows(run_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def state(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "state.json").read_text())


def program_experiment(tmp_path: pathlib.Path, code: str, **budget) -> pathlib.Path:
    """An experiment whose every trial runs ``python -c code`` (docs/byo.md)."""
    experiment = {
        "apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "own"},
        "spec": {"objective": {"metric": "accuracy", "goal": "maximize"},
                 "searchSpace": {"type": "parameters",
                                 "parameters": [{"name": "lr", "type": "logUniform", "min": 1e-4, "max": 0.1}]},
                 "strategy": {"type": "random", "seed": 1},
                 "budget": {"parallelTrials": 1, "trialTimeoutSeconds": 60, **budget},
                 "trial": {"command": ["python", "-c", code, "${lr}"]}}}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(experiment))
    return path


def test_a_program_exiting_7_is_a_failure_that_counts_against_max_failed_trials(tmp_path):
    """7 is kubenas' ConstraintViolated, which maxFailedTrials does not count: a program's
    own 7 is InternalError, so 2 failures of at most 1 end the run Failed."""
    path = program_experiment(tmp_path, "import sys; print('oops'); sys.exit(7)", maxTrials=4, maxFailedTrials=1)
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 1
    assert (state(run_dir)["phase"], state(run_dir)["reason"]) == ("Failed", "TooManyFailedTrials")
    records = rows(run_dir)
    assert len(records) == 2
    assert all((r["reason"], r["exitCode"]) == ("InternalError", 7) for r in records), records
    assert "exited with code 7" in records[0]["message"] and "oops" in records[0]["message"]


def test_a_program_that_reports_nothing_keeps_its_exit_code_and_the_run_fails(tmp_path, capsys):
    path = program_experiment(tmp_path, "print('trained, forgot to report')", maxTrials=2, maxFailedTrials=4)
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 1
    captured = capsys.readouterr()
    err = " ".join((captured.out + captured.err).split())
    assert "Failed (NoTrialSucceeded)" in err and "cause: 2 of 2 failed trials" in err
    records = rows(run_dir)
    assert [(r["status"], r["reason"], r["exitCode"]) for r in records] == [("Failed", "NoReward", 0)] * 2
    assert "exited 0 but reported nothing" in records[0]["message"]
    assert (state(run_dir)["phase"], state(run_dir)["reason"]) == ("Failed", "NoTrialSucceeded")
    assert "none succeeded" in state(run_dir)["message"] and "NoReward" in state(run_dir)["message"]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_run_on_a_machine_without_cuda_ends_failed_at_once_naming_training_device(tmp_path):
    experiment = yaml.safe_load((EXAMPLES / "digits-random.yaml").read_text())
    experiment["spec"]["trial"]["training"]["device"] = "cuda"
    path = tmp_path / "digits-cuda.yaml"
    path.write_text(yaml.safe_dump(experiment))
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 1
    final = state(run_dir)
    assert (final["phase"], final["reason"]) == ("Failed", "Unsatisfiable")
    assert "training.device: cuda requested but no CUDA device is available" in final["message"]
    # Early: the trials already started when the first failed, not the 16 of the budget.
    records = rows(run_dir)
    assert 1 <= len(records) <= experiment["spec"]["budget"]["parallelTrials"]
    assert all(r["reason"] == "Unsatisfiable" for r in records)


def test_the_progress_line_shows_a_failures_last_line_within_the_terminal_width():
    out = io.StringIO()
    progress = RichProgress(Console(file=out, width=100, force_terminal=False, soft_wrap=True))
    message = ("the program exited with code 1; its last output:\n" + "x" * 150 + "\n"
               "  File \"train.py\", line 12, in <module>\n"
               "ValueError: learning rate 12.0 is out of range and this line is long enough to be cut off here")
    progress.start(total=2, done=0)
    progress.trial_finished({"name": "own-0", "status": "Failed", "reason": "InternalError", "message": message},
                            done=1, running=0, failed=1, best=None)
    progress.stop()
    line = next(line for line in out.getvalue().splitlines() if "own-0" in line)
    assert "InternalError: ValueError: learning rate 12.0" in line
    assert len(line) <= 100 and line.endswith("…")

