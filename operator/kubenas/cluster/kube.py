"""Kubernetes API access shared by the operator and the controller (official client, sync).

One place decides where the API server is: a test override (``use_config``), the pod's
in-cluster ServiceAccount, else the kubeconfig. Each component sends its own User-Agent
(``kubenas-operator/...``, ``kubenas-controller/...``) so that audit logs, and the RBAC
coverage test, can tell their requests apart.

Writes are idempotent by convention: ``create`` treats 409 as "already there" (and the
caller checks whose it is: kubenas touches only objects that carry its ownerReference),
``delete`` treats 404 as "already gone" and deletes only the uid it read.
"""
from __future__ import annotations

import json
import logging
import os
import threading

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from kubenas.contract import GROUP, VERSION
from kubenas.contract.result import short_message

from . import decoding

log = logging.getLogger(__name__)

try:
    from importlib.metadata import version as _version

    KUBENAS_VERSION = _version("kubenas")
except Exception:  # pragma: no cover - source checkout without metadata
    KUBENAS_VERSION = "0.0.0"

_override: k8s.Configuration | None = None
_loaded: k8s.Configuration | None = None
_lock = threading.Lock()


def use_config(configuration: k8s.Configuration | None) -> None:
    """Point every client made afterwards at this configuration (tests; None resets)."""
    global _override, _loaded
    with _lock:
        _override = configuration
        _loaded = None


def override() -> k8s.Configuration | None:
    return _override


def configuration() -> k8s.Configuration:
    """The override, else in-cluster config, else the kubeconfig ($KUBECONFIG)."""
    global _loaded
    with _lock:
        if _override is not None:
            return _override
        if _loaded is None:
            conf = k8s.Configuration()
            if os.environ.get("KUBERNETES_SERVICE_HOST"):
                k8s_config.load_incluster_config(client_configuration=conf)
            else:
                k8s_config.load_kube_config(client_configuration=conf)
            _loaded = conf
        return _loaded


def api_client(component: str) -> k8s.ApiClient:
    api = k8s.ApiClient(configuration())
    api.user_agent = f"kubenas-{component}/{KUBENAS_VERSION}"
    return api


# Every call has a deadline: a half-open connection must not block a kopf worker, the
# resync loop, the controller or a trainer's final write for ever (connect, read seconds).
REQUEST_TIMEOUT = (10.0, float(os.environ.get("KUBENAS_API_TIMEOUT_SECONDS", "60")))
WATCH_READ_MARGIN = 30.0  # a watch reads nothing for at most its server timeout plus this


def _or_none(call, *args, **kwargs):
    """The answer, or None if the object is not there (404)."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        return call(*args, **kwargs)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _decoded(answer):
    """The JSON of a raw answer (``_preload_content=False``), decoded whatever its nesting:
    one object nested past Python's recursion limit must not fail a whole list."""
    try:
        return decoding.loads(answer.data)
    finally:
        answer.release_conn()


def namespace_terminating(err: BaseException) -> bool:
    """A create refused because its namespace is being deleted (403, cause
    ``NamespaceTerminating`` from the API server's lifecycle admission): nothing to retry
    or report; the namespace's objects are going away with it."""
    if not isinstance(err, ApiException) or err.status != 403:
        return False
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return False
    causes = ((body.get("details") or {}).get("causes") or []) if isinstance(body, dict) else []
    return any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


