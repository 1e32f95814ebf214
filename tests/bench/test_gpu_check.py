"""bench/gpu_check.py's code paths on the CPU (`--device cpu --quick`): every check runs
through the trainer's own entry points and ends in the table and its JSON; the numbers
on a GPU are for the day one is lent (bench/RESULTS.md, "GPU check")."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(1500)  # about 5 minutes on a shared 2-core machine under load
def test_the_gpu_check_runs_quick_on_the_cpu(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--json", str(out)], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["quick"] and report["passed"]
    checks = {(row["check"], row["setting"]): row for row in report["rows"]}
    assert {c for c, _ in checks} == {"epoch time", "throughput", "accuracy", "checkpoint/resume", "export", "supernet"}
    assert all(checks[("epoch time", s)]["value"] > 0 for s in ("fp32", "mixedPrecision",
                                                                 "mixedPrecision + channelsLast"))
    # On the CPU resume is exact, and TorchScript gives the eager model's logits.
    assert checks[("checkpoint/resume", "1 epoch + resume vs 2 straight")]["value"] == 0.0
    assert checks[("export", "TorchScript on cpu vs the eager model")]["value"] <= 1e-4
    assert all(row["ok"] is not False for row in report["rows"])
    assert "check" in done.stdout and "supernet" in done.stdout  # the printed table
