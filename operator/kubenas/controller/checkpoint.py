"""The strategy checkpoint: ``state_dict()`` in the ConfigMap ``<experiment>-strategy``.

Written when the state changed, at most every ``interval`` seconds, and once more when
forced (the experiment ends, the controller stops): the state grows with the trials
(hashes of seen candidates), so writing it on every pass would cost O(trials) per pass.
What a restart finds missing from it, it replays from the trials. A state too large for
a ConfigMap is not written at all (a restart then rebuilds from the trials).

Only a ConfigMap this experiment owns (an ownerReference to its uid) is read or written,
and each write names its uid (immutable: a namesake made since answers 422). A foreign
ConfigMap of that name (NameConflict) is left as it is, never read as a checkpoint: the
controller then runs without one, which costs a restart only the replay of the trials.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

from kubernetes.client.exceptions import ApiException

from kubenas.cluster.objects import FOREIGN, OURS, checkpoint_configmap, checkpoint_name, ownership
from kubenas.contract import EXPERIMENT_KIND, NAME_CONFLICT

log = logging.getLogger("kubenas.controller")

MAX_CHECKPOINT_BYTES = 900 * 1024  # a ConfigMap holds 1 MiB, keys and metadata included
CHECKPOINT_SECONDS = 60.0
DATA_KEY = "checkpoint.json"


class CheckpointStore:
    def __init__(self, kube, namespace: str, experiment: str, interval: float = CHECKPOINT_SECONDS):
        self.kube = kube
        self.namespace = namespace
        self.name = checkpoint_name(experiment)
        self.interval = interval
        self.saved: dict | None = None      # the state the ConfigMap holds (as far as we know)
        self._written_at: float | None = None
        self._uid: str | None = None        # the uid of our ConfigMap, once created or found
        self.foreign = False                # the name is another object's (NameConflict): never touched
        self._warned_size = False

    def _whose(self, configmap: dict, experiment: dict) -> str:
        whose = ownership(configmap, {**experiment, "kind": experiment.get("kind", EXPERIMENT_KIND)})
        if whose == FOREIGN and not self.foreign:
            log.warning("%s: ConfigMap %s/%s exists and is not this experiment's (no ownerReference to its uid); "
                        "it is neither read nor written, and the strategy is not checkpointed: remove or rename it",
                        NAME_CONFLICT, self.namespace, self.name)
        self.foreign = self.foreign or whose == FOREIGN
        if whose == OURS:
            self._uid = configmap["metadata"]["uid"]
        return whose

    def load(self, experiment: dict) -> dict | None:
        """The saved strategy state of this experiment, or None (none, or another's).

        Raises ValueError for a checkpoint of an earlier experiment of the same name.
        """
        configmap = self.kube.get("ConfigMap", self.namespace, self.name)
        if not configmap or self._whose(configmap, experiment) != OURS:
            return None
        try:
            payload = json.loads((configmap.get("data") or {}).get(DATA_KEY) or "{}")
        except ValueError as err:
            raise ValueError(f"the checkpoint is not JSON ({err})") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("state"), dict):
            raise ValueError("the checkpoint has the wrong shape (want an object with a \"state\" object)")
        if payload.get("experimentUid") not in (None, experiment["metadata"].get("uid")):
            raise ValueError("the checkpoint belongs to an earlier experiment of the same name")
        state = payload["state"]
        self.saved = state
        return state

    def save(self, experiment: dict, state: Callable[[], dict], *, force: bool = False) -> bool:
        """Write ``state()`` if it changed and is due (or ``force``); True if written."""
        if self.foreign:
            return False
        now = time.monotonic()
        if not force and self._written_at is not None and now - self._written_at < self.interval:
            return False  # not yet: state() alone is O(trials)
        current = state()
        if current == self.saved:
            return False
        self._written_at = now
        body = checkpoint_configmap(experiment, {"experimentUid": experiment["metadata"].get("uid"), "state": current})
        size = len(body["data"][DATA_KEY])
        if size > MAX_CHECKPOINT_BYTES:
            if not self._warned_size:
                log.warning("strategy checkpoint is %d bytes, over the %d a ConfigMap can hold; "
                            "a restart will rebuild the strategy from the trials instead", size, MAX_CHECKPOINT_BYTES)
                self._warned_size = True
            self.saved = current
            return False
        if not self._write(experiment, body):
            return False
        self.saved = current
        return True

    def _write(self, experiment: dict, body: dict) -> bool:
        """Patch our ConfigMap (by uid), or create it; False when the name is not ours."""
        if self._uid is not None and self._patch(body):
            return True
        made = self.kube.create("ConfigMap", self.namespace, body)
        if made:
            self._uid = made["metadata"]["uid"]
            return True
        configmap = self.kube.get("ConfigMap", self.namespace, self.name)  # 409: whose is it?
        if configmap is None or self._whose(configmap, experiment) != OURS:
            return False  # gone meanwhile (created next time), an earlier namesake's, or foreign
        return self._patch(body)

    def _patch(self, body: dict) -> bool:
        """Patch the ConfigMap with this uid only; False if it is gone or was replaced."""
        try:
            done = self.kube.patch("ConfigMap", self.namespace, self.name,
                                   {"metadata": {"uid": self._uid}, "data": body["data"]})
        except ApiException as err:
            if err.status not in (409, 422):  # 422: metadata.uid is immutable, so not the one we made
                raise
            done = None
        if done is None:
            self._uid = None
        return done is not None
