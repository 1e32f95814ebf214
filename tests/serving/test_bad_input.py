"""Malformed requests get a 4xx whose ``{"error": ...}`` names the tensor and what was
expected, never a 500, and the server keeps serving: a good request after each bad one.
The table of docs/serving.md ("Bad input") is this test's output:
``KUBENAS_UPDATE_DOCS=1 pytest tests/serving/test_bad_input.py`` rewrites it, and the
test fails when the docs and the server disagree."""
from __future__ import annotations

import json
import os

import pytest

from .conftest import MODEL, ROOT

DOC = ROOT / "docs" / "serving.md"
BEGIN = "<!-- BEGIN bad-input table: tests/serving/test_bad_input.py writes it (KUBENAS_UPDATE_DOCS=1) -->"
END = "<!-- END bad-input table -->"
MAX_BODY, MAX_ELEMENTS = 65536, 4096
INFER = f"/v2/models/{MODEL}/infer"


def tensor(shape=(1, 1, 8, 8), datatype="FP32", name="images", data=None, **extra) -> dict:
    count = 1
    for d in shape:
        count *= d
    return {"name": name, "shape": list(shape), "datatype": datatype,
            "data": [0.5] * max(count, 0) if data is None else data, **extra}


def body(*inputs, **extra) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def binary(size: int) -> tuple[bytes, dict]:
    """A request with the binary tensor extension: JSON, then ``size`` bytes of tensor."""
    header = json.dumps({"inputs": [{"name": "images", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                     "parameters": {"binary_data_size": size}}]}).encode()
    return header + bytes(size), {"Inference-Header-Content-Length": str(len(header))}


GOOD = body(tensor())
# (what is wrong, method, path, body, headers, expected status)
CASES = [
    ("body is not JSON", "POST", INFER, b"images=1,2,3", {}, 400),
    ("body is a JSON list, not an object", "POST", INFER, b"[1, 2]", {}, 400),
    ("JSON nested 20000 deep", "POST", INFER, b'{"inputs": [{"name": "images", "data": ' + b"[" * 20000 + b"]" * 20000
     + b"}]}", {}, 400),
    ("data nested deeper than a tensor can be", "POST", INFER,
     body(tensor(data=json.loads("[" * 100 + "0.5" + "]" * 100))), {}, 400),
    ("no inputs", "POST", INFER, b"{}", {}, 400),
    ("wrong input name", "POST", INFER, body(tensor(name="image")), {}, 400),
    ("input given twice", "POST", INFER, body(tensor(), tensor()), {}, 400),
    ("wrong datatype", "POST", INFER, body(tensor(datatype="FP64")), {}, 400),
    ("not a V2 datatype", "POST", INFER, body(tensor(datatype="float")), {}, 400),
    ("wrong rank (no channel dimension)", "POST", INFER, body(tensor(shape=(1, 8, 8))), {}, 400),
    ("wrong image size", "POST", INFER, body(tensor(shape=(1, 1, 28, 28))), {}, 400),
    ("empty batch", "POST", INFER, body(tensor(shape=(0, 1, 8, 8), data=[])), {}, 400),
    ("data length does not match the shape", "POST", INFER, body(tensor(shape=(2, 1, 8, 8), data=[0.5] * 64)), {},
     400),
    ("data holds strings", "POST", INFER, body(tensor(data=["a"] * 64)), {}, 400),
    ("data holds a null", "POST", INFER, body(tensor(data=[0.5] * 63 + [None])), {}, 400),
    ("unknown output asked for", "POST", INFER, body(tensor(), outputs=[{"name": "scores"}]), {}, 400),
    ("request id not a string", "POST", INFER, body(tensor(), id=7), {}, 400),
    ("binary_data_size does not match the shape", "POST", INFER, *binary(100), 400),
    ("Inference-Header-Content-Length past the body", "POST", INFER, GOOD,
     {"Inference-Header-Content-Length": "999999"}, 400),
    ("tensor larger than --max-elements", "POST", INFER, body(tensor(shape=(65, 1, 8, 8), data=[0.5])), {}, 413),
    ("body larger than --max-body-bytes", "POST", INFER, body(tensor(), parameters={"note": "x" * MAX_BODY}), {},
     413),
    ("chunked body larger than --max-body-bytes", "POST", INFER, iter([b" " * (MAX_BODY // 2)] * 3),
     {"Content-Type": "application/json"}, 413),
    ("unknown model", "POST", "/v2/models/mnist/infer", GOOD, {}, 404),
    ("unknown model version", "POST", f"/v2/models/{MODEL}/versions/7/infer", GOOD, {}, 404),
    ("unknown path", "GET", "/v1/models/digits", None, {}, 404),
    ("wrong method (GET on infer)", "GET", INFER, None, {}, 405),
]


@pytest.fixture(scope="module")
def table(run_dir, tmp_path_factory):
    from .conftest import Server

    server = Server(run_dir, "--max-body-bytes", MAX_BODY, "--max-elements", MAX_ELEMENTS)
    rows = []
    try:
        for what, method, path, case_body, headers, expected in CASES:
            status, response_headers, content = server.request(path, case_body, method, headers)
            rows.append((what, method, path, expected, status, response_headers, content))
            good_status, _, good = server.request(INFER, GOOD, "POST")
            assert good_status == 200, (what, good)  # the server keeps serving after each bad request
    finally:
        server.stop()
    return rows


def test_every_bad_request_gets_its_4xx_and_a_json_error(table):
    assert len(table) >= 10
    for what, _, _, expected, status, headers, content in table:
        assert status == expected, (what, status, content)
        assert headers["content-type"] == "application/json", what
        error = json.loads(content)
        assert list(error) == ["error"] and error["error"], what


def test_the_errors_name_the_tensor_and_what_was_expected(table):
    errors = {what: json.loads(content)["error"] for what, *_, content in table}
    assert "unexpected input 'image'" in errors["wrong input name"] and "images (FP32 [-1, 1, 8, 8])" in \
        errors["wrong input name"]
    assert errors["wrong datatype"] == 'input images: datatype "FP64", expected FP32'
    assert "expected [-1, 1, 8, 8]" in errors["wrong image size"] and "[1, 1, 28, 28]" in errors["wrong image size"]
    assert "holds 64 values, but shape [2, 1, 8, 8] needs 128" in errors["data length does not match the shape"]
    assert str(MAX_ELEMENTS) in errors["tensor larger than --max-elements"]
    assert str(MAX_BODY) in errors["body larger than --max-body-bytes"]
    assert "logits, probabilities, predicted_class" in errors["unknown output asked for"]


def markdown(table) -> str:
    lines = ["| malformed request | status | `error` |", "|---|---|---|"]
    for what, method, path, _, status, _, content in table:
        message = json.loads(content)["error"].replace("|", "\\|")
        lines.append(f"| {what} ({method} `{path}`) | {status} | {message} |")
    return "\n".join(lines)


def test_the_docs_table_is_what_the_server_answers(table):
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    generated = "\n" + markdown(table) + "\n"
    if os.environ.get("KUBENAS_UPDATE_DOCS"):
        DOC.write_text(text[:start] + generated + text[end:])
        return
    assert text[start:end] == generated, "docs/serving.md's bad-input table is stale: rerun with KUBENAS_UPDATE_DOCS=1"
