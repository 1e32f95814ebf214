"""kubenas-train: files written, exit codes, reporters."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubenas_trainer.cli import main
from kubenas_trainer.reporting.files import FileReporter, Reporter

TRIAL = {
    "experiment": "digits-test", "index": 0,
    "architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 2}]},
    "hyperparameters": {"learningRate": 0.05},
    "dataset": {"name": "digits", "limit": 64},
    "training": {"epochs": 3, "batchSize": 16, "measureLatency": False},
}


def write(path: Path, obj) -> Path:
    path.write_text(yaml.safe_dump(obj) if path.suffix == ".yaml" else json.dumps(obj))
    return path


def test_yaml_trial_writes_everything(tmp_path):
    trial = write(tmp_path / "trial.yaml", TRIAL)
    out = tmp_path / "out"
    assert main(["--trial", str(trial), "--out", str(out), "--export-model", "--save-weights"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "Succeeded"
    lines = (out / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    assert json.loads(lines[-1]) == result["history"][-1]
    assert (out / "model.pt").stat().st_size > 0 and (out / "weights.pt").stat().st_size > 0


def test_nastrial_object_and_stop_file(tmp_path):
    doc = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial", "metadata": {"name": "digits-test-0"},
           "spec": TRIAL}
    trial = write(tmp_path / "trial.json", doc)
    out = tmp_path / "out"
    out.mkdir()
    (out / "stop").touch()  # a runner asks the trial to stop after its current epoch
    assert main(["--trial", str(trial), "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "EarlyStopped" and len(result["history"]) == 1
    assert not (out / "model.pt").exists()


@pytest.mark.parametrize("content,code,reason", [
    ("{not json", 2, "InvalidTrial"),
    (json.dumps({**TRIAL, "architecture": {"type": "chain", "layers": [{"op": "conv"}]}}), 2, "InvalidArchitecture"),
    (json.dumps({**TRIAL, "hyperparameters": {"learningRate": 1e30}}), 3, "Diverged"),
    (json.dumps({**TRIAL, "dataset": {"name": "cifar10", "path": "/nonexistent"}}), 6, "DataError"),
])
def test_failures_exit_with_their_code(tmp_path, content, code, reason):
    trial = tmp_path / "trial.json"
    trial.write_text(content)
    assert main(["--trial", str(trial), "--out", str(tmp_path / "out")]) == code
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["status"] == "Failed" and result["reason"] == reason and result["message"]


def test_console_script_exit_code(tmp_path):
    script = Path(sys.executable).with_name("kubenas-train")
    if not script.exists():
        pytest.skip("kubenas-train console script is not installed in this environment")
    trial = write(tmp_path / "trial.json", {**TRIAL, "architecture": {"type": "chain", "layers": []}})
    proc = subprocess.run([str(script), "--trial", str(trial), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "InvalidArchitecture" in proc.stderr and "architecture.layers" in proc.stderr


def test_file_reporter_is_a_reporter_and_writes_valid_json(tmp_path):
    reporter = FileReporter(tmp_path)
    assert isinstance(reporter, Reporter)
    assert reporter.epoch({"epoch": 1, "loss": float("nan")}) is None
    reporter.final({"status": "Failed", "reward": float("inf")})
    assert json.loads((tmp_path / "history.jsonl").read_text()) == {"epoch": 1, "loss": None}
    assert json.loads((tmp_path / "result.json").read_text())["reward"] is None
