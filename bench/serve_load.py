#!/usr/bin/env python
"""Load test of ``kubenas serve`` on the digits model: requests/s and p50/p99 latency at
several concurrencies, with dynamic batching (--max-batch-size 32) and without it
(--max-batch-size 1), against onnxruntime called in-process on the same batches.

Each request is one 1x8x8 digits test image as a V2 JSON infer request, sent by an
aiohttp client on the same machine, in processes of its own (``--client-processes``;
``concurrency`` clients spread over them, each sending its next request when the
previous answer arrives), for ``--seconds`` after a warm-up. Before the server is
started, the same client loads a trivial HTTP endpoint (a fixed answer, no framework) at
each concurrency: ``client_ceiling_rps``, the most the client can send on this machine,
says whether the client or the server is the bottleneck. The
in-process figure runs the same ONNX file with onnxruntime on batches of the mean size
the server formed in that phase (read from its kubenas_serving_batch_size histogram), so
``overhead ratio`` = in-process requests/s / served requests/s. The server's own overhead
per request at concurrency 1 is its request time (body read to response built,
kubenas_serving_request_duration_seconds) minus its model time
(kubenas_serving_model_duration_seconds); the client-seen overhead adds HTTP, the
loopback and the Python client.

    .venv/bin/python bench/serve_load.py                       # trains a digits model first (about 30 s)
    .venv/bin/python bench/serve_load.py --run-dir runs/digits-serve --seconds 8
    .venv/bin/python bench/serve_load.py --workload cifar      # a CIFAR-shaped model, binary tensors

Workloads:
  digits  the digits model (1x8x8; about 15 us per image in onnxruntime): what the HTTP
          and JSON path costs, since the model costs almost nothing; JSON requests.
  cifar   an untrained 3x32x32 cell network (4 nodes, 16 channels, 2 stages; weights do not
          change the cost), exported as the trainer exports; requests in the binary tensor
          extension (tritonclient's default), so the model is what costs.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL = "digits-serve"
EXPERIMENT = {  # one convolutional chain, exported as ONNX (tests/serving/conftest.py trains the same)
    "apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": MODEL},
    "spec": {"objective": {"metric": "accuracy", "goal": "maximize"},
             "searchSpace": {"type": "chain", "chain": {"layers": 2, "operations": ["conv"], "filters": [16],
                                                        "kernelSizes": [3], "strides": [1]}},
             "strategy": {"type": "random", "seed": 3},
             "budget": {"maxTrials": 1, "parallelTrials": 1, "maxFailedTrials": 1, "trialTimeoutSeconds": 300},
             "trial": {"dataset": {"name": "digits"},
                       "training": {"epochs": 3, "batchSize": 32, "optimizer": "sgd", "momentum": 0.9},
                       "export": {"formats": ["torchscript", "onnx"], "opset": 17}}}}


def train(where: Path) -> Path:
    (where / "exp.yaml").write_text(yaml.safe_dump(EXPERIMENT))
    subprocess.run([sys.executable, "-m", "kubenas.cli", "run", str(where / "exp.yaml"), "--run-dir",
                    str(where / "run"), "--no-progress"], check=True, cwd=ROOT, capture_output=True)
    return where / "run"


CIFAR_CELL = {"type": "cell", "nodes": 4, "channels": 16, "cellsPerStage": 1, "stages": 2,
              "edges": [["conv_3x3"], ["conv_3x3", "skip_connect"], ["conv_3x3", "avg_pool_3x3", "skip_connect"]]}


def cifar_model(where: Path) -> Path:
    import torch

    from kubenas_trainer.training.export import export_onnx
    from kubenas_trainer.models import build_model

    torch.manual_seed(0)
    model = build_model(CIFAR_CELL, (3, 32, 32), 10).eval()
    export_onnx(model, where / "model.onnx", (3, 32, 32), [0.5] * 3, [0.25] * 3, opset=17,
                metadata={"task": "image-classification", "trial": "cifar-cell", "numClasses": 10,
                          "classes": [str(i) for i in range(10)]})
    return where


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    found = {}
    for name in ("kubenas_serving_batch_size", "kubenas_serving_request_duration_seconds",
                 "kubenas_serving_model_duration_seconds"):
        for part in ("sum", "count"):
            m = re.search(rf"^{name}_{part}{{[^}}]*}} (\S+)$", text, re.M)
            found[f"{name}_{part}"] = float(m.group(1)) if m else 0.0
    return found


async def _load(url: str, body: bytes, headers: dict, concurrency: int, seconds: float) -> list[float]:
    import aiohttp

    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def client():
            while time.perf_counter() < stop:
                start = time.perf_counter()
                async with session.post(f"{url}/v2/models/{MODEL}/infer", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"status {response.status}")
                latencies.append(time.perf_counter() - start)
        await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies


def _load_process(args) -> list[float]:
    import uvloop

    uvloop.install()
    return asyncio.run(_load(*args))


def load(url: str, body: bytes, headers: dict, concurrency: int, seconds: float, processes: int) -> list[float]:
    """Every answered request's latency: ``concurrency`` clients spread over ``processes``
    client processes (none of them the server's), each sending its next request when the
    previous answer arrives."""
    shares = [concurrency // processes + (i < concurrency % processes) for i in range(processes)]
    shares = [n for n in shares if n]
    with multiprocessing.get_context("spawn").Pool(len(shares)) as pool:
        parts = pool.map(_load_process, [(url, body, headers, n, seconds) for n in shares])
    return [latency for part in parts for latency in part]


TRIVIAL = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def trivial_server(port: int) -> None:
    """An HTTP endpoint that costs next to nothing: a fixed answer to every request (one
    request per read of a keep-alive connection, as the load client sends them). What the
    load client reaches against it is the client's own ceiling on this machine."""
    import uvloop

    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            self.buffer += data
            while True:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                length = re.search(rb"(?i)content-length: *(\d+)", self.buffer[:end])
                total = end + 4 + (int(length.group(1)) if length else 0)
                if len(self.buffer) < total:
                    return
                self.buffer = self.buffer[total:]
                self.transport.write(TRIVIAL)

    async def serve():
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.install()
    asyncio.run(serve())


def client_ceiling(body: bytes, headers: dict, concurrency: int, seconds: float, processes: int) -> float:
    """Requests/s of the load client against the trivial endpoint (in its own process)."""
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=trivial_server, args=(port,), daemon=True)
    server.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the trivial endpoint did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        load(url, body, headers, concurrency, 0.5, processes)
        start = time.perf_counter()
        latencies = load(url, body, headers, concurrency, seconds, processes)
        return len(latencies) / (time.perf_counter() - start)
    finally:
        server.terminate()
        server.join(10)


