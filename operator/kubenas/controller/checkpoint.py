"""The strategy checkpoint: ``state_dict()`` in the ConfigMap ``<experiment>-strategy``.

Written when the state changed, at most every ``interval`` seconds, and once more when
forced (the experiment ends, the controller stops): the state grows with the trials
(hashes of seen candidates), so writing it on every pass would cost O(trials) per pass.
What a restart finds missing from it, it replays from the trials. A state too large for
a ConfigMap is not written at all (a restart then rebuilds from the trials).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Callable

from kubenas.cluster.objects import checkpoint_configmap, checkpoint_name

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
        self._exists = False
        self._warned_size = False

    def load(self, experiment: dict) -> dict | None:
        """The saved strategy state of this experiment, or None (none, or another's).

        Raises ValueError for a checkpoint of an earlier experiment of the same name.
        """
        configmap = self.kube.get("ConfigMap", self.namespace, self.name)
        if not configmap:
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
        if not (self._exists and self.kube.patch("ConfigMap", self.namespace, self.name, {"data": body["data"]})):
            if not self.kube.create("ConfigMap", self.namespace, body):  # exists: an earlier incarnation's
                self.kube.patch("ConfigMap", self.namespace, self.name, {"data": body["data"]})
        self._exists = True
        self.saved = current
        return True
