"""``/metrics`` the way Kubernetes components serve it: HTTPS, and only to a caller the
API server vouches for (docs/security.md, "Metrics").

What the operator and every controller pod serve names other tenants' experiments, so
each request must carry a bearer token, and the API server decides, as for
kube-rbac-proxy or controller-runtime's ``WithAuthenticationAndAuthorization``:

* **authentication**: is the token valid, and whose is it (401 when there is none or it
  is not valid);
* **authorization**: may that identity ``get`` what is asked for (403 otherwise). The
  operator asks about the non-resource URL ``/metrics`` (``nonResourceURLs: ["/metrics"]``
  in a ClusterRole, as for the API server's own metrics); a controller asks about the
  subresource ``nasexperiments/metrics`` of its own experiment, so that a token allowed to
  scrape controllers, which every controller pod receives, does not also read the
  operator's metrics, and a tenant can be given the metrics of its own namespace.

Two ways to ask, same answer:

* :class:`DelegatedReview` (the operator): a ``TokenReview``, then a
  ``SubjectAccessReview`` for the identity it returned. The asker needs ``create`` on
  both (cluster-wide rights, granted to the operator's ServiceAccount in deploy/rbac.yaml).
* :class:`SelfReview` (controllers): one ``SelfSubjectAccessReview`` sent with the
  caller's own token. The API server authenticates the token exactly as for a
  TokenReview (an invalid one answers 401) and authorizes it with the same authorizer;
  every authenticated identity may ask about itself. Controllers run in tenant
  namespaces under a ServiceAccount a RoleBinding grants: it cannot be given the
  cluster-scoped review rights, and should not be (they tell what anybody may do).

Verdicts are cached briefly (:class:`ReviewCache`: by the token's SHA-256, bounded,
allowed for a minute, refused for ten seconds), so a scrape every 15 s costs the API
server a review a minute, and a flood of requests with one bad token costs it one review
every ten seconds. Requests without a token cost nothing.

TLS: a certificate and key from ``KUBENAS_METRICS_CERT_DIR`` (``tls.crt``, ``tls.key``,
e.g. from cert-manager), else a self-signed one made at start (``openssl``, as
controller-runtime makes one in memory), which Prometheus accepts with
``insecureSkipVerify`` (the shipped ServiceMonitor and PodMonitor): the channel is
encrypted, so the bearer token is not readable on the pod network.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
CERT_DIR_ENV = "KUBENAS_METRICS_CERT_DIR"


class ServingError(RuntimeError):
    """The metrics endpoint cannot be served as configured (the message says how to fix it)."""


@dataclass(frozen=True)
class Verdict:
    """What the API server said about a token: 200 allowed, 401 not authenticated, 403
    not authorized (``who``: the identity, when known; ``why``: the reviewer's reason)."""

    code: int
    who: str = ""
    why: str = ""


def non_resource(path: str = METRICS_PATH, verb: str = "get") -> dict:
    """The SubjectAccessReview attributes for a non-resource URL (the operator's)."""
    return {"nonResourceAttributes": {"path": path, "verb": verb}}


def experiment_metrics(namespace: str, experiment: str) -> dict:
    """The SubjectAccessReview attributes for one experiment's controller metrics:
    ``get nasexperiments/metrics`` on that experiment."""
    return {"resourceAttributes": {"group": "kubenas.io", "resource": "nasexperiments", "subresource": "metrics",
                                   "namespace": namespace, "name": experiment, "verb": "get"}}


# ----------------------------------------------------------------------------- reviews


class DelegatedReview:
    """TokenReview + SubjectAccessReview, with the asker's own rights."""

    def __init__(self, api: k8s.ApiClient, attributes: dict, timeout: float = 10.0):
        self.authn = k8s.AuthenticationV1Api(api)
        self.authz = k8s.AuthorizationV1Api(api)
        self.attributes = attributes
        self.timeout = timeout

    def __call__(self, token: str) -> Verdict:
        review = self.authn.create_token_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
            _request_timeout=self.timeout)
        status = review.status
        if not status or not status.authenticated or not status.user:
            return Verdict(401, why=(status.error if status else "") or "the token is not valid")
        user = status.user
        spec = {"user": user.username, "groups": user.groups or [], "uid": user.uid or "",
                "extra": user.extra or {}, **self.attributes}
        answer = self.authz.create_subject_access_review(
            {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec},
            _request_timeout=self.timeout)
        allowed = bool(answer.status and answer.status.allowed and not answer.status.denied)
        return Verdict(200 if allowed else 403, user.username or "", (answer.status.reason if answer.status else "")
                       or "")


class SelfReview:
    """One SelfSubjectAccessReview made with the caller's token (no rights of our own)."""

    def __init__(self, configuration: k8s.Configuration, attributes: dict, timeout: float = 10.0):
        self.configuration = configuration
        self.attributes = attributes
        self.timeout = timeout

    def __call__(self, token: str) -> Verdict:
        conf = k8s.Configuration()
        conf.host, conf.verify_ssl = self.configuration.host, self.configuration.verify_ssl
        conf.ssl_ca_cert = self.configuration.ssl_ca_cert
        conf.api_key = {"authorization": f"Bearer {token}"}
        api = k8s.ApiClient(conf)
        api.user_agent = "kubenas-controller/metrics-review"
        try:
            answer = k8s.AuthorizationV1Api(api).create_self_subject_access_review(
                {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                 "spec": self.attributes}, _request_timeout=self.timeout)
        except ApiException as err:
            if err.status == 401:
                return Verdict(401, why="the token is not valid")
            raise
        finally:
            api.close()
        allowed = bool(answer.status and answer.status.allowed and not answer.status.denied)
        return Verdict(200 if allowed else 403, why=(answer.status.reason if answer.status else "") or "")