def in_process(path: Path, x: np.ndarray, batch: int, threads: int, seconds: float) -> tuple[float, float]:
    """(requests/s, seconds per call) of onnxruntime on batches of ``batch`` images."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = np.ascontiguousarray(np.resize(x, (batch, *x.shape[1:])))
    for _ in range(50):
        session.run(["logits"], {"images": feed})
    calls, start = 0, time.perf_counter()
    per_call = []
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        session.run(["logits"], {"images": feed})
        per_call.append(time.perf_counter() - t)
        calls += 1
    elapsed = time.perf_counter() - start
    return calls * batch / elapsed, statistics.median(per_call)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


@contextlib.contextmanager
def serving(target: list[str], batch_size: int, args):
    """``kubenas serve`` of ``target`` on a free port until the block ends: its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "kubenas.cli", "serve", *target, "--port", str(port),
                               "--threads", str(args.threads), "--max-batch-size", str(batch_size),
                               "--max-batch-wait-ms", str(args.max_batch_wait_ms), "--log-level", "warning"],
                              cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/health/ready", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("kubenas serve did not start")
                time.sleep(0.2)
        yield url
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)


def phase(url: str, body: bytes, headers: dict, concurrency: int, args, onnx_file: Path, x: np.ndarray) -> dict:
    """One measured phase at ``concurrency`` (after a warm-up), with the server's metrics
    over it and onnxruntime in-process on batches of the mean size the server formed."""
    load(url, body, headers, concurrency, args.warmup, args.client_processes)
    before = scrape(url)
    start = time.perf_counter()
    latencies = load(url, body, headers, concurrency, args.seconds, args.client_processes)
    elapsed = time.perf_counter() - start
    after = scrape(url)

    def mean(name: str) -> float:
        return (after[f"{name}_sum"] - before[f"{name}_sum"]) / max(after[f"{name}_count"] - before[f"{name}_count"], 1)

    mean_batch = mean("kubenas_serving_batch_size")
    request_s = mean("kubenas_serving_request_duration_seconds")
    model_s = mean("kubenas_serving_model_duration_seconds")
    ref_rps, ref_call = in_process(onnx_file, x, max(1, round(mean_batch)), args.threads, min(args.seconds, 3))
    rps = len(latencies) / elapsed
    return {"requests": len(latencies), "rps": round(rps, 1), "p50_ms": round(pct(latencies, 50), 3),
            "p99_ms": round(pct(latencies, 99), 3), "mean_batch": round(mean_batch, 2),
            "in_process_rps": round(ref_rps, 1), "in_process_call_ms": round(ref_call * 1000, 3),
            "overhead_ratio": round(ref_rps / rps, 2),
            "server_request_ms": round(request_s * 1000, 3), "server_model_ms": round(model_s * 1000, 3),
            "server_overhead_ms": round((request_s - model_s / max(mean_batch, 1)) * 1000, 3),
            "client_seen_overhead_ms": round(pct(latencies, 50) - ref_call * 1000, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", choices=("digits", "cifar"), default="digits")
    parser.add_argument("--run-dir", help="a digits run with best_model.onnx (default: train one)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads, both sides")
    parser.add_argument("--max-batch-wait-ms", type=float, default=0.0)
    parser.add_argument("--client-processes", type=int, default=1,
                        help="load client processes (the concurrency is spread over them)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    from kubenas_trainer.data import load_dataset

    tmp = Path(tempfile.mkdtemp(prefix="kubenas-serve-load-"))
    headers = {"Content-Type": "application/json"}
    if args.workload == "digits":
        run_dir = Path(args.run_dir) if args.run_dir else train(tmp)
        target, onnx_file = [str(run_dir)], run_dir / "best_model.onnx"
        data = load_dataset({"name": "digits"})
        x = (data.test.x.float() * data.scale).numpy().astype(np.float32)
        body = json.dumps({"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                       "data": x[0].reshape(-1).tolist()}]}).encode()
    else:
        folder = cifar_model(tmp)
        target, onnx_file = ["--model-dir", str(folder), "--model-name", MODEL], folder / "model.onnx"
        x = np.random.default_rng(0).random((64, 3, 32, 32), dtype=np.float32)
        header = json.dumps({"inputs": [{"name": "images", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                         "parameters": {"binary_data_size": x[0].nbytes}}]}).encode()
        body = header + x[0].tobytes()
        headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(header))}
    rows = []
    load_before = os.getloadavg()
    ceiling = {c: round(client_ceiling(body, headers, c, min(args.seconds, 3), args.client_processes), 1)
               for c in args.concurrency}
    print(json.dumps({"client_ceiling_rps": ceiling}), flush=True)
    for mode, batch_size in (("batch size 1", 1), ("dynamic batching", 32)):
        with serving(target, batch_size, args) as url:
            for concurrency in args.concurrency:
                rows.append({"mode": mode, "concurrency": concurrency,
                             **phase(url, body, headers, concurrency, args, onnx_file, x),
                             "client_ceiling_rps": ceiling[concurrency]})
                print(json.dumps(rows[-1]), flush=True)
    summary = {"workload": args.workload, "load_before": [round(v, 2) for v in load_before],
               "load_after": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count(), "threads": args.threads,
               "client_processes": args.client_processes, "rows": rows}
    rps = {(r["mode"], r["concurrency"]): r["rps"] for r in rows}
    top = max(args.concurrency)
    if ("batch size 1", top) in rps:
        summary["batching_speedup_at_max_concurrency"] = round(rps[("dynamic batching", top)] /
                                                               rps[("batch size 1", top)], 2)
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
