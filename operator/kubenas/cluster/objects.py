"""Names, labels and the objects both the operator and the controller build (pure).

The labels and annotations are the API of kubenas towards kubectl and selectors. Each
builder returns a plain dict ready for the API server.
"""
from __future__ import annotations

import hashlib
import json
import re

from kubenas.api.trials import build_trial_spec, trial_name
from kubenas.contract import API_VERSION, EXPERIMENT_KIND, TRIAL_KIND

LABEL_NAME = "app.kubernetes.io/name"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_EXPERIMENT = "kubenas.io/experiment"
LABEL_TRIAL = "kubenas.io/trial"
LABEL_INDEX = "kubenas.io/trial-index"
MANAGED_BY = "kubenas-operator"
# The spec the operator accepted (defaults filled, canonical JSON) lives in
# ``status.acceptedSpec``: what the controller and the Jobs use. Only the operator writes
# an experiment's status (RBAC: nasexperiments/status), so an author cannot pre-set or
# edit it. Only budget.maxTrials and budget.parallelTrials may change after acceptance.
# Operators before 0.2 kept it in this annotation; it is read only to adopt an experiment
# such an operator had already started (status.phase Running, which no author can write).
ANNOTATION_ACCEPTED_SPEC = "kubenas.io/accepted-spec"

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def label_value(value: str) -> str:
    """A valid label value (<= 63 chars); long or odd values get a stable hashed form."""
    value = str(value)
    if len(value) <= 63 and LABEL_VALUE.match(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    clean = re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:50].strip("-_.")
    return f"{clean}-{digest}" if clean else digest


def common_labels(component: str, experiment: str) -> dict:
    return {
        LABEL_NAME: "kubenas",
        LABEL_PART_OF: "kubenas",
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: component,
        LABEL_EXPERIMENT: label_value(experiment),
    }


def experiment_selector(experiment: str) -> str:
    """The label selector of an experiment's objects (its trials, their Jobs)."""
    return f"{LABEL_EXPERIMENT}={label_value(experiment)}"


def owned_by(obj: dict, experiment: dict) -> bool:
    """``obj``'s ownerReferences name this very experiment (by uid, not only by name)."""
    uid = (experiment.get("metadata") or {}).get("uid")
    return bool(uid) and any(o.get("kind") == EXPERIMENT_KIND and o.get("uid") == uid
                             for o in (obj.get("metadata") or {}).get("ownerReferences") or [])


def experiment_uid(trial: dict) -> str | None:
    """The uid of the NASExperiment that owns ``trial`` (its controller made it), which
    names the experiment's artifacts folder (kubenas.contract.artifacts.experiment_folder)."""
    return next((o.get("uid") for o in (trial.get("metadata") or {}).get("ownerReferences") or []
                 if o.get("kind") == EXPERIMENT_KIND and o.get("uid")), None)


OURS, STALE, FOREIGN = "ours", "stale", "foreign"


def ownership(obj: dict, owner: dict) -> str:
    """Whose ``obj`` is, found by the name kubenas gives it: OURS (an ownerReference to
    ``owner``'s uid), STALE (owned by an earlier ``owner`` of the same kind and name, which
    the garbage collector is removing: wait for it) or FOREIGN (anything else: kubenas
    never adopts, patches, reads a result from or deletes it)."""
    meta = owner.get("metadata") or {}
    kind, uid = owner.get("kind"), meta.get("uid")
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    if uid and any(r.get("kind") == kind and r.get("uid") == uid for r in refs):
        return OURS
    group = str(owner.get("apiVersion") or "").split("/")[0]
    if any(r.get("kind") == kind and r.get("name") == meta.get("name") and r.get("controller")
           and str(r.get("apiVersion") or "").split("/")[0] == group for r in refs):
        return STALE
    return FOREIGN


def owned_pods(job: dict, pods: list[dict]) -> list[dict]:
    """The pods the Job controller made for this very Job (ownerReference to its uid):
    a pod that only carries its ``job-name`` label says nothing about the trial."""
    return [p for p in pods if ownership(p, {**job, "kind": "Job"}) == OURS]


def events_about(obj: dict, events: list[dict]) -> list[dict]:
    """The Events about this very object (involvedObject.uid), not a namesake's."""
    uid = (obj.get("metadata") or {}).get("uid")
    return [e for e in events if uid and (e.get("involvedObject") or {}).get("uid") == uid]


def owner_reference(obj: dict, *, controller: bool = True) -> dict:
    meta = obj["metadata"]
    return {
        "apiVersion": obj.get("apiVersion", API_VERSION),
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": controller,
        # No blockOwnerDeletion: setting it needs `update` on the owner's finalizers
        # where OwnerReferencesPermissionEnforcement is on (OpenShift, hardened
        # clusters), which neither the operator nor the controller should hold; the
        # garbage collector deletes the dependents either way.
    }


def owned_by_experiment(experiment: dict) -> list[dict]:
    return [owner_reference({**experiment, "kind": experiment.get("kind", EXPERIMENT_KIND)})]


def accepted_spec(experiment: dict) -> dict | None:
    """The spec the operator accepted for this experiment, or None before acceptance."""
    status = experiment.get("status") or {}
    text = status.get("acceptedSpec")
    if not text and status.get("phase") == "Running":  # started by an operator before 0.2
        text = ((experiment.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_ACCEPTED_SPEC)
    if not text or not isinstance(text, str):
        return None
    try:
        spec = json.loads(text)
    except ValueError:
        return None
    return spec if isinstance(spec, dict) else None


def accepted_spec_text(spec: dict) -> str:
    """``status.acceptedSpec``: the accepted spec as canonical JSON."""
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def checkpoint_name(experiment: str) -> str:
    return f"{experiment}-strategy"


def checkpoint_configmap(experiment: dict, payload: dict) -> dict:
    """The controller's strategy checkpoint, owned by the experiment."""
    meta = experiment["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": checkpoint_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": common_labels("controller", meta["name"]),
            "ownerReferences": owned_by_experiment(experiment),
        },
        "data": {"checkpoint.json": json.dumps(payload, sort_keys=True, separators=(",", ":"))},
    }


def trial_object(experiment: dict, spec: dict, index: int, candidate: dict) -> dict:
    """The NASTrial the controller creates for candidate ``index`` (deterministic name)."""
    meta = experiment["metadata"]
    labels = common_labels("trial", meta["name"])
    labels[LABEL_INDEX] = str(index)
    return {
        "apiVersion": API_VERSION,
        "kind": TRIAL_KIND,
        "metadata": {
            "name": trial_name(meta["name"], index),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": owned_by_experiment(experiment),
        },
        "spec": build_trial_spec(meta["name"], spec, index, candidate),
    }
