"""Leader election on a coordination.k8s.io Lease, so that two operator replicas (a
scale-up, an overlapping install, a rolling update) never both act: the one holding the
Lease runs kopf, the other waits and takes over when the holder stops renewing.

The rules are client-go's: the Lease names its holder, when it was last renewed and for
how long it is valid; every write is conditional on the version read (409: someone else
wrote first, try again later); an expired Lease may be taken over by anyone. A leader
that cannot renew within the Lease's duration stops acting before another may take
over (it renews every ``renew_seconds``, well inside ``lease_seconds``). A leader that
stops gracefully releases the Lease so that the other replica takes over at once.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from kubenas.cluster.kube import REQUEST_TIMEOUT

log = logging.getLogger("kubenas.operator.leader")

LEASE_NAME = "kubenas-operator"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _micro(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseState:
    holder: str | None
    renewed: datetime | None
    seconds: int
    transitions: int


def lease_state(lease: dict) -> LeaseState:
    spec = lease.get("spec") or {}
    renewed = spec.get("renewTime")
    when = datetime.fromisoformat(renewed.replace("Z", "+00:00")) if renewed else None
    return LeaseState(spec.get("holderIdentity") or None, when, int(spec.get("leaseDurationSeconds") or 0),
                      int(spec.get("leaseTransitions") or 0))


def may_take(state: LeaseState, identity: str, now: datetime) -> bool:
    """Pure: may ``identity`` hold the Lease now? Its own, nobody's, or expired."""
    if state.holder in (None, identity):
        return True
    return state.renewed is None or now > state.renewed + timedelta(seconds=state.seconds)


class LeaderElector:
    def __init__(self, namespace: str, identity: str | None = None, *, name: str = LEASE_NAME,
                 lease_seconds: int = 15, renew_seconds: float = 5.0, api: k8s.ApiClient | None = None):
        from kubenas.cluster.kube import api_client

        self.namespace, self.name = namespace, name
        self.identity = identity or os.environ.get("HOSTNAME") or "kubenas-operator"
        self.lease_seconds, self.renew_seconds = lease_seconds, renew_seconds
        self.api = k8s.CoordinationV1Api(api or api_client("operator"))

    def try_acquire_or_renew(self) -> bool:
        """One attempt; True while this replica holds the Lease."""
        now = _now()
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT,
                                                   _preload_content=False)
        except ApiException as err:
            if err.status != 404:
                raise
            return self._create(now)
        body = json.loads(lease.data)
        state = lease_state(body)
        if not may_take(state, self.identity, now):
            return False
        spec = body.setdefault("spec", {})
        if state.holder != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = state.transitions + (1 if state.holder else 0)
            log.info("taking the lease %s/%s over from %s", self.namespace, self.name, state.holder or "nobody")
        spec.update({"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds,
                     "renewTime": _micro(now)})
        try:
            self.api.replace_namespaced_lease(self.name, self.namespace, body, _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as err:
            if err.status == 409:
                return False  # someone else wrote first
            raise

    def _create(self, now: datetime) -> bool:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self.lease_seconds,
                         "acquireTime": _micro(now), "renewTime": _micro(now), "leaseTransitions": 0}}
        try:
            self.api.create_namespaced_lease(self.namespace, body, _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise

    def release(self) -> None:
        """Give the Lease up (graceful stop): the other replica need not wait for it to expire."""
        try:
            lease = self.api.read_namespaced_lease(self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
            if lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.renew_time = None
            self.api.replace_namespaced_lease(self.name, self.namespace, lease, _request_timeout=REQUEST_TIMEOUT)
        except Exception as err:  # noqa: BLE001 - best effort: the Lease expires anyway
            log.warning("could not release the lease %s/%s: %s", self.namespace, self.name, err)
