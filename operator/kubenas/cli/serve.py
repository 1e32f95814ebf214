"""``kubenas serve RUN_DIR | EXPERIMENT``: serve the best model (or ``--trial NAME``'s)
over the Open Inference Protocol (V2 REST) with uvicorn (docs/serving.md).

In a cluster, a Deployment runs ``kubenas serve --model-dir /var/lib/kubenas/model --host 0.0.0.0``
from the trainer image with the model's folder mounted read-only; SIGTERM drains the
requests in flight (uvicorn's graceful shutdown) before the process exits.
"""
from __future__ import annotations

import signal
import tempfile
import threading
from contextlib import nullcontext
from pathlib import Path

from rich.console import Console
from rich.text import Text

from .arguments import cluster_command
from .sources import CliError

DEFAULT_PORT = 8080  # KServe's and the V2 servers' HTTP port


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from kubenas.serving.app import Limits, create_app
        from kubenas.serving.model import load, locate
    except ImportError as err:
        raise CliError(f"kubenas serve needs the serve extra ({err.name} is missing): pip install 'kubenas[serve]'") \
            from None
    from kubenas.artifacts.model import ModelUnavailable

    for flag, value, least in (("--max-batch-size", args.max_batch_size, 1),
                               ("--max-body-bytes", args.max_body_bytes, 1), ("--max-elements", args.max_elements, 1),
                               ("--max-batch-wait-ms", args.max_batch_wait_ms, 0), ("--threads", args.threads, 0),
                               ("--drain-seconds", args.drain_seconds, 0)):
        if value < least:
            raise CliError(f"{flag} {value}: must be at least {least}")
    for flag, value in (("--model-dir", args.model_dir), ("--model-url", args.model_url)):
        if value and (args.target or args.trial or (args.model_dir and args.model_url)):
            raise CliError(f"{flag} names the model itself: pass it without a run directory, experiment, --trial "
                           "or the other of --model-dir and --model-url")
    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port}: pick a port from 1 to 65535")
    # A cluster experiment's model (or --model-url's) is copied into a temporary folder; the runtime holds
    # it in memory once loaded, so the folder goes before serving starts. Nothing is written
    # otherwise (a pod's read-only root filesystem, the model mounted read-only).
    fetched = bool(args.model_url) or (not args.model_dir and args.target is not None
                                       and not Path(args.target).is_dir())
    with tempfile.TemporaryDirectory(prefix="kubenas-serve-") if fetched else nullcontext() as download:
        try:
            path, default_name = locate(args.target, trial=args.trial, model_dir=args.model_dir, fmt=args.format,
                                        namespace=args.namespace, kubeconfig=args.kubeconfig, context=args.context,
                                        volume_dir=args.volume_dir, model_url=args.model_url,
                                        download_dir=download)
            model = load(path, args.model_name or default_name, threads=args.threads)
        except (ModelUnavailable, ValueError) as err:
            raise CliError(str(err)) from None
    limits = Limits(max_batch_size=args.max_batch_size, max_batch_wait_ms=args.max_batch_wait_ms,
                    max_body_bytes=args.max_body_bytes, max_elements=args.max_elements)
    console = Console(stderr=True, soft_wrap=True)
    spec = model.signature.input
    console.print(Text(f"kubenas: serving {path} as model {model.name!r} version {model.version!r} "
                       f"({model.platform}; input {spec.name} {spec.datatype} {list(spec.shape)}) on "
                       f"http://{args.host}:{args.port}/v2/models/{model.name}"), highlight=False)
    app = create_app(model, limits)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            access_log=args.access_log, timeout_graceful_shutdown=args.graceful_timeout)
    server = _draining_server(uvicorn.Server)(config, drain=app.state.drain, drain_seconds=args.drain_seconds)
    # SIGTERM: with --drain-seconds, not ready but still answering for that long; then
    # uvicorn stops accepting, finishes the requests in flight (up to --graceful-timeout),
    # shuts the application down, and raises the signal again with the handlers it found:
    # these, so a drained shutdown exits 0 rather than by the signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _drained)
    server.run()
    return 0 if server.started else 1


def _drained(signum, frame) -> None:
    """The handler uvicorn's re-raised signal finds once the server has shut down."""


