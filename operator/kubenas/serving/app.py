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


class _Server:
    """The routes' handlers over one model: its signature, limits, metrics and batcher."""

    def __init__(self, model: ServedModel, limits: Limits):
        self.model, self.signature, self.limits = model, model.signature, limits
        self.metrics = Metrics()
        self.ready = False      # the model is loaded and the batcher runs: inference is answered
        self.draining = False   # SIGTERM with a drain period: still answering, but no longer ready
        self._model_seconds = self.metrics.model.labels(model.name)
        self._latency = self.metrics.latency.labels(model.name)
        self._answered: dict[tuple[str, int], Counter] = {}  # (model label, status) -> its bound counter
        self.batcher = Batcher(self._run, max_batch_size=limits.max_batch_size,
                               max_wait=limits.max_batch_wait_ms / 1000,
                               on_batch=self.metrics.batch.labels(model.name).observe,
                               on_depth=self.metrics.depth.labels(model.name).set)

    def _run(self, array):  # in the batcher (the event loop or its worker thread)
        start = time.perf_counter()
        raw = self.model.run(array)
        self._model_seconds.observe(time.perf_counter() - start)
        return self.signature.outputs_of(raw)

    @asynccontextmanager
    async def lifespan(self, app):
        self.batcher.start()
        self.ready = True
        try:
            yield
        finally:  # uvicorn has answered the requests in flight (SIGTERM: graceful shutdown)
            self.ready = False
            await self.batcher.stop()

    def unknown(self, name: str, version: str | None) -> JSONResponse | None:
        model = self.model
        if name != model.name:
            return _error(404, f"model {name!r} is not served here; this server serves {model.name!r}")
        if version is not None and version != model.version:
            return _error(404, f"model {name!r} has no version {version!r}; it has {model.version!r}")
        return None

    def drain(self) -> None:
        """Report not ready (the readiness probe fails: Kubernetes takes the pod out of its
        Service) while still answering inference requests."""
        self.draining = True

    @property
    def accepting(self) -> bool:
        return self.ready and not self.draining

    async def health_ready(self):
        return JSONResponse({"ready": self.accepting}, status_code=200 if self.accepting else 503)

    def model_metadata(self, name: str, version: str | None = None):
        model, signature = self.model, self.signature
        return self.unknown(name, version) or {
            "name": model.name, "versions": [model.version], "platform": model.platform,
            "inputs": [signature.input.as_v2()], "outputs": [o.as_v2() for o in signature.outputs],
            "parameters": signature.parameters}

    def model_ready(self, name: str, version: str | None = None):
        return self.unknown(name, version) or JSONResponse({"name": self.model.name, "ready": self.accepting},
                                                           status_code=200 if self.accepting else 503)

    async def infer(self, request: Request) -> Response:
        """POST .../infer, a plain Starlette endpoint (no FastAPI parameter solving on the
        hot path)."""
        start = time.perf_counter()
        name, version = request.path_params["name"], request.path_params.get("version")
        response = self.unknown(name, version) or await self._infer(request)
        status = response.status_code
        key = (self.model.name if name == self.model.name else "unknown", status)
        counter = self._answered.get(key)
        if counter is None:
            counter = self._answered[key] = self.metrics.requests.labels(key[0], str(status))
        counter.inc()
        if status == 200:
            self._latency.observe(time.perf_counter() - start)
        return response

    async def _infer(self, request: Request) -> Response:
        model = self.model
        if not self.ready:
            return _error(503, f"model {model.name!r} is not ready (the server is shutting down)")
        try:
            body = await _read_body(request, self.limits.max_body_bytes)
            decoded = decode(body, request.headers.get(HEADER_LENGTH), self.signature, self.limits.max_elements)
        except InferenceError as err:
            return _error(err.status, err.message)
        try:
            tensors = await self.batcher.submit(decoded.array)
        except Exception as err:  # noqa: BLE001 - the model failed on input that passed the checks
            return _error(500, f"model {model.name!r} failed: {type(err).__name__}: {err}")
        content, header_length = encode(model.name, model.version, decoded, tensors)
        if header_length is None:
            return Response(content, media_type="application/json")
        return Response(content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)})

    async def prometheus(self):
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _http_error(request: Request, exc: HTTPException):  # unknown path, wrong method
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    elif exc.status_code == 404:
        detail = f"no route {request.url.path}: the server speaks the Open Inference Protocol (/v2/...)"
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _server_metadata():
    return {"name": SERVER_NAME, "version": _version(), "extensions": EXTENSIONS}


async def _live():
    return {"live": True}


def create_app(model: ServedModel, limits: Limits = Limits()) -> FastAPI:
    server = _Server(model, limits)
    app = FastAPI(title="kubenas serve", lifespan=server.lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics, app.state.batcher, app.state.model = server.metrics, server.batcher, model
    app.state.drain = server.drain
    app.add_exception_handler(HTTPException, _http_error)
    app.get("/v2")(_server_metadata)
    app.get("/v2/health/live")(_live)
    app.get("/v2/health/ready")(server.health_ready)
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.get(prefix)(server.model_metadata)
        app.get(prefix + "/ready")(server.model_ready)
        app.add_route(prefix + "/infer", server.infer, methods=["POST"])
    app.get("/metrics")(server.prometheus)
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
