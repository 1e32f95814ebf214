"""`kubenas watch`, `top`, `export`, `get`, `plot`, `logs` on a local run directory: one
real run (`kubenas run`, real trainer processes, ONNX export asked for) followed live by
`kubenas watch` from another process, then read by the other commands."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from tests.waiting import wait_until

from .conftest import TINY, ROOT, write

RUN_TRIALS = 4
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubenas.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 4-trial run, and what `kubenas watch` printed while it ran."""
    import copy

    tmp = tmp_path_factory.mktemp("cli")
    experiment = copy.deepcopy(TINY)
    experiment["spec"]["trial"]["export"] = {"formats": ["torchscript", "onnx"], "opset": 17}
    run_dir = tmp / "run"
    runner = subprocess.Popen([sys.executable, "-m", "kubenas.cli", "run", str(write(tmp, experiment)),
                               "--run-dir", str(run_dir), "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_until(lambda: (run_dir / "state.json").exists() or runner.poll() is not None, 120,
                   "the run to start", interval=0.1)
        watch = cli("watch", run_dir, timeout=600)
        runner.wait(timeout=600)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 0, runner.stderr
    return run_dir, watch


def rows_of(run_dir):
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


def test_watch_follows_the_run_until_it_ends(run):
    run_dir, watch = run
    assert watch.returncode == 0, watch.stderr
    lines = watch.stdout.splitlines()
    assert lines[0] == f"kubenas: watching {run_dir} (Running)", lines[0]
    for row in rows_of(run_dir):
        line = next(x for x in lines if f" {row['name']} " in x)
        assert line.startswith("Succeeded") and f"reward {row['reward']:.4f}" in line
    assert f"Succeeded: {RUN_TRIALS} trials finished" in watch.stdout


def test_top_is_the_local_leaderboard(run):
    run_dir, _ = run
    done = cli("top", run_dir, "-k", "2")
    assert done.returncode == 0, done.stderr
    best = json.loads((run_dir / "best.json").read_text())
    names = [line.split("│")[2].strip() for line in done.stdout.splitlines() if line.startswith("│")]
    assert len(names) == 2 and names[0] == best["name"]
    assert f"{RUN_TRIALS} succeeded" in done.stdout


def test_export_has_every_trial_with_architecture_hyperparameters_metrics(run, tmp_path):
    run_dir, _ = run
    rows = {r["name"]: r for r in rows_of(run_dir)}
    out = tmp_path / "trials.csv"
    assert cli("export", run_dir, "--format", "csv", "-o", out).returncode == 0
    table = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sorted(t["name"] for t in table) == sorted(rows)
    for t in table:
        row = rows[t["name"]]
        assert json.loads(t["genotype"]) == row["architecture"]
        assert float(t["reward"]) == row["reward"]
        assert float(t["metric.parameters"]) == row["metrics"]["parameters"]
        assert float(t["metric.testAccuracy"]) == row["metrics"]["testAccuracy"]
        assert int(t["epochs"]) == len(row["history"]) == 1
    jsonl = cli("export", run_dir, "--format", "jsonl").stdout
    assert {json.loads(line)["name"]: json.loads(line) for line in jsonl.splitlines()} == rows


def test_get_plot_and_logs_read_the_run(run, tmp_path):
    run_dir, _ = run
    get = cli("get", run_dir)
    row = next(line for line in get.stdout.splitlines() if "tiny" in line)
    assert "Succeeded" in row and "random" in row
    for name in ("progress.png", "tradeoff.png", "curves.png", "ops.png"):  # written by the run itself
        assert (run_dir / name).read_bytes()[:4] == b"\x89PNG"
    plot = cli("plot", run_dir, "--out", tmp_path / "plots")
    assert plot.returncode == 0, plot.stderr
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["curves.png", "ops.png", "progress.png",
                                                                      "tradeoff.png"]
    logs = cli("logs", "tiny-0", "--run-dir", run_dir)
    assert logs.returncode == 0 and "kubenas-train: Succeeded" in logs.stdout


def test_the_run_exports_the_best_model_as_onnx_too(run):
    import onnxruntime
    import torch

    run_dir, _ = run
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        expected = torch.jit.load(str(run_dir / "best_model.pt"), map_location="cpu")(x).numpy()
    session = onnxruntime.InferenceSession(str(run_dir / "best_model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["logits"], {"images": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("args, message", [
    (("top", "no/such/dir"), "error: no/such/dir: no such run directory; pass the --run-dir of a `kubenas run`, "
                             "or an experiment name on the cluster"),
    (("logs", "tiny-9", "--run-dir", "."), "is not a kubenas run directory"),
    (("get", "--kubeconfig", "/nonexistent/kubeconfig"),
     "error: kubeconfig /nonexistent/kubeconfig does not exist; pass --kubeconfig an existing file"),
])
def test_errors_are_one_line_naming_the_fix(args, message):
    done = cli(*args)
    assert done.returncode == 1
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr
