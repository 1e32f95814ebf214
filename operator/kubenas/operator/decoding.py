"""kopf's lists and watches, decoded whatever an object's nesting (kubenas.cluster.decoding).

kopf decodes each watch event with ``json.loads`` (``kopf._cogs.clients.api.stream``)
and each page of its initial listing with aiohttp's ``response.json()``
(``api.get``, called by ``fetching.fetch_objs``). A RecursionError in either ends the
watcher, which ends kopf; the operator starts kopf again, which lists again and meets the
same object: one object nested past Python's recursion limit stopped the operator for
every tenant (issue 23). :func:`install` routes both through the bounded decoder, so such
an object arrives with its too-deep part cut and only its own experiment fails
(validation names the nesting).

kopf offers no setting for its decoder, so this replaces two attributes of its client
module; tests/operator/test_decoding.py checks that kopf still decodes where this
expects, so a kopf upgrade that moves it fails a test instead of silently undoing this.
"""
from __future__ import annotations

import json
import types

from kopf._cogs.clients import api as kopf_api

from kubenas.cluster import decoding

# The json module as kopf's client module sees it, with the bounded loads.
_JSON = types.SimpleNamespace(**{**{name: getattr(json, name) for name in json.__all__}, "loads": decoding.loads})


async def _get(url, *, settings, payload=None, headers=None, timeout=None, logger):
    """kopf's ``api.get`` (kopf 1.37 to 1.45), with the body read by the bounded decoder."""
    response = await kopf_api.request(method="get", url=url, payload=payload, headers=headers, timeout=timeout,
                                      settings=settings, logger=logger)
    async with response:
        return decoding.loads(await response.read())


def install() -> None:
    """Route kopf's JSON decoding through kubenas.cluster.decoding (idempotent)."""
    kopf_api.json = _JSON
    kopf_api.get = _get