def _draining_server(base):
    """uvicorn's Server whose SIGTERM first drains: ``drain()`` turns the readiness probe to
    503 while requests are still answered, and uvicorn's graceful shutdown starts
    ``drain_seconds`` later: by then Kubernetes has taken the pod out of its Service's
    endpoints (after a failed readiness probe, or at once on deletion), so no client is
    sent to a server that has stopped accepting. A SIGTERM during the drain changes nothing
    (a pod's init may pass on the one its process group got); SIGINT (Ctrl-C) shuts down
    at once."""

    class DrainingServer(base):
        def __init__(self, config, *, drain, drain_seconds: float):
            super().__init__(config)
            self._drain, self._drain_seconds, self._draining = drain, drain_seconds, None

        def handle_exit(self, sig, frame) -> None:
            if sig != signal.SIGTERM or not self._drain_seconds:
                return super().handle_exit(sig, frame)
            if self._draining is not None:
                return None
            self._drain()
            self._draining = threading.Timer(self._drain_seconds, super().handle_exit, (sig, None))
            self._draining.daemon = True
            self._draining.start()

    return DrainingServer


def add_commands(sub) -> None:
    from kubenas.contract.settings import EXPORT_FORMATS

    with cluster_command(sub, "serve", cmd_serve,
                         help="serve the best model (or a trial's) over the Open Inference Protocol (V2)",
                         description="Serve a run's best model, a trial's, or a model folder over HTTP with the Open "
                                     "Inference Protocol (KServe / Triton V2 REST): /v2/health/live, /v2/health/ready, "
                                     "/v2/models/NAME, /v2/models/NAME/infer; Prometheus metrics on /metrics. ONNX "
                                     "through onnxruntime when the trial exported it, TorchScript otherwise.") as p:
        p.add_argument("target", nargs="?", help="a local run directory (kubenas run --run-dir), or a NASExperiment on "
                                                 "the cluster (its best model, read from spec.artifacts)")
        p.add_argument("--trial", help="serve this trial's model instead of the best (a run directory's trials/NAME)")
        p.add_argument("--model-dir", help="serve the model in this folder (model.onnx or model.pt, e.g. a trial's "
                                           "artifacts mounted read-only) or this model file; no TARGET then")
        p.add_argument("--model-url", help="serve the model file at this object-store URL (s3://, gs://, az://; "
                                           "model.onnx or model.pt), read with this environment's credentials, e.g. "
                                           "AWS_ACCESS_KEY_ID and AWS_ENDPOINT_URL; no TARGET then")
        p.add_argument("--format", choices=EXPORT_FORMATS, help="which exported file (default: onnx when there, "
                                                                 "else torchscript)")
        p.add_argument("--model-name", help="the model's name in the URLs (default: the experiment's name)")
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 in a pod)")
        p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
        p.add_argument("--max-batch-size", type=int, default=32,
                       help="most rows run through the model at once; 1 turns dynamic batching off (default 32)")
        p.add_argument("--max-batch-wait-ms", type=float, default=0.0,
                       help="how long the oldest waiting request waits for others to batch with (default 0: batches "
                            "are the requests that arrived while the previous batch ran)")
        p.add_argument("--max-body-bytes", type=int, default=32 << 20,
                       help="larger request bodies get 413 (default 32 MiB)")
        p.add_argument("--max-elements", type=int, default=8 << 20,
                       help="larger input tensors (elements) get 413 (default 8 Mi)")
        p.add_argument("--threads", type=int, default=0, help="the runtime's intra-op threads (default 0: its own)")
        p.add_argument("--graceful-timeout", type=float, default=30.0,
                       help="seconds SIGTERM waits for requests in flight (default 30)")
        p.add_argument("--drain-seconds", type=float, default=0.0,
                       help="on SIGTERM, answer requests but report not ready (503 on /v2/health/ready) for this "
                            "long before shutting down, so a load balancer stops sending first (default 0; a "
                            "spec.deploy Deployment passes 5)")
        p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
        p.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs)")
        p.add_argument("--volume-dir", help="for a cluster experiment whose artifacts are on a PersistentVolumeClaim: "
                                            "the local folder where that claim is mounted")
