"""The cluster CLI with a kubeconfig that says ``insecure-skip-tls-verify: true``: silent,
as kubectl is (urllib3's InsecureRequestWarning used to come twice per request), and only
for that server. The server here is a stand-in that answers every GET with an empty
NASExperiment list over TLS with a self-signed certificate: what is tested is the
client's warnings, not the API server."""
from __future__ import annotations

import datetime
import json
import ssl
import subprocess
import sys
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from kubenas.cli.sources import connect


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-host")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class _EmptyLists(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps({"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperimentList", "metadata": {},
                           "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_server(tmp_path):
    cert_file, key_file = _self_signed(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EmptyLists)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert_file
    server.shutdown()
    server.server_close()


def _kubeconfig(tmp_path, server: str, **cluster) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    return str(path)


def test_get_with_insecure_skip_tls_verify_prints_no_insecure_request_warning(tmp_path, tls_server):
    server, _ = tls_server
    done = subprocess.run([sys.executable, "-m", "kubenas.cli", "get", "--kubeconfig",
                           _kubeconfig(tmp_path, server, **{"insecure-skip-tls-verify": True})],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "InsecureRequestWarning" not in done.stderr and "Unverified HTTPS" not in done.stderr, done.stderr


def test_only_the_server_the_kubeconfig_names_is_silenced(tmp_path, tls_server):
    import urllib3
    from urllib3.exceptions import InsecureRequestWarning

    server, cert_file = tls_server
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        connect(_kubeconfig(tmp_path, server, **{"insecure-skip-tls-verify": True}), None)
        pool = urllib3.PoolManager(cert_reqs="CERT_NONE")
        pool.request("GET", server + "/apis")  # the kubeconfig's server: silent
        pool.request("GET", server.replace("127.0.0.1", "localhost") + "/apis")  # another host: warns
    hosts = [str(w.message).split("'")[1] for w in seen if issubclass(w.category, InsecureRequestWarning)]
    assert hosts == ["localhost"]
    # A kubeconfig that verifies the server adds no filter at all.
    with warnings.catch_warnings():
        connect(_kubeconfig(tmp_path, server, **{"certificate-authority": str(cert_file)}), None)
        assert not [f for f in warnings.filters if f[2] is InsecureRequestWarning]
