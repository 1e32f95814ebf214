"""kmock's KubernetesEmulator, plus the few API-server behaviours kubenas relies on.

kmock is a database over HTTP. This subclass adds, simplistically:
uid / creationTimestamp / generation / resourceVersion on writes; 409 on a stale
``metadata.resourceVersion`` precondition; status-subresource separation; equality
label selectors on lists and watches; pages (limit/continue); a list's resourceVersion, from which a watch
streams only newer objects (kmock replays every object to every watch); resourceVersions
that reach watchers in order; a watch's ``timeoutSeconds``; and a garbage collector
(ownerReferences cascade).
It still has no Job or Deployment controllers: tests/integration/cluster.py plays them.

Faults: each callable in ``faults`` sees every request as ``(user agent, method, path)``
and may answer it with an HTTP error status instead (a 503 of an overloaded server, say).
"""
from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid

import kmock
from kmock._internal import enums
from kmock._internal.k8s import KubernetesError

INTEGER_PARAMS = ("timeoutSeconds", "limit", "gracePeriodSeconds")
WRITES = (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE)
STATUS_RESOURCES = {"nasexperiments", "nastrials", "jobs", "deployments", "pods"}

RESOURCES = {
    "kubenas.io/v1alpha1/nasexperiments": dict(kind="NASExperiment", namespaced=True, subresources={"status"},
                                               verbs={"get", "list", "watch", "create", "patch", "delete"}),
    "kubenas.io/v1alpha1/nastrials": dict(kind="NASTrial", namespaced=True, subresources={"status"},
                                          verbs={"get", "list", "watch", "create", "patch", "delete"}),
    "batch/v1/jobs": dict(kind="Job", namespaced=True, subresources={"status"},
                          verbs={"get", "list", "watch", "create", "patch", "delete"}),
    # kopf's observers wait for these two to exist in discovery.
    "v1/namespaces": dict(kind="Namespace", namespaced=False, verbs={"get", "list", "watch"}),
    "apiextensions.k8s.io/v1/customresourcedefinitions": dict(kind="CustomResourceDefinition", namespaced=False,
                                                              verbs={"get", "list", "watch"}),
    "apps/v1/deployments": dict(kind="Deployment", namespaced=True, subresources={"status"},
                                verbs={"get", "list", "watch", "create", "patch", "delete"}),
}


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RealisticEmulator(kmock.KubernetesEmulator):
    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._rv = itertools.count(1)
        self._writes = asyncio.Lock()
        # (user agent, method, path, query) of every request, for the RBAC coverage test.
        self.calls: list[tuple[str, str, str, dict]] = []
        # fault(user agent, method, path) -> an HTTP status to answer with instead, or None.
        self.faults: list = []

        for key, info in RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(**info)

    def _find(self, resource, namespace, name):
        key = (resource, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key]
        return None

    async def _handle(self, request):
        if request.resource is not None and request.action in WRITES:
            # One write at a time, from its resourceVersion to its watch event: versions
            # then reach watchers in increasing order, as from an API server, and a
            # client resuming from the last version it saw misses nothing.
            async with self._writes:
                return await self._handle_one(request)
        return await self._handle_one(request)

    async def _handle_one(self, request):
        params = request.params or {}
        # As the API server does (strconv.ParseInt): a float here is a 400, not a number.
        for key in INTEGER_PARAMS:
            if key in params and _int(params[key]) is None:
                self.calls.append((request.headers.get("User-Agent", ""), "BAD", request.url.path, dict(params)))
                raise KubernetesError(status=400, reason="BadRequest",
                                      message=f'strconv.ParseInt: parsing "{params[key]}": invalid syntax')
        # kmock matches each request against its whole request history (quadratic);
        # keep only a short tail, and our own compact log.
        del self._requests[:-20]
        agent, method = request.headers.get("User-Agent", ""), str(request.method.value).upper()
        self.calls.append((agent, method, request.url.path, dict(request.params or {})))
        for fault in self.faults:
            status = fault(agent, method, request.url.path)
            if status:
                raise KubernetesError(status=status, reason="ServiceUnavailable" if status == 503 else "InjectedFault",
                                      message=f"injected fault: {status} for {method} {request.url.path}")
        res = request.resource
        plural = getattr(res, "plural", None)
        data = request.data if isinstance(request.data, dict) else None
        if res is not None and data is not None and request.action == enums.action.CREATE:
            meta = data.setdefault("metadata", {})
            meta.setdefault("namespace", request.namespace)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
            meta["generation"] = 1
            meta["resourceVersion"] = str(next(self._rv))
            if plural in STATUS_RESOURCES and plural in ("nasexperiments", "nastrials"):
                data.pop("status", None)
        elif res is not None and data is not None and request.action == enums.action.UPDATE and request.name:
            current = self._find(res, request.namespace, request.name)
            meta = data.setdefault("metadata", {}) if isinstance(data.get("metadata"), dict) or "metadata" not in data else {}
            if current is not None:
                wanted_rv = meta.get("resourceVersion")
                have_rv = (current.get("metadata") or {}).get("resourceVersion")
                if wanted_rv and wanted_rv != have_rv:
                    raise KubernetesError(status=409, reason="Conflict",
                                          message=f"the object has been modified (resourceVersion {have_rv})")
                if plural in STATUS_RESOURCES:
                    if request.subresource == "status":
                        for key in list(data):
                            if key not in ("status", "metadata"):
                                data.pop(key)
                        meta = data.setdefault("metadata", {})
                        for key in list(meta):
                            if key != "resourceVersion":
                                meta.pop(key)
                    else:
                        data.pop("status", None)
                if "spec" in data and data["spec"] != current.get("spec"):
                    meta["generation"] = int((current.get("metadata") or {}).get("generation") or 1) + 1
                meta["resourceVersion"] = str(next(self._rv))
        response = await super()._handle(request)
        if res is not None and request.action == enums.action.DELETE and request.name:
            await self._collect_garbage()
        return response

    async def _collect_garbage(self) -> None:
        """Delete objects whose every owner is gone (background cascading deletion)."""
        while True:
            alive = {(o.get("metadata") or {}).get("uid") for o in self.objects.values() if not o.deleted}
            orphans = []
            for key, obj in self.objects.items():
                if obj.deleted:
                    continue
                owners = (obj.get("metadata") or {}).get("ownerReferences") or []
                if owners and not any(ref.get("uid") in alive for ref in owners):
                    orphans.append(key)
            if not orphans:
                return
            async with self._lock:
                for key in orphans:
                    raw = self.objects[key].raw
                    self.objects[key].delete()
                    await self._buses[key[0]].put({"type": "DELETED", "object": raw})

    async def _serve_list(self, request):
        # Taken first: whatever is written meanwhile gets a later version, so a watch
        # from this version misses nothing (it may repeat an object, as is allowed).
        params = request.params or {}
        offset, _, version = str(params.get("continue") or "").partition("/")
        version = version or str(next(self._rv))
        payload = await super()._serve_list(request)
        payload["metadata"] = {"resourceVersion": version}
        wanted = _selector(params.get("labelSelector"))
        items = [item for item in payload["items"] if _labelled(item, wanted)]
        # Pages (limit/continue), in creation order; the token carries the first page's version.
        start, limit = _int(offset) or 0, _int(params.get("limit")) or 0
        if limit > 0:
            if start + limit < len(items):
                payload["metadata"]["continue"] = f"{start + limit}/{version}"
            items = items[start:start + limit]
        payload["items"] = items
        return payload

    async def _serve_watch(self, request):
        """kmock's watch, with what clients of a real API server rely on:

        * it subscribes to changes *before* it reads the current objects (kmock reads them
          first and subscribes after streaming them all, losing whatever changed meanwhile);
        * from a ``resourceVersion`` it sends only the objects newer than it (a client
          that has just listed them, or resumes a watch, must not get them all again);
        * it ends after ``timeoutSeconds``; the client then watches again, and an
          abandoned watch does not buffer every later event for ever (aiohttp does not
          cancel a handler whose client left).
        """
        params = request.params or {}
        since = _int(params.get("resourceVersion"))
        timeout = _int(params.get("timeoutSeconds")) or 0
        wanted = _selector(params.get("labelSelector"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout > 0 else None
        yield b""  # send the headers now: the client is waiting for them
        bus = self._buses[request.resource]
        marker = await bus.mark()
        changes = bus.stream(since=marker)
        try:
            async with self._lock:
                objs = [o for o in self._KubernetesEmulator__get_objs(request, strict=False) if not o.deleted]
                current = [{"type": "ADDED", "object": o.raw} for o in objs
                           if (since is None or (_version(o.raw) or 0) > since) and _labelled(o.raw, wanted)]
            for event in current:
                yield event
            while True:
                try:
                    if deadline is None:
                        event = await changes.__anext__()
                    else:
                        left = deadline - loop.time()
                        if left <= 0:
                            return
                        event = await asyncio.wait_for(changes.__anext__(), left)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    return
                obj = event.get("object") or {}
                meta = obj.get("metadata") or {}
                if self._KubernetesEmulator__check(request, request.resource, meta.get("namespace"),
                                                   meta.get("name"), strict=False) and _labelled(obj, wanted):
                    yield event
        finally:
            await changes.aclose()
            await bus.unmark(marker)


def _selector(text: str | None) -> dict:
    """Equality label selectors only (``a=b,c=d``): all kubenas uses."""
    return dict(part.split("=", 1) for part in (text or "").split(",") if "=" in part)


def _labelled(obj: dict, wanted: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _version(raw: dict) -> int | None:
    return _int((raw.get("metadata") or {}).get("resourceVersion"))


def _int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
