import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "apiVersion": "kubenas.io/v1alpha1",
    "kind": "NASExperiment",
    "metadata": {"name": "tiny"},
    "spec": {
        "objective": {"metric": "accuracy", "goal": "maximize"},
        "searchSpace": {"type": "chain", "chain": {"layers": 2, "filters": [8, 16], "kernelSizes": [3], "strides": [1, 2]}},
        "strategy": {"type": "random", "seed": 3},
        "budget": {"maxTrials": 4, "parallelTrials": 2, "maxFailedTrials": 1, "trialTimeoutSeconds": 120},
        "trial": {"dataset": {"name": "digits", "limit": 200},
                  "training": {"epochs": 1, "batchSize": 64}},
    },
}


@pytest.fixture
def tiny():
    """A valid experiment whose trials train for about a second."""
    return copy.deepcopy(TINY)


def write(tmp_path: Path, experiment: dict, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(experiment))
    return path


def kubenas(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kubenas.cli", *map(str, args), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def finished_lines(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    return wait_until(predicate, timeout, what, interval)
