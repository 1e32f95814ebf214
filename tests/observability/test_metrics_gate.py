"""The metrics gate (kubenas.cluster.metrics_server): the review cache, the WSGI gate's
answers, and HTTPS with a self-signed certificate. What the API server answers to real
tokens is proven on the real tier (tests/e2e/test_metrics_auth.py)."""
from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import pytest

from kubenas.cluster.metrics_server import ReviewCache, Verdict, bearer_token, protect, serve


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_keeps_allowed_verdicts_a_minute_and_refusals_ten_seconds():
    clock = Clock()
    cache = ReviewCache(size=8, allowed_seconds=60, refused_seconds=10, clock=clock)
    cache.put("good", Verdict(200, "prometheus"))
    cache.put("bad", Verdict(403, "alice"))
    clock.now = 9.9
    assert cache.get("good") == Verdict(200, "prometheus") and cache.get("bad") == Verdict(403, "alice")
    clock.now = 10.0
    assert cache.get("bad") is None  # a right granted since is seen within 10 s
    clock.now = 59.9
    assert cache.get("good") is not None
    clock.now = 60.0
    assert cache.get("good") is None  # a right revoked since is seen within a minute
    assert len(cache) == 0


def test_cache_is_bounded_and_evicts_the_least_recently_used():
    cache = ReviewCache(size=3, clock=Clock())
    for i in range(3):
        cache.put(f"t{i}", Verdict(200, f"u{i}"))
    assert cache.get("t0") is not None  # t0 used: t1 is now the oldest
    for i in range(3, 100):  # a flood of distinct tokens
        cache.put(f"t{i}", Verdict(401))
    assert len(cache) == 3
    assert cache.get("t0") is None and cache.get("t1") is None and cache.get("t99") == Verdict(401)


def test_cache_keeps_no_token():
    cache = ReviewCache(clock=Clock())
    cache.put("secret-token-value", Verdict(200, "prometheus"))
    assert all(b"secret-token-value" not in key for key in cache._entries)


@pytest.mark.parametrize("header, token", [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None),
                                           ("Bearer", None), ("", None), (None, None)])
def test_bearer_token(header, token):
    assert bearer_token(header) == token


def _call(app, path="/metrics", header=None):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {"PATH_INFO": path}
    if header is not None:
        environ["HTTP_AUTHORIZATION"] = header
    body = b"".join(app(environ, start_response)).decode()
    return int(seen["status"].split()[0]), seen["headers"], body


def metrics_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"kubenas_experiments 1\n"]


def test_gate_answers_401_403_200_and_reviews_a_token_once_while_cached():
    calls = []

    def review(token):
        calls.append(token)
        return {"reader": Verdict(200, "prom"), "alice": Verdict(403, "alice", "no rule")}.get(
            token, Verdict(401, why="the token is not valid"))

    gate = protect(metrics_app, review, ReviewCache(clock=Clock()))
    code, headers, body = _call(gate)
    assert code == 401 and headers["WWW-Authenticate"].startswith("Bearer") and "bearer token" in body
    assert calls == []  # no token: no API call
    code, _, body = _call(gate, header="Bearer forged")
    assert code == 401 and "the token is not valid" in body
    code, _, body = _call(gate, header="Bearer alice")
    assert code == 403 and "alice may not get /metrics" in body and "no rule" in body
    for _ in range(4):  # Prometheus every 15 s: one review, then the cache
        code, _, body = _call(gate, header="Bearer reader")
        assert code == 200 and body == "kubenas_experiments 1\n"
    assert calls == ["forged", "alice", "reader"]
    assert _call(gate, path="/", header="Bearer reader")[0] == 404


def test_gate_answers_503_and_caches_nothing_when_the_api_server_cannot_review():
    calls = []

    def review(token):
        calls.append(token)
        if len(calls) == 1:
            raise ConnectionError("API server away")
        return Verdict(200, "prom")

    gate = protect(metrics_app, review, ReviewCache(clock=Clock()))
    assert _call(gate, header="Bearer reader")[0] == 503
    assert _call(gate, header="Bearer reader")[0] == 200
    assert len(calls) == 2


def test_served_over_https_with_a_self_signed_certificate(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    server = serve(metrics_app, 0, "127.0.0.1", lambda token: Verdict(200 if token == "ok" else 403, "x"),
                   common_name="kubenas-test")
    try:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # insecureSkipVerify, as Prometheus
        url = f"https://127.0.0.1:{server.server_port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, context=context, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": "Bearer ok"})
        assert urllib.request.urlopen(request, context=context, timeout=10).read() == b"kubenas_experiments 1\n"
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP is not served
            urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()


def test_a_certificate_that_cannot_be_made_is_a_clear_error(tmp_path, monkeypatch):
    from kubenas.cluster.metrics_server import ServingError, serving_certificate

    monkeypatch.setenv("KUBENAS_METRICS_CERT_DIR", str(tmp_path))  # no tls.crt there
    with pytest.raises(ServingError, match="must hold tls.crt and tls.key"):
        serving_certificate("kubenas-test")
    monkeypatch.delenv("KUBENAS_METRICS_CERT_DIR")
    monkeypatch.setenv("PATH", str(tmp_path))  # no openssl
    with pytest.raises(ServingError, match="no openssl on PATH"):
        serving_certificate("kubenas-test")


def test_a_mounted_certificate_is_used(tmp_path, monkeypatch):
    from kubenas.cluster.metrics_server import serving_certificate

    cert, key = serving_certificate("kubenas-test", str(tmp_path))  # made once, as cert-manager would
    monkeypatch.setenv("KUBENAS_METRICS_CERT_DIR", str(tmp_path))
    assert serving_certificate("other") == (cert, key)
