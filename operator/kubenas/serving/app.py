"""The V2 inference server: a FastAPI application over one ``ServedModel``.

Routes (Open Inference Protocol REST): ``GET /v2`` (server metadata),
``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}[/versions/{v}]``
(model metadata), ``.../ready``, ``POST .../infer``; ``GET /metrics`` (Prometheus).
Every error is ``{"error": "..."}`` with a 4xx status for what the client sent (400 bad
tensor, 404 unknown model or path, 405 wrong method, 413 too large), 503 while not
ready, 500 only when the model itself fails.
"""
from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import metadata as dist_metadata

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException

from .batching import Batcher
from .model import ServedModel
from .protocol import HEADER_LENGTH, InferenceError, decode, encode

SERVER_NAME = "kubenas"
EXTENSIONS = ["binary_tensor_data"]  # Triton's binary tensor extension (tritonclient's default)
LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class Limits:
    max_batch_size: int = 32         # rows run through the model at once (1: no batching)
    max_batch_wait_ms: float = 0.0   # how long the oldest request waits for others
    max_body_bytes: int = 32 << 20   # larger request bodies get 413
    max_elements: int = 8 << 20      # larger input tensors get 413


class Metrics:
    """The server's Prometheus series (their own registry: one per application)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("kubenas_serving_requests", "Inference requests by model and HTTP status code",
                                ["model", "code"], registry=self.registry)
        self.latency = Histogram("kubenas_serving_request_duration_seconds",
                                 "Inference request latency, body read to response built", ["model"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.model = Histogram("kubenas_serving_model_duration_seconds", "Time of one model run (one batch)",
                               ["model"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("kubenas_serving_batch_size", "Rows per model run (dynamic batching)", ["model"],
                               buckets=BATCH_BUCKETS, registry=self.registry)
        self.depth = Gauge("kubenas_serving_queue_depth", "Requests waiting for a batch", ["model"],
                           registry=self.registry)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _version() -> str:
    try:
        return dist_metadata.version("kubenas")
    except dist_metadata.PackageNotFoundError:
        return "0"


def create_app(model: ServedModel, limits: Limits = Limits()) -> FastAPI:
    metrics = Metrics()
    signature = model.signature
    state = {"ready": False}

    model_seconds = metrics.model.labels(model.name)

    def run(array):  # in the batcher's worker thread
        start = time.perf_counter()
        raw = model.run(array)
        model_seconds.observe(time.perf_counter() - start)
        return signature.outputs_of(raw)

    batcher = Batcher(run, max_batch_size=limits.max_batch_size, max_wait=limits.max_batch_wait_ms / 1000,
                      on_batch=metrics.batch.labels(model.name).observe,
                      on_depth=metrics.depth.labels(model.name).set)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        state["ready"] = True
        try:
            yield
        finally:  # uvicorn has answered the requests in flight (SIGTERM: graceful shutdown)
            state["ready"] = False
            await batcher.stop()

    app = FastAPI(title="kubenas serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics, app.state.batcher, app.state.model = metrics, batcher, model

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):  # unknown path, wrong method
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        elif exc.status_code == 404:
            detail = f"no route {request.url.path}: the server speaks the Open Inference Protocol (/v2/...)"
        return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    def unknown(name: str, version: str | None) -> JSONResponse | None:
        if name != model.name:
            return _error(404, f"model {name!r} is not served here; this server serves {model.name!r}")
        if version is not None and version != model.version:
            return _error(404, f"model {name!r} has no version {version!r}; it has {model.version!r}")
        return None

    @app.get("/v2")
    async def server_metadata():
        return {"name": SERVER_NAME, "version": _version(), "extensions": EXTENSIONS}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    def model_metadata(name: str, version: str | None = None):
        return unknown(name, version) or {
            "name": model.name, "versions": [model.version], "platform": model.platform,
            "inputs": [signature.input.as_v2()], "outputs": [o.as_v2() for o in signature.outputs],
            "parameters": signature.parameters}

    def model_ready(name: str, version: str | None = None):
        return unknown(name, version) or JSONResponse({"name": model.name, "ready": state["ready"]},
                                                      status_code=200 if state["ready"] else 503)

    app.get("/v2/models/{name}")(model_metadata)
    app.get("/v2/models/{name}/versions/{version}")(model_metadata)
    app.get("/v2/models/{name}/ready")(model_ready)
    app.get("/v2/models/{name}/versions/{version}/ready")(model_ready)

    async def infer(name: str, request: Request, version: str | None = None):
        start = time.perf_counter()
        label = model.name if name == model.name else "unknown"
        response = unknown(name, version) or await _infer(request)
        metrics.requests.labels(label, str(response.status_code)).inc()
        if response.status_code == 200:
            metrics.latency.labels(model.name).observe(time.perf_counter() - start)
        return response

    async def _infer(request: Request) -> Response:
        if not state["ready"]:
            return _error(503, f"model {model.name!r} is not ready (the server is shutting down)")
        try:
            body = await _read_body(request, limits.max_body_bytes)
            decoded = decode(body, request.headers.get(HEADER_LENGTH), signature, limits.max_elements)
        except InferenceError as err:
            return _error(err.status, err.message)
        try:
            tensors = await batcher.submit(decoded.array)
        except Exception as err:  # noqa: BLE001 - the model failed on input that passed the checks
            return _error(500, f"model {model.name!r} failed: {type(err).__name__}: {err}")
        content, header_length = encode(model.name, model.version, decoded, tensors)
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

    app.post("/v2/models/{name}/infer")(infer)
    app.post("/v2/models/{name}/versions/{version}/infer")(infer)

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past ``limit`` bytes (by Content-Length before reading,
    else while streaming a chunked body)."""
    declared = request.headers.get("content-length")
    too_large = f"the request body is larger than this server's limit of {limit} bytes (--max-body-bytes); " \
                "send smaller batches"
    if declared is not None:
        try:
            if int(declared) > limit:
                raise InferenceError(413, too_large.replace("larger", f"{int(declared)} bytes, larger"))
        except ValueError:
            raise InferenceError(400, f"Content-Length {declared!r} is not a number") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InferenceError(413, too_large)
        chunks.append(chunk)
    return b"".join(chunks)
