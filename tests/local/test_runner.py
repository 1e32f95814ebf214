"""`kubenas run`: the local runner end to end, with real trainer processes."""
import json
import re
import signal

import pytest

from kubenas.cli import main

from .conftest import finished_lines, kubenas, wait_for, write

CONTRACT_FIELDS = {"name", "index", "architecture", "hyperparameters", "status", "reward", "metrics"}


def test_run_leaves_the_contract_files(tmp_path, tiny, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = finished_lines(run_dir)
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]
    for record in records:
        assert CONTRACT_FIELDS <= set(record)
        assert record["status"] == "Succeeded", record
        assert 0 < record["reward"] <= 1
        assert record["split"]["validation"] == "random"  # digits has no groups (docs/tasks.md)
    best = json.loads((run_dir / "best.json").read_text())
    assert best["reward"] == max(r["reward"] for r in records)
    assert CONTRACT_FIELDS <= set(best)
    assert (run_dir / "best_model.pt").stat().st_size > 0
    assert (run_dir / "progress.png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "Succeeded" in out and best["name"] in out


def test_rerun_of_a_finished_run_trains_nothing_more(tmp_path, tiny):
    run_dir = tmp_path / "run"
    path = write(tmp_path, tiny)
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 0
    first = (run_dir / "trials.jsonl").read_text()
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "trials.jsonl").read_text() == first


def test_raising_max_trials_continues_the_search(tmp_path, tiny):
    run_dir = tmp_path / "run"
    tiny["spec"]["budget"]["maxTrials"] = 2
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    tiny["spec"]["budget"]["maxTrials"] = 3
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    assert sorted(r["index"] for r in finished_lines(run_dir)) == [0, 1, 2]


def test_a_different_experiment_in_the_same_run_dir_is_refused(tmp_path, tiny, capsys):
    run_dir = tmp_path / "run"
    tiny["spec"]["budget"]["maxTrials"] = 1
    tiny["spec"]["budget"]["parallelTrials"] = 1
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    tiny["spec"]["strategy"]["seed"] = 4
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 2
    assert "spec.strategy changed" in capsys.readouterr().err
    assert len(finished_lines(run_dir)) == 1


def test_invalid_file_is_refused_before_anything_runs(tmp_path, tiny, capsys):
    tiny["spec"]["budget"]["parallelTrials"] = 9
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 2
    assert "spec.budget.parallelTrials" in capsys.readouterr().err
    assert not run_dir.exists()


