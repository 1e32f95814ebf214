"""A real run directory (one digits trial trained by `kubenas run`, exported as TorchScript
and ONNX) and `kubenas serve` processes over it, on free loopback ports."""
from __future__ import annotations

import contextlib
import copy
import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
MODEL = "digits-serve"
EXPERIMENT = {
    "apiVersion": "kubenas.io/v1alpha1",
    "kind": "NASExperiment",
    "metadata": {"name": MODEL},
    "spec": {
        "objective": {"metric": "accuracy", "goal": "maximize"},
        # one convolution architecture: a model that classifies (about 0.7 after 3 epochs)
        "searchSpace": {"type": "chain", "chain": {"layers": 2, "operations": ["conv"], "filters": [16],
                                                   "kernelSizes": [3], "strides": [1]}},
        "strategy": {"type": "random", "seed": 3},
        "budget": {"maxTrials": 1, "parallelTrials": 1, "maxFailedTrials": 1, "trialTimeoutSeconds": 300},
        "trial": {"dataset": {"name": "digits"},
                  "training": {"epochs": 3, "batchSize": 32, "optimizer": "sgd", "momentum": 0.9},
                  "export": {"formats": ["torchscript", "onnx"], "opset": 17}},
    },
}


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "exp.yaml").write_text(yaml.safe_dump(copy.deepcopy(EXPERIMENT)))
    done = subprocess.run([sys.executable, "-m", "kubenas.cli", "run", str(tmp / "exp.yaml"), "--run-dir",
                           str(tmp / "run"), "--no-progress"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return tmp / "run"


@pytest.fixture(scope="session")
def test_split():
    """The digits test split as the exported model takes it: float32 N x 1 x 8 x 8 in [0, 1]."""
    from kubenas_trainer.data import load_dataset

    data = load_dataset({"name": "digits"})
    return (data.test.x.float() * data.scale).numpy().astype(np.float32), data.test.y.numpy()


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *args):
        self.port = free_port()
        self.url = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "kubenas.cli", "serve", *map(str, args), "--port",
                                         str(self.port), "--log-level", "warning"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        wait_until(lambda: self.process.poll() is not None or self.status("/v2/health/ready") == 200, 120,
                   "kubenas serve to be ready", interval=0.2)
        assert self.process.poll() is None, self.process.communicate()

    def request(self, path: str, body: bytes | None = None, method: str | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(f"http://{self.url}{path}", data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def status(self, path: str) -> int | None:
        try:
            return self.request(path)[0]
        except OSError:
            return None

    def json(self, path: str, body: dict | None = None) -> tuple[int, dict]:
        status, _, content = self.request(path, None if body is None else json.dumps(body).encode())
        return status, json.loads(content)

    def metrics(self) -> str:
        return self.request("/metrics")[2].decode()

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return self.process.returncode, err


@pytest.fixture
def serve():
    """serve(*args) -> a running Server; stopped (SIGTERM) at the end of the test."""
    servers = []

    def start(*args) -> Server:
        servers.append(Server(*args))
        return servers[-1]
    yield start
    for server in servers:
        server.stop()