class ReviewCache:
    """Verdicts by token digest: at most ``size``, allowed ones for ``allowed_seconds``,
    refused ones for ``refused_seconds`` (a revoked right takes effect within a minute)."""

    def __init__(self, size: int = 256, allowed_seconds: float = 60.0, refused_seconds: float = 10.0,
                 clock=time.monotonic):
        self.size, self.allowed_seconds, self.refused_seconds = size, allowed_seconds, refused_seconds
        self.clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Verdict]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()  # the token itself is never kept

    def get(self, token: str) -> Verdict | None:
        key = self._key(token)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock() >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, token: str, verdict: Verdict) -> None:
        ttl = self.allowed_seconds if verdict.code == 200 else self.refused_seconds
        with self._lock:
            self._entries[self._key(token)] = (self.clock() + ttl, verdict)
            self._entries.move_to_end(self._key(token))
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


# ------------------------------------------------------------------------ the WSGI gate


def bearer_token(header: str | None) -> str | None:
    scheme, _, token = (header or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def protect(app, review, cache: ReviewCache | None = None):
    """A WSGI app that serves ``app`` at ``/metrics`` only to a caller ``review`` allows."""
    cache = cache if cache is not None else ReviewCache()

    def answer(start_response, code: int, text: str, extra=()):
        body = (text + "\n").encode()
        status = {401: "401 Unauthorized", 403: "403 Forbidden", 404: "404 Not Found",
                  503: "503 Service Unavailable"}[code]
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body))), *extra])
        return [body]

    def gate(environ, start_response):
        if environ.get("PATH_INFO") != METRICS_PATH:
            return answer(start_response, 404, f"only {METRICS_PATH} is served here")
        token = bearer_token(environ.get("HTTP_AUTHORIZATION"))
        if token is None:
            return answer(start_response, 401, "Unauthorized: send a bearer token (Authorization: Bearer ...)",
                          [("WWW-Authenticate", 'Bearer realm="kubenas metrics"')])
        verdict = cache.get(token)
        if verdict is None:
            try:
                verdict = review(token)
            except Exception as err:  # noqa: BLE001 - the API server is away: say so, cache nothing
                log.warning("cannot review a metrics request's token: %s", err)
                return answer(start_response, 503, "the API server cannot review the token now; try again")
            cache.put(token, verdict)
        if verdict.code == 401:
            return answer(start_response, 401, f"Unauthorized: {verdict.why}",
                          [("WWW-Authenticate", 'Bearer realm="kubenas metrics"')])
        if verdict.code != 200:
            return answer(start_response, 403, f"Forbidden: {verdict.who or 'the caller'} may not get "
                                               f"{METRICS_PATH} here ({verdict.why or 'no RBAC rule allows it'})")
        return app(environ, start_response)

    return gate


# --------------------------------------------------------------------------- serving


def serving_certificate(common_name: str, directory: str | None = None) -> tuple[str, str]:
    """(certificate, key) files: ``$KUBENAS_METRICS_CERT_DIR``'s ``tls.crt``/``tls.key``
    when set, else a new self-signed pair (P-256, a year) in a fresh private folder."""
    given = os.environ.get(CERT_DIR_ENV)
    if given:
        cert, key = os.path.join(given, "tls.crt"), os.path.join(given, "tls.key")
        if not (os.path.isfile(cert) and os.path.isfile(key)):
            raise ServingError(f"{CERT_DIR_ENV}={given} must hold tls.crt and tls.key (a kubernetes.io/tls Secret "
                             "mounted there); unset it to use a self-signed certificate")
        return cert, key
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServingError(f"cannot make the metrics endpoint's self-signed certificate: no openssl on PATH; mount a "
                         f"kubernetes.io/tls Secret and set {CERT_DIR_ENV} to its folder")
    folder = directory or tempfile.mkdtemp(prefix="kubenas-metrics-tls-")
    cert, key = os.path.join(folder, "tls.crt"), os.path.join(folder, "tls.key")
    done = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", key, "-out", cert, "-days", "365", "-subj", f"/CN={common_name}",
                           "-addext", f"subjectAltName=DNS:{common_name},DNS:localhost,IP:127.0.0.1"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=30)
    if done.returncode != 0:
        raise ServingError(f"openssl could not make the metrics endpoint's certificate: {done.stderr.strip()[-500:]}; "
                           f"mount a kubernetes.io/tls Secret and set {CERT_DIR_ENV} to its folder")
    os.chmod(key, 0o600)
    return cert, key


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):  # a failed handshake, a client gone: no traceback
        log.debug("metrics: a request from %s failed", client_address, exc_info=True)


class _Handler(WSGIRequestHandler):
    timeout = 15  # a client that sends nothing (or never finishes the TLS handshake) goes

    def log_message(self, fmt, *args):  # no line per scrape
        log.debug("metrics: " + fmt, *args)


def serve(app, port: int, addr: str, review, *, common_name: str, tls: bool = True,
          cache: ReviewCache | None = None):
    """Serve ``app`` (a WSGI app: prometheus_client's ``make_wsgi_app``) at
    ``https://addr:port/metrics`` behind ``review``, in a daemon thread; returns the
    server (``server_port``, ``shutdown()``). ``tls=False`` only for tests on loopback."""
    server = make_server(addr, port, protect(app, review, cache), server_class=_Server, handler_class=_Handler)
    if tls:
        cert, key = serving_certificate(common_name)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        # The handshake happens in the request's thread, not in the accepting one.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("serving Prometheus metrics on %s://%s:%d%s (bearer token, reviewed by the API server)",
             "https" if tls else "http", addr, server.server_port, METRICS_PATH)
    return server