def test_failing_trials_fail_the_experiment_and_say_why(tmp_path, tiny, capsys):
    # A dataset file that the trainer cannot use: every trial fails with DataError, and the
    # experiment stops once more than maxFailedTrials (1) have failed.
    import numpy as np

    np.savez(tmp_path / "broken.npz", x_train=np.zeros((4, 8, 8)))
    tiny["spec"]["trial"]["dataset"] = {"name": "npz", "path": str(tmp_path / "broken.npz")}
    run_dir = tmp_path / "run"
    path = write(tmp_path, tiny)
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 1
    records = finished_lines(run_dir)
    assert len(records) == 2
    assert {r["status"] for r in records} == {"Failed"}
    assert {r["reason"] for r in records} == {"DataError"}
    state = json.loads((run_dir / "state.json").read_text())
    assert (state["phase"], state["reason"]) == ("Failed", "TooManyFailedTrials")
    # Without the progress display (which prints each failure) the summary still says why.
    out = capsys.readouterr().out
    assert re.search(r"cause: 2 of 2 failed trials \(tiny-[01] the last\): DataError: npz: .*broken.npz lacks the "
                     r"array\(s\) y_train, x_test, y_test", out), out
    assert "no trial ran" not in out
    # Rerunning after fixing the data replays the finished run: the summary says how to run again.
    np.savez(tmp_path / "broken.npz", **{k: np.zeros((4, 1, 8, 8)) if k.startswith("x") else np.arange(4) % 2
                                         for k in ("x_train", "y_train", "x_test", "y_test")})
    assert main(["run", str(path), "--run-dir", str(run_dir), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert f"no trial ran: {run_dir} holds this experiment's finished run" in out
    assert "pass another --run-dir" in out and len(finished_lines(run_dir)) == 2


def test_a_dataset_path_missing_here_is_refused_before_any_trial(tmp_path, tiny, capsys):
    tiny["spec"]["trial"]["dataset"] = {"name": "npz", "path": str(tmp_path / "missing.npz")}
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "spec.trial.dataset.path" in err and "missing.npz does not exist" in err
    assert not run_dir.exists()


def test_duplicates_are_not_retrained(tmp_path, tiny):
    # A space of exactly one candidate: the first trial trains, the rest reuse it.
    tiny["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 1, "operations": ["identity"]}}
    tiny["spec"]["budget"].update(maxTrials=3, parallelTrials=1)
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = finished_lines(run_dir)
    assert [r.get("duplicateOf") for r in records] == [None, "tiny-0", "tiny-0"]
    assert len({r["reward"] for r in records}) == 1


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_to_exactly_max_trials(tmp_path, tiny, sig):
    tiny["spec"]["budget"].update(maxTrials=6, parallelTrials=2)
    path = write(tmp_path, tiny)
    run_dir = tmp_path / "run"
    proc = kubenas("run", path, "--run-dir", run_dir)
    wait_for(lambda: len(finished_lines(run_dir)) >= 2, 120, "two finished trials")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "rerun the same command to resume" in err
    kept = finished_lines(run_dir)
    assert 2 <= len(kept) < 6
    rerun = kubenas("run", path, "--run-dir", run_dir)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    records = finished_lines(run_dir)
    assert sorted(r["index"] for r in records) == list(range(6))
    assert records[:len(kept)] == kept  # nothing finished was lost or rewritten


def test_size_penalty_makes_the_small_model_best(tmp_path, tiny):
    """objective.penalties end to end: spec -> trial spec -> trainer -> reward -> best.json."""
    tiny["spec"]["objective"]["penalties"] = [{"metric": "parameters", "target": 100, "weight": -1.0}]
    tiny["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 1, "operations": ["conv"],
                                                              "filters": [4, 128], "kernelSizes": [3], "strides": [1]}}
    tiny["spec"]["budget"].update(maxTrials=2, parallelTrials=2)
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = {r["architecture"]["layers"][0]["filters"]: r for r in finished_lines(run_dir)}
    for record in records.values():
        m = record["metrics"]
        assert record["reward"] == pytest.approx(m["accuracy"] * (m["parameters"] / 100) ** -1.0)
    best = json.loads((run_dir / "best.json").read_text())
    assert best["architecture"]["layers"][0]["filters"] == 4, records


def test_a_constrained_search_never_trains_a_candidate_over_max_parameters(tmp_path, tiny, caplog):
    """spec.constraints end to end: conv with 128 filters (~1.6k parameters) is never trained;
    once both feasible networks ran, the third trial repeats one (logged) and is not retrained."""
    tiny["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 1, "operations": ["conv", "identity"],
                                                              "filters": [4, 128], "kernelSizes": [3], "strides": [1]}}
    tiny["spec"]["constraints"] = {"maxParameters": 100}  # conv 4 filters: 94; identity: 20 (digits, 10 classes)
    tiny["spec"]["budget"].update(maxTrials=3, parallelTrials=1)
    run_dir = tmp_path / "run"
    with caplog.at_level("WARNING", logger="kubenas.strategies.base"):
        assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = finished_lines(run_dir)
    trained = [r for r in records if not r.get("duplicateOf")]
    assert sorted(r["metrics"]["parameters"] for r in trained) == [20, 94]  # the trainer's own measurement
    assert len(records) == 3 and records[2].get("duplicateOf")
    assert "every network within the constraints has been proposed" in caplog.text
