"""The cluster admin's tenancy policy, as the operator checks it.

One policy, two enforcers. The ConfigMap ``kubenas-system/kubenas-admission-policy``
(deploy/admission-params.yaml, docs/security.md) parameterises the
ValidatingAdmissionPolicy ``kubenas-experiment-spec`` (deploy/admission.yaml), which
refuses an experiment at ``kubectl apply`` time and can ask the API server's authorizer
what the requester may do. The operator reads the same ConfigMap and checks every
experiment again before accepting it (:func:`policy_issues`), so a cluster without
ValidatingAdmissionPolicy (older than 1.30, or the policies left out) still gets the
image, volume-type, environment and label rules; a refused experiment ends Failed
(``PolicyDenied``) naming the field, with an Event.

The operator does not know who created an experiment, so it cannot grant what the
admission policy grants beyond the lists to a requester with the right to do it
themselves (a ServiceAccount, toleration or priority class they could use in a pod of
their own; Secrets they may read). It therefore checks the lists with no way around them
only where the policy says so: ``operatorEnforcesLists: "true"`` in the ConfigMap, for
clusters without the admission policies. With them, it leaves those three lists to
admission, which judges the requester.
"""

from __future__ import annotations

from dataclasses import dataclass

from kubenas.api.validation import Issue

POLICY_NAMESPACE = "kubenas-system"
POLICY_NAME = "kubenas-admission-policy"
WHERE = f"ConfigMap {POLICY_NAMESPACE}/{POLICY_NAME}"
OPERATOR_PREFIX = "kubenas.io/"

# What deploy/admission-params.yaml ships (tests/api/test_policy.py keeps them equal):
# the operator's policy when the ConfigMap cannot be read.
DEFAULTS = {
    "trainerImagePrefixes": "ghcr.io/kubenas/",
    "controllerImagePrefixes": "ghcr.io/kubenas/",
    "volumeTypes": "emptyDir, configMap, secret, persistentVolumeClaim, downwardAPI",
    "serviceAccounts": "kubenas-trainer",
    "priorityClasses": "",
    "tolerationKeys": "nvidia.com/gpu",
    "forbiddenEnvNames": ("LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, "
                          "PYTHONUSERBASE, PYTHONINSPECT"),
    "requireJobCreate": "false",
    "operatorEnforcesLists": "false",
    "userCode": "false",
    # Per-namespace bounds, the operator's alone (kubenas.operator.tenancy): "0" or "" for none.
    "maxRunningExperimentsPerNamespace": "20",
    "maxTrialsInFlightPerNamespace": "100",
}


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


@dataclass(frozen=True)
class Policy:
    trainer_image_prefixes: tuple[str, ...]
    controller_image_prefixes: tuple[str, ...]
    volume_types: tuple[str, ...]
    service_accounts: tuple[str, ...]
    priority_classes: tuple[str, ...]
    toleration_keys: tuple[str, ...]
    forbidden_env_names: tuple[str, ...]
    enforces_lists: bool
    user_code: bool = False  # userCode: everybody may run their own code in trial pods (docs/byo.md)
    # Per namespace, what runs at once (0: no bound): experiments started and not finished,
    # trials that hold a Job and have not finished (kubenas.operator.tenancy).
    max_running_experiments: int = 0
    max_trials_in_flight: int = 0

    @classmethod
    def from_data(cls, data: dict | None) -> "Policy":
        """From a ConfigMap's ``data``; keys it does not set take the shipped defaults."""
        merged = {**DEFAULTS, **{k: v for k, v in (data or {}).items() if isinstance(v, str)}}
        return cls(
            trainer_image_prefixes=_items(merged["trainerImagePrefixes"]),
            controller_image_prefixes=_items(merged["controllerImagePrefixes"]),
            volume_types=_items(merged["volumeTypes"]),
            service_accounts=_items(merged["serviceAccounts"]),
            priority_classes=_items(merged["priorityClasses"]),
            toleration_keys=_items(merged["tolerationKeys"]),
            forbidden_env_names=_items(merged["forbiddenEnvNames"]),
            enforces_lists=merged["operatorEnforcesLists"].strip().lower() == "true",
            user_code=merged["userCode"].strip().lower() == "true",
            max_running_experiments=_bound(merged, "maxRunningExperimentsPerNamespace"),
            max_trials_in_flight=_bound(merged, "maxTrialsInFlightPerNamespace"),
        )

    @classmethod
    def default(cls) -> "Policy":
        return cls.from_data(None)


