"""kmock's KubernetesEmulator, plus the few API-server behaviours kubenas relies on.

kmock is a database over HTTP. This subclass adds, simplistically:
uid / creationTimestamp / generation / resourceVersion on writes; 409 on a stale
``metadata.resourceVersion`` precondition; status-subresource separation; equality
label selectors on lists; a list's resourceVersion, from which a watch streams only
newer objects (kmock replays every object to every watch); a watch's
``timeoutSeconds``; and a garbage collector (ownerReferences cascade).
It still has no Job or Deployment controllers: tests/integration/cluster.py plays them.
"""
from __future__ import annotations

import asyncio
import datetime
import itertools
import uuid

import kmock
from kmock._internal import enums
from kmock._internal.k8s import KubernetesError

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
        # (user agent, method, path, query) of every request, for the RBAC coverage test.
        self.calls: list[tuple[str, str, str, dict]] = []
        for key, info in RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(**info)

    def _find(self, resource, namespace, name):
        key = (resource, namespace, name)
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key]
        return None

    async def _handle(self, request):
        # kmock matches each request against its whole request history (quadratic);
        # keep only a short tail, and our own compact log.
        del self._requests[:-20]
        self.calls.append((request.headers.get("User-Agent", ""), str(request.method.value).upper(),
                           request.url.path, dict(request.params or {})))
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
        version = str(next(self._rv))
        payload = await super()._serve_list(request)
        payload["metadata"] = {"resourceVersion": version}
        selector = (request.params or {}).get("labelSelector")
        if selector:
            wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
            payload["items"] = [item for item in payload["items"]
                                if all(((item.get("metadata") or {}).get("labels") or {}).get(k) == v
                                       for k, v in wanted.items())]
        return payload

    async def _serve_watch(self, request):
        """A watch from ``resourceVersion`` skips the objects no newer than it (a client
        that has just listed them must not get them all again), and ends after
        ``timeoutSeconds``: the client then lists again, and an abandoned watch does not
        buffer every later event for ever (aiohttp does not cancel a handler whose
        client left)."""
        params = request.params or {}
        since = _int(params.get("resourceVersion"))
        timeout = _int(params.get("timeoutSeconds")) or 0
        inner = super()._serve_watch(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout > 0 else None
        try:
            while True:
                try:
                    if deadline is None:
                        event = await inner.__anext__()
                    else:
                        left = deadline - loop.time()
                        if left <= 0:
                            return
                        event = await asyncio.wait_for(inner.__anext__(), left)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    return
                if (since is not None and isinstance(event, dict) and event.get("type") == "ADDED"
                        and (_int(((event.get("object") or {}).get("metadata") or {}).get("resourceVersion")) or 0)
                        <= since):
                    continue
                yield event
        finally:
            await inner.aclose()


def _int(text) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
