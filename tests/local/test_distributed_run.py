"""`kubenas run` of a trial of two processes (spec.trial.distributed, gloo on the CPU;
docs/distributed.md): the runner starts the trainer's launcher, rank 0 reports."""
import json

from kubenas.cli import main

from .conftest import finished_lines, write


def test_a_two_process_trial_runs_under_torchrun_and_reports_once(tmp_path, tiny):
    tiny["spec"]["budget"].update(maxTrials=1, parallelTrials=1)
    tiny["spec"]["trial"]["distributed"] = {"nprocPerNode": 2, "backend": "gloo"}
    tiny["spec"]["trial"]["training"].update(epochs=2, numThreads=1)
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    [record] = finished_lines(run_dir)
    assert record["status"] == "Succeeded", record
    assert record["metrics"]["processes"] == 2
    trial_dir = run_dir / "trials" / record["name"]
    assert [json.loads(line)["epoch"] for line in (trial_dir / "history.jsonl").read_text().splitlines()] == [1, 2]
    assert "Traceback" not in (trial_dir / "log.txt").read_text()
    assert (run_dir / "best_model.pt").stat().st_size > 0