def _bound(merged: dict, key: str) -> int:
    """A per-namespace bound: a whole number, 0 or empty for none. A value that is not one
    is the shipped default (a typo must not lift the bound), and the log says so."""
    text = merged[key].strip()
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    import logging

    logging.getLogger(__name__).error("%s: %s=%r is not a whole number; using the shipped %s", WHERE, key, text,
                                      DEFAULTS[key])
    return int(DEFAULTS[key])


def _allows(allowed: tuple[str, ...], value: str) -> bool:
    return "*" in allowed or value in allowed


def _listed(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed) if allowed else "(none)"


def _image_issue(path: str, image, prefixes: tuple[str, ...], key: str, what: str) -> list[Issue]:
    if image is None or any(p == "*" or str(image).startswith(p) for p in prefixes):
        return []
    allowed = " or ".join(prefixes) if prefixes else "(none is allowed)"
    return [Issue(path, f"{image} is not an allowed {what} image: use an image that starts with {allowed}, or "
                        f"leave the field unset for the operator default (a cluster admin sets {key} in {WHERE})")]


def policy_issues(spec: dict, policy: Policy) -> list[Issue]:
    """What ``spec`` (a NASExperiment spec) asks for beyond ``policy``, field by field."""
    issues: list[Issue] = []
    template = ((spec.get("trial") or {}).get("template") or {})
    controller = spec.get("controller") or {}
    base = "spec.trial.template"
    issues += _image_issue(f"{base}.image", template.get("image"), policy.trainer_image_prefixes,
                           "trainerImagePrefixes", "trainer")
    issues += _image_issue("spec.controller.image", controller.get("image"), policy.controller_image_prefixes,
                           "controllerImagePrefixes", "controller")
    for volume in template.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        bad = [k for k in volume if k != "name" and not _allows(policy.volume_types, k)]
        if bad:
            issues.append(Issue(f"{base}.volumes[name={volume.get('name')}]",
                                f"uses {', '.join(bad)}: this volume type is not allowed for trial pods; allowed are "
                                f"{_listed(policy.volume_types)}: remove the volume or use an allowed type (a cluster "
                                f"admin sets volumeTypes in {WHERE})"))
    for item in template.get("env") or []:
        name = item.get("name") if isinstance(item, dict) else None
        if name in policy.forbidden_env_names:
            issues.append(Issue(f"{base}.env[name={name}]",
                                f"{name} changes what code the trainer image runs and may not be set; remove it (a "
                                f"cluster admin sets forbiddenEnvNames in {WHERE})"))
    for field_ in ("labels", "annotations"):
        owned = sorted(k for k in (template.get(field_) or {}) if str(k).startswith(OPERATOR_PREFIX))
        if owned:
            issues.append(Issue(f"{base}.{field_}", f"{', '.join(owned)}: {OPERATOR_PREFIX} keys are set by the "
                                                    "kubenas operator only; remove them"))
    if not policy.enforces_lists:
        return issues
    beyond = (f"is not in {{key}} of {WHERE}, and this cluster's operator enforces the lists without exceptions "
              "(operatorEnforcesLists): ask a cluster admin to list it, or leave the field unset")
    account = template.get("serviceAccountName")
    if account is not None and not _allows(policy.service_accounts, account):
        issues.append(Issue(f"{base}.serviceAccountName", f"{account} " + beyond.format(key="serviceAccounts")))
    priority = template.get("priorityClassName")
    if priority is not None and not _allows(policy.priority_classes, priority):
        issues.append(Issue(f"{base}.priorityClassName", f"{priority} " + beyond.format(key="priorityClasses")))
    for toleration in template.get("tolerations") or []:
        key = (toleration or {}).get("key") or ""
        if not _allows(policy.toleration_keys, key):
            issues.append(Issue(f"{base}.tolerations[key={key}]",
                                f"{'a toleration without a key' if not key else key} "
                                + beyond.format(key="tolerationKeys")))
    if not policy.user_code:
        issues += [Issue(path, "runs code of the author's choosing in the trial pods, and this cluster's operator "
                               "enforces the policy without exceptions (operatorEnforcesLists) while userCode is not "
                               f"\"true\" in {WHERE}: ask a cluster admin, or use the built-in trainer")
                   for path in user_code_fields(spec)]
    return issues


def user_code_fields(spec: dict) -> list[str]:
    """The fields of ``spec`` that run the author's own code in the trial pods (docs/byo.md)."""
    trial = spec.get("trial") or {}
    fields = [("spec.trial.command", trial.get("command")),
              ("spec.trial.model.builder", (trial.get("model") or {}).get("builder")),
              ("spec.trial.dataset.loader", (trial.get("dataset") or {}).get("loader"))]
    return [path for path, value in fields if value]
