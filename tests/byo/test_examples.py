"""The two bring-your-own routes of deploy/examples, run by `kubenas run`'s runner (docs/byo.md)."""
from __future__ import annotations

import json
import pathlib

import pytest

from kubenas.api.loading import load_experiment_file
from kubenas.contract import EARLY_STOPPED, SUCCEEDED
from kubenas.local.runner import LocalRunner

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "examples"


def rows(run_dir: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_a_script_that_never_imports_kubenas_searched_by_evolution(tmp_path):
    script = (EXAMPLES / "byo_digits" / "train_mlp.py").read_text()
    assert "kubenas" not in "\n".join(l for l in script.splitlines() if l.startswith(("import", "from")))
    experiment = load_experiment_file(EXAMPLES / "byo-script-digits.yaml")
    experiment["spec"]["budget"]["maxTrials"] = 12
    experiment["spec"]["trial"]["training"]["epochs"] = 15
    summary = LocalRunner(experiment, tmp_path, python_path=[EXAMPLES]).run()
    assert summary.phase == SUCCEEDED, summary.message
    records = rows(tmp_path)
    assert len(records) == 12
    for r in records:
        assert r["status"] in (SUCCEEDED, EARLY_STOPPED), r["message"]
        assert r["history"] and [h["epoch"] for h in r["history"]] == list(range(1, len(r["history"]) + 1))
        assert r["reward"] == r["history"][-1]["accuracy"]  # the last epoch's value (final: the same number)
    finished = [r for r in records if r["status"] == SUCCEEDED]
    stopped = [r for r in records if r["status"] == EARLY_STOPPED]
    assert stopped, "the median rule stopped no trial"
    assert all(len(r["history"]) == 15 and r["metrics"]["parameters"] > 0 for r in finished)
    assert all(len(r["history"]) < 15 for r in stopped)
    assert max(r["reward"] for r in finished) > 0.9
    # The candidate reached the script: its ${lr} and its layers.
    candidate = json.loads((tmp_path / "trials" / records[0]["name"] / "candidate.json").read_text())
    assert candidate["parameters"] == records[0]["architecture"]["parameters"]


@pytest.mark.slow
def test_builder_and_loader_reach_good_accuracy_and_export_torchscript(tmp_path):
    import torch

    from kubenas.cli import main

    # `kubenas run` as shipped: the experiment file's folder is where byo_digits is found.
    assert main(["run", str(EXAMPLES / "byo-builder-digits.yaml"), "--run-dir", str(tmp_path), "--no-progress"]) == 0
    records = rows(tmp_path)
    assert len(records) == 4
    assert all(r["status"] == SUCCEEDED for r in records), [r["message"] for r in records]
    assert all(r["metrics"]["parameters"] > 0 and r["metrics"]["macs"] > 0 for r in records)
    best = max(r["reward"] for r in records)
    assert best > 0.9
    model = torch.jit.load(str(tmp_path / "best_model.pt"))
    logits = model(torch.zeros(3, 1, 8, 8))
    assert tuple(logits.shape) == (3, 10)


def test_a_missing_builder_module_is_named_with_its_import_error(tmp_path):
    from kubenas_trainer.training.loop import run_trial

    result = run_trial({"architecture": {"type": "parameters", "parameters": {}},
                        "model": {"builder": "no_such_pkg.models:build"}, "training": {"epochs": 1}})
    assert result["reason"] == "InvalidTrial"
    assert "trial.model.builder: cannot import 'no_such_pkg.models'" in result["message"]
    assert "ModuleNotFoundError" in result["message"]
