"""spec.trial.distributed: the CRD's schema and the semantic check (kubenas.api.checks.distributed)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubenas.api.validation import validate_experiment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def experiment():
    return yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())


def issues(obj) -> dict[str, str]:
    return {issue.path: issue.message for issue in validate_experiment(obj)}


def test_a_cpu_block_with_gloo_is_valid(experiment):
    experiment["spec"]["trial"]["distributed"] = {"nprocPerNode": 2}
    assert issues(experiment) == {}


@pytest.mark.parametrize("block, path, words", [
    ({"nprocPerNode": 0}, "spec.trial.distributed.nprocPerNode", "minimum"),
    ({"nprocPerNode": 65}, "spec.trial.distributed.nprocPerNode", "maximum"),
    ({"backend": "gloo"}, "spec.trial.distributed.nprocPerNode", "required"),
    ({"nprocPerNode": 2, "backend": "mpi"}, "spec.trial.distributed.backend", "nccl"),
    ({"nprocPerNode": 2, "nnodes": 2}, "spec.trial.distributed.nnodes", "unknown field"),
    ({"nprocPerNode": 2, "backend": "nccl"}, "spec.trial.distributed.backend", "or use backend gloo"),
])
def test_bad_blocks_name_the_field(experiment, block, path, words):
    experiment["spec"]["trial"]["distributed"] = block
    found = issues(experiment)
    assert path in found and words in found[path], found


def test_processes_must_match_the_gpus(experiment):
    trial = experiment["spec"]["trial"]
    trial["template"] = {"resources": {"limits": {"nvidia.com/gpu": 4}}}
    trial["distributed"] = {"nprocPerNode": 2}
    assert "set nprocPerNode: 4" in issues(experiment)["spec.trial.distributed.nprocPerNode"]
    trial["distributed"] = {"nprocPerNode": 4}
    assert issues(experiment) == {}


def test_the_global_batch_splits_evenly(experiment):
    trial = experiment["spec"]["trial"]
    trial["template"] = {"resources": {"limits": {"nvidia.com/gpu": 3}}}   # 3 processes, nccl
    trial.setdefault("training", {})["batchSize"] = 64
    assert "use e.g. 66" in issues(experiment)["spec.trial.training.batchSize"]
    trial["training"]["batchSize"] = 96
    experiment["spec"]["searchSpace"]["hyperparameters"] = [
        {"name": "batchSize", "type": "categorical", "values": [48, 64]}]
    assert "1 of 2 do not" in issues(experiment)["spec.searchSpace.hyperparameters[0]"]


def test_a_program_keeps_its_own_batch(experiment):
    trial = experiment["spec"]["trial"]
    trial["distributed"] = {"nprocPerNode": 3}
    trial.setdefault("training", {})["batchSize"] = 64
    assert "spec.trial.training.batchSize" in issues(experiment)
    trial["command"] = ["python", "train.py"]
    assert "spec.trial.training.batchSize" not in issues(experiment)
