"""One object nested past Python's recursion limit must not stop a list or a watch
(issue 23): kubenas.cluster.decoding reads it anyway, cut at MAX_DEPTH, and the operator
routes kopf's decoding through it. The real API server's side is
tests/e2e/test_parse_bounds.py (a 3000-deep trial stored, the operator restarted)."""
from __future__ import annotations

import asyncio
import inspect
import json

import pytest
from kopf._cogs.clients import api as kopf_api

from kubenas.api.validation import validate_experiment
from kubenas.cluster.decoding import MAX_DEPTH, TOO_DEEP, bounded_loads, loads
from kubenas.operator import decoding as kopf_decoding

ORDINARY = [
    {"items": [{"metadata": {"name": "a", "labels": {}}, "spec": {"x": [1, -2.5e-3, True, False, None, "é\u2028"]}}],
     "metadata": {"continue": ""}},
    [[], {}, "", 0, '"quoted" \\ [brackets] {braces}'],
    "plain", 12, None,
]


def nested_text(levels: int, leaf: str = "1") -> str:
    return "[" * levels + leaf + "]" * levels


def depth_of(value) -> int:
    depth = 0
    while isinstance(value, list):
        value, depth = value[0] if value else None, depth + 1
    return depth


@pytest.mark.parametrize("doc", ORDINARY)
def test_ordinary_documents_decode_as_json_loads_does(doc):
    for text in (json.dumps(doc), json.dumps(doc, ensure_ascii=False, indent=2)):
        assert bounded_loads(text) == json.loads(text) == loads(text) == loads(text.encode())


def test_a_document_deeper_than_the_recursion_limit_is_read_and_cut():
    text = '{"items": [{"metadata": {"name": "deep"}, "spec": {"x": ' + nested_text(3000) + '}}, {"ok": 2}]}'
    with pytest.raises(RecursionError):
        json.loads(text)
    answer = loads(text)
    assert answer["items"][0]["metadata"] == {"name": "deep"} and answer["items"][1] == {"ok": 2}
    cut = answer["items"][0]["spec"]["x"]
    assert depth_of(cut) == MAX_DEPTH - 4  # the answer, items, the item and spec are levels too
    inner = cut
    while isinstance(inner, list):
        inner = inner[0]
    assert inner == TOO_DEEP


def test_the_cut_object_fails_validation_naming_the_nesting():
    experiment = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "metadata": {"name": "deep"},
                  "spec": {"trial": {"template": {"affinity": {"x": "DEEP"}}}}}
    cut = loads(json.dumps(experiment).replace('"DEEP"', nested_text(5000)))
    (issue,) = validate_experiment(cut)
    assert issue.path.startswith("spec.trial.template.affinity.x[0]") and "levels deep" in issue.message


@pytest.mark.parametrize("text", ["", "[", "[1]]", "[1] 2", '{"a": [1}', "{1: 2}"])
def test_what_is_not_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        bounded_loads(text)


# ------------------------------------------------------------------------------ kopf

def test_kopf_still_decodes_where_the_operator_hooks_in():
    """kopf 1.45: the watch stream's json.loads(line) and api.get's response.json(). A
    kopf that decodes elsewhere fails here, not silently in a cluster."""
    source = inspect.getsource(kopf_api)
    assert "yield json.loads(line.decode('utf-8'))" in source
    assert "        return await response.json()" in inspect.getsource(kopf_api).split("async def get(", 1)[1].split(
        "async def ", 1)[0]
    request = inspect.signature(kopf_api.request).parameters
    assert {"method", "url", "payload", "headers", "timeout", "settings", "logger"} <= set(request)


def test_installed_kopf_reads_deep_watch_events_and_list_pages(monkeypatch):
    monkeypatch.setattr(kopf_api, "json", kopf_api.json)
    monkeypatch.setattr(kopf_api, "get", kopf_api.get)
    kopf_decoding.install()
    event = '{"type": "ADDED", "object": {"spec": {"x": ' + nested_text(3000) + "}}}"
    assert kopf_api.json.loads(event)["type"] == "ADDED"  # what api.stream calls per line
    assert kopf_api.json.dumps({"a": 1}) == '{"a": 1}'

    class Response:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *_):
            return False

        async def read(self):
            return ('{"items": [{"spec": {"x": ' + nested_text(3000) + "}}]}").encode()

    calls = []

    async def request(**kwargs):
        calls.append(kwargs)
        return Response()

    monkeypatch.setattr(kopf_api, "request", request)
    page = asyncio.run(kopf_api.get("/apis/kubenas.io/v1alpha1/nastrials", settings="s", logger="l"))
    assert depth_of(page["items"][0]["spec"]["x"]) == MAX_DEPTH - 4
    assert calls == [{"method": "get", "url": "/apis/kubenas.io/v1alpha1/nastrials", "payload": None, "headers": None,
                      "timeout": None, "settings": "s", "logger": "l"}]