def _done(call, *args, expected: int, **kwargs) -> bool:
    """True if the call did it, False if it was already done (``expected``: 409 on create, 404 on delete)."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        call(*args, **kwargs)
        return True
    except ApiException as err:
        if err.status == expected:
            return False
        raise


# kind -> (API group attribute of Kube, method name stem): the built-in objects kubenas writes.
BUILTINS = {
    "Job": ("batch", "namespaced_job"),
    "Deployment": ("apps", "namespaced_deployment"),
    "ConfigMap": ("core", "namespaced_config_map"),
    "ServiceAccount": ("core", "namespaced_service_account"),
    "RoleBinding": ("rbac", "namespaced_role_binding"),
    "Service": ("core", "namespaced_service"),
}


class Kube:
    """The few API calls kubenas makes, with 404/409 as expected answers."""

    def __init__(self, component: str, api: k8s.ApiClient | None = None):
        self.api = api or api_client(component)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.core = k8s.CoreV1Api(self.api)
        self.batch = k8s.BatchV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.rbac = k8s.RbacAuthorizationV1Api(self.api)

    def close(self) -> None:
        self.api.close()

    def _builtin(self, verb: str, kind: str):
        group, stem = BUILTINS[kind]
        return getattr(getattr(self, group), f"{verb}_{stem}")

    # ------------------------------------------------------------------ custom resources

    def get_custom(self, plural: str, namespace: str, name: str) -> dict | None:
        answer = _or_none(self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name,
                          _preload_content=False)
        return None if answer is None else _decoded(answer)

    def iter_custom(self, plural: str, namespace: str | None = None, page: int = 500):
        """Every object of a custom resource, in one namespace or all (None), listed in
        pages of ``page`` so that 10,000 objects are never parsed at once."""
        token = None
        while True:
            kwargs: dict = {"limit": page, "_request_timeout": REQUEST_TIMEOUT, "_preload_content": False}
            if token:
                kwargs["_continue"] = token
            if namespace is None:
                answer = _decoded(self.custom.list_cluster_custom_object(GROUP, VERSION, plural, **kwargs))
            else:
                answer = _decoded(self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural,
                                                                            **kwargs))
            yield from answer.get("items") or []
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return

    def list_custom_with_version(self, plural: str, namespace: str,
                                 label_selector: str | None = None) -> tuple[list[dict], str | None]:
        """The items and the list's resourceVersion (where a watch of changes starts)."""
        kwargs = {"label_selector": label_selector} if label_selector else {}
        answer = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, plural,
                                                           _request_timeout=REQUEST_TIMEOUT, **kwargs)
        return list(answer.get("items") or []), (answer.get("metadata") or {}).get("resourceVersion")

    def watch_custom(self, plural: str, namespace: str, label_selector: str | None = None,
                     resource_version: str | None = None, timeout_seconds: int = 300, watcher=None):
        """Watch events (dicts with ``type`` and ``object``) from ``resource_version`` on.
        Ends when the server closes the watch; raises on errors (410 Gone: list again).
        ``watcher`` (a ``kubernetes.watch.Watch``): its ``stop()``, from any thread, ends it."""
        from kubernetes import watch

        kwargs: dict = {"timeout_seconds": int(timeout_seconds), "allow_watch_bookmarks": True,
                        # a stalled stream (no event, no bookmark, no end) fails instead of hanging
                        "_request_timeout": (REQUEST_TIMEOUT[0], int(timeout_seconds) + WATCH_READ_MARGIN)}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if resource_version:
            kwargs["resource_version"] = resource_version
        w = watcher or watch.Watch()
        try:
            yield from w.stream(self.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, plural, **kwargs)
        finally:
            w.stop()

    def create_custom(self, plural: str, namespace: str, body: dict) -> bool:
        """True if created, False if it already existed (409)."""
        return _done(self.custom.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body,
                     expected=409)

    def patch_custom(self, plural: str, namespace: str, name: str, patch: dict) -> dict | None:
        return _or_none(self.custom.patch_namespaced_custom_object, GROUP, VERSION, namespace, plural, name, patch)

    def patch_custom_status(self, plural: str, namespace: str, name: str, patch: dict) -> dict | None:
        """Merge-patch the status subresource; None if the object is gone.

        A ``metadata.resourceVersion`` in the patch makes it conditional (409 if stale).
        """
        return _or_none(self.custom.patch_namespaced_custom_object_status, GROUP, VERSION, namespace, plural, name,
                        patch)

    # ------------------------------------------------------------------------- builtins

    def create(self, kind: str, namespace: str, body: dict) -> dict | None:
        """Create a Job, Deployment, ConfigMap, ServiceAccount or RoleBinding: the object
        made (its uid included), or None if the name is taken (409: whose it is, the
        caller checks before touching it)."""
        try:
            answer = self._builtin("create", kind)(namespace, body, _preload_content=False,
                                                   _request_timeout=REQUEST_TIMEOUT)
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        return json.loads(answer.data)

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        answer = _or_none(self._builtin("read", kind), name, namespace, _preload_content=False)
        return None if answer is None else json.loads(answer.data)

    def delete(self, kind: str, namespace: str, name: str, uid: str) -> bool:
        """Delete this very object (a precondition on its ``uid``: never a namesake made
        since it was read) with background propagation (its pods go too); False if it is
        already gone or was replaced (404, 409)."""
        body = k8s.V1DeleteOptions(propagation_policy="Background", preconditions=k8s.V1Preconditions(uid=uid))
        try:
            return _done(self._builtin("delete", kind), name, namespace, body=body, expected=404)
        except ApiException as err:
            if err.status == 409:  # "Precondition failed: UID in precondition ...": not the one read
                log.warning("%s %s/%s was replaced since it was read (uid %s); not deleted", kind, namespace, name,
                            uid)
                return False
            raise

    def patch(self, kind: str, namespace: str, name: str, patch: dict) -> dict | None:
        return _or_none(self._builtin("patch", kind), name, namespace, patch)

    # -------------------------------------------- other groups' objects (KServe's, spec.deploy)

    def serves(self, group: str, version: str, plural: str) -> bool:
        """Whether the API server serves ``plural`` in ``group/version`` (discovery: a CRD installed)."""
        found = _or_none(self.custom.get_api_resources, group, version)
        return found is not None and any(r.name == plural for r in found.resources or [])

    def create_object(self, group: str, version: str, plural: str, namespace: str, body: dict) -> dict | None:
        """Create a namespaced object of another group: the object made, None if the name is taken (409)."""
        try:
            return self.custom.create_namespaced_custom_object(group, version, namespace, plural, body,
                                                               _request_timeout=REQUEST_TIMEOUT)
        except ApiException as err:
            if err.status == 409:
                return None
            raise

    def get_object(self, group: str, version: str, plural: str, namespace: str, name: str) -> dict | None:
        return _or_none(self.custom.get_namespaced_custom_object, group, version, namespace, plural, name)

    def patch_object(self, group: str, version: str, plural: str, namespace: str, name: str,
                     patch: dict) -> dict | None:
        return _or_none(self.custom.patch_namespaced_custom_object, group, version, namespace, plural, name, patch)

    def list_events(self, namespace: str, kind: str, name: str) -> list[dict]:
        """The Events about one object (core/v1, as controllers post them)."""
        answer = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
            _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        return json.loads(answer.data).get("items") or []

    def may(self, user: str, groups: tuple[str, ...], verb: str, resource: str, namespace: str, name: str,
            group: str = "") -> bool:
        """Whether ``user`` (in ``groups``) may ``verb`` that object (of the core group
        unless ``group``): the API server's own authorizer, through a SubjectAccessReview."""
        review = k8s.AuthorizationV1Api(self.api).create_subject_access_review({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {"user": user, "groups": list(groups), "resourceAttributes": {
                "group": group, "resource": resource, "verb": verb, "namespace": namespace, "name": name}}},
            _request_timeout=REQUEST_TIMEOUT)
        return bool(review.status and review.status.allowed)

    def get_cluster_object(self, group: str, plural: str, name: str) -> dict | None:
        """A cluster-scoped object of ``group``/v1 by name, None if absent."""
        return _or_none(self.custom.get_cluster_custom_object, group, "v1", plural, name)

    def list_pods(self, namespace: str, label_selector: str) -> list[dict]:
        answer = self.core.list_namespaced_pod(namespace, label_selector=label_selector, _preload_content=False,
                                               _request_timeout=REQUEST_TIMEOUT)
        return list(json.loads(answer.data).get("items") or [])


def event_body(obj: dict, type_: str, reason: str, message: str, component: str, now: str) -> dict:
    """A core/v1 Event about ``obj`` (shown by ``kubectl describe``)."""
    import time

    meta = obj.get("metadata") or {}
    involved = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                "namespace": meta.get("namespace")}
    if meta.get("uid"):
        involved["uid"] = meta["uid"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name')}.{time.time_ns():x}", "namespace": meta.get("namespace")},
        "involvedObject": involved,
        "reason": reason,
        "message": short_message(message),
        "type": type_,
        "source": {"component": component},
        "reportingComponent": f"kubenas.io/{component}",
        "reportingInstance": os.environ.get("HOSTNAME", component)[:128],
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


def post_event(kube: "Kube", obj: dict, type_: str, reason: str, message: str, component: str, now: str) -> None:
    """Best effort: an Event that cannot be posted is logged, never raised."""
    body = event_body(obj, type_, reason, message, component, now)
    try:
        kube.core.create_namespaced_event(body["metadata"]["namespace"], body, _request_timeout=REQUEST_TIMEOUT)
    except Exception as err:  # noqa: BLE001
        log.warning("cannot post Event %s/%s: %s", reason, body["metadata"]["name"], err)
