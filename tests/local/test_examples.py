"""Each digits example runs to the end as shipped: the embedded default works.

These train ~20 real models each (one to two minutes per example on a 2-core CPU);
their wall times are recorded in bench/RESULTS.md, not asserted here.
"""
import json

import pytest

from kubenas.cli import main

from .conftest import ROOT, finished_lines

DIGITS_EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("digits-*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("example", DIGITS_EXAMPLES, ids=lambda p: p.stem)
def test_digits_example_finds_an_accurate_architecture(tmp_path, example):
    import yaml

    max_trials = yaml.safe_load(example.read_text())["spec"]["budget"]["maxTrials"]
    run_dir = tmp_path / "run"
    assert main(["run", str(example), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = finished_lines(run_dir)
    state = json.loads((run_dir / "state.json").read_text())
    expected = len(records) if state["reason"] == "TargetReached" else max_trials
    assert sorted(r["index"] for r in records) == list(range(expected))
    best = json.loads((run_dir / "best.json").read_text())
    assert best["reward"] >= 0.95
    assert (run_dir / "best_model.pt").is_file() and (run_dir / "progress.png").is_file()
    if "onnx" in ((yaml.safe_load(example.read_text())["spec"]["trial"].get("export") or {}).get("formats") or []):
        assert (run_dir / "best_model.onnx").is_file()
