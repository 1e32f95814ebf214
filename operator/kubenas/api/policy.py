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

Some rules hold for everybody, whoever asks, and both enforcers apply them: image
references are parsed (kubenas.api.images) and matched on registry and repository path;
no volume or mount named ``kubenas-*`` and no mount over kubenas' own paths (the API token
under ``/var/run/secrets``, the artifacts volume) or the ``protectedMountPaths`` of the
image (the Python installation, the trainer's code, ``/etc``, ...); no environment
variable of ``forbiddenEnvNames``; no AppArmor or seccomp profile but the runtime's
default or a node's ``localhost/`` one; no emptyDir above ``emptyDirSizeLimit``. Other
rules are the user-code gate (``create pods`` in the namespace, or ``userCode: "true"``):
a mount outside ``mountPathPrefixes`` and an environment variable outside ``envNames``
change what code the trainer runs, exactly like ``spec.trial.command`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubenas.api.images import image_allowed, parse_image
from kubenas.api.issues import Issue
from kubenas.api.quantities import parse_quantity
from kubenas.contract import artifacts as artifacts_contract

POLICY_NAMESPACE = "kubenas-system"
POLICY_NAME = "kubenas-admission-policy"
WHERE = f"ConfigMap {POLICY_NAMESPACE}/{POLICY_NAME}"
OPERATOR_PREFIX = "kubenas.io/"

# What deploy/admission-params.yaml ships (tests/api/test_policy.py keeps them equal):
# the operator's policy when the ConfigMap cannot be read.
DEFAULTS = {
    "trainerImagePrefixes": "ghcr.io/kubenas/",
    "controllerImagePrefixes": "ghcr.io/kubenas/",
    "volumeTypes": "emptyDir, configMap, secret, persistentVolumeClaim",
    "serviceAccounts": "kubenas-trainer",
    "priorityClasses": "",
    "tolerationKeys": "nvidia.com/gpu",
    "forbiddenEnvNames": ("LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, "
                          "PYTHONUSERBASE, PYTHONINSPECT"),
    "requireJobCreate": "false",
    "operatorEnforcesLists": "false",
    "userCode": "false",
    "mountPathPrefixes": "/data, /mnt, /scratch",
    "protectedMountPaths": "/bin, /boot, /dev, /etc, /home, /lib, /lib32, /lib64, /opt, /proc, /root, /run, /sbin, /srv, "
                           "/sys, /tmp, /usr, /var",
    "envNames": ("KUBENAS_USER_*, KUBENAS_MODEL_DIR, KUBENAS_REPORT_INTERVAL_SECONDS, OMP_NUM_THREADS, MKL_NUM_THREADS, "
                 "OPENBLAS_NUM_THREADS, CUDA_VISIBLE_DEVICES, CUDA_LAUNCH_BLOCKING, CUBLAS_WORKSPACE_CONFIG, "
                 "PYTORCH_CUDA_ALLOC_CONF, PYTHONHASHSEED, NCCL_DEBUG, TZ"),
    "emptyDirSizeLimit": "100Gi",
    "operatorAllowsUncheckedReferences": "false",
    "allowAmbientCredentials": "false",
    # Per-namespace bounds, the operator's alone (kubenas.operator.tenancy): "0" or "" for none.
    "maxRunningExperimentsPerNamespace": "20",
    "maxTrialsInFlightPerNamespace": "100",
}

# Kubernetes' and kubenas' own places in every trial pod, for nobody to mount over, under
# or above, whatever the policy: the trial's API token (the ServiceAccount token path;
# /var/run is /run in most images) and the artifacts volume.
RESERVED_MOUNT_PATHS = ("/var/run/secrets", "/run/secrets", artifacts_contract.MOUNT_PATH)
RESERVED_NAME_PREFIX = "kubenas-"  # the operator's volumes (kubenas-api-token, kubenas-artifacts)
# A template may bring its own scratch space here: an emptyDir mounted at exactly this path.
SCRATCH_PATHS = ("/tmp", "/dev/shm")
APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
SECCOMP_KEYS = ("seccomp.security.alpha.kubernetes.io/pod", "container.seccomp.security.alpha.kubernetes.io/")


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


@dataclass(frozen=True)
class TenancyPolicy:
    trainer_image_prefixes: tuple[str, ...]
    controller_image_prefixes: tuple[str, ...]
    volume_types: tuple[str, ...]
    service_accounts: tuple[str, ...]
    priority_classes: tuple[str, ...]
    toleration_keys: tuple[str, ...]
    forbidden_env_names: tuple[str, ...]
    enforces_lists: bool
    user_code: bool = False  # userCode: everybody may run their own code in trial pods (docs/byo.md)
    mount_path_prefixes: tuple[str, ...] = ()
    protected_mount_paths: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()          # a name, or a prefix ending in *
    empty_dir_size_limit: str = DEFAULTS["emptyDirSizeLimit"]
    allows_unchecked_references: bool = False  # without a known requester (reference_issues)
    # spec.artifacts.url without credentialsSecret: the store is reached with whatever the
    # node or pod has (instance profile, Workload Identity), not the author's own Secret.
    allows_ambient_credentials: bool = False
    # Per namespace, what runs at once (0: no bound): experiments started and not finished,
    # trials that hold a Job and have not finished (kubenas.operator.tenancy).
    max_running_experiments: int = 0
    max_trials_in_flight: int = 0

    @classmethod
    def from_data(cls, data: dict | None) -> "TenancyPolicy":
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
            mount_path_prefixes=tuple(_folder(p) for p in _items(merged["mountPathPrefixes"])),
            protected_mount_paths=tuple(_folder(p) for p in _items(merged["protectedMountPaths"])),
            env_names=_items(merged["envNames"]),
            empty_dir_size_limit=merged["emptyDirSizeLimit"].strip(),
            allows_unchecked_references=merged["operatorAllowsUncheckedReferences"].strip().lower() == "true",
            allows_ambient_credentials=merged["allowAmbientCredentials"].strip().lower() == "true",
            max_running_experiments=_bound(merged, "maxRunningExperimentsPerNamespace"),
            max_trials_in_flight=_bound(merged, "maxTrialsInFlightPerNamespace"),
        )

    @classmethod
    def default(cls) -> "TenancyPolicy":
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


def _folder(path: str) -> str:
    """A path of the policy without a trailing / (``/data/`` is ``/data``)."""
    return path.rstrip("/") or "/"


def _allows(allowed: tuple[str, ...], value: str) -> bool:
    return "*" in allowed or value in allowed


def _listed(allowed: tuple[str, ...]) -> str:
    return ", ".join(allowed) if allowed else "(none)"


def _image_issue(path: str, image, prefixes: tuple[str, ...], key: str, what: str) -> list[Issue]:
    if image is None:
        return []
    reference = parse_image(image)
    if reference is None:
        return [Issue(path, f"{image} is not an image reference: write registry/repository[:tag][@digest], with "
                            "lower-case path components between single slashes (no '..', no empty component)")]
    if image_allowed(reference, prefixes):
        return []
    allowed = " or ".join(prefixes) if prefixes else "(none is allowed)"
    return [Issue(path, f"{image} is not an allowed {what} image: use an image under {allowed} (registry and "
                        "repository path, compared component by component), or leave the field unset for the "
                        f"operator default (a cluster admin sets {key} in {WHERE})")]


def _under(path: str, folder: str) -> bool:
    return folder == "/" or path == folder or path.startswith(folder + "/")


def _overlaps(path: str, other: str) -> bool:
    """``path`` is ``other``, inside it, or a folder above it (a mount there hides it)."""
    return _under(path, other) or _under(other, path)


def _canonical(path) -> bool:
    return (isinstance(path, str) and re.fullmatch(r"(/[^/]+)+", path) is not None
            and not any(part in (".", "..") for part in path.split("/")))


def _descending(sub) -> bool:
    return sub is None or (isinstance(sub, str) and not sub.startswith("/") and ".." not in sub.split("/"))


def _mounts(template: dict) -> list[dict]:
    return [m for m in template.get("volumeMounts") or [] if isinstance(m, dict)]


def _scratch(mount: dict, volumes: dict) -> bool:
    """The template's own /tmp or /dev/shm: an emptyDir at exactly that path."""
    return (mount.get("mountPath") in SCRATCH_PATHS and not mount.get("subPath") and not mount.get("subPathExpr")
            and "emptyDir" in volumes.get(mount.get("name"), {}))


def _volumes(template: dict) -> dict:
    return {v.get("name"): v for v in template.get("volumes") or [] if isinstance(v, dict)}


def mount_issues(template: dict, policy: TenancyPolicy) -> list[Issue]:
    """Mounts nobody may ask for: reserved names, a path that is not plain, kubenas' own
    paths, and what the image needs (``protectedMountPaths``)."""
    base, issues = "spec.trial.template", []
    for what, items in (("volumes", template.get("volumes") or []), ("volumeMounts", _mounts(template))):
        for item in items:
            name = str((item or {}).get("name", ""))
            if name.startswith(RESERVED_NAME_PREFIX):
                issues.append(Issue(f"{base}.{what}[name={name}].name",
                                    f"names starting with {RESERVED_NAME_PREFIX} are kubenas' own volumes (the trial's "
                                    "API token, the artifacts volume): choose another name"))
    volumes = _volumes(template)
    for mount in _mounts(template):
        field, path = f"{base}.volumeMounts[name={mount.get('name')}]", mount.get("mountPath")
        if not _canonical(path):
            issues.append(Issue(f"{field}.mountPath", f"{path} is not a plain absolute path: write it as /folder/... "
                                                      "without '.', '..', '//' or a trailing /"))
            continue
        for key in ("subPath", "subPathExpr"):
            if not _descending(mount.get(key)):
                issues.append(Issue(f"{field}.{key}", f"{mount.get(key)} must be a relative path inside the volume, "
                                                      "without '..'"))
        reserved = [q for q in RESERVED_MOUNT_PATHS if _overlaps(path, q)]
        if reserved:
            issues.append(Issue(f"{field}.mountPath", f"{path} would cover {reserved[0]}, where kubenas mounts the "
                                                      "trial's own API token and artifacts: mount it under one of "
                                                      f"{_listed(policy.mount_path_prefixes)}"))
        elif not _scratch(mount, volumes) and any(_overlaps(path, q) for q in policy.protected_mount_paths):
            hit = next(q for q in policy.protected_mount_paths if _overlaps(path, q))
            issues.append(Issue(f"{field}.mountPath", f"{path} would cover {hit}, which the trainer image needs (its "
                                                      "code, Python, system files; protectedMountPaths in "
                                                      f"{WHERE}): mount it under one of "
                                                      f"{_listed(policy.mount_path_prefixes)}"))
    return issues


def outside_mounts(template: dict, policy: TenancyPolicy) -> list[dict]:
    """The mounts outside ``mountPathPrefixes`` (and not a scratch emptyDir): code, like
    spec.trial.command, since a file there can replace what the trainer runs."""
    if "*" in policy.mount_path_prefixes:
        return []
    volumes = _volumes(template)
    return [m for m in _mounts(template) if _canonical(m.get("mountPath")) and not _scratch(m, volumes)
            and not any(_under(str(m.get("mountPath")), q) for q in policy.mount_path_prefixes)]


def env_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    """``name`` is one of ``allowed``, or starts with an item ending in ``*``."""
    return any(name.startswith(a[:-1]) if a.endswith("*") else name == a for a in allowed)


def outside_env(template: dict, policy: TenancyPolicy) -> list[str]:
    """The template's environment variables outside ``envNames``: they may change what
    code the trainer runs (PYTHONWARNINGS imports a module, for one)."""
    return [str(e.get("name")) for e in template.get("env") or []
            if isinstance(e, dict) and not env_allowed(str(e.get("name")), policy.env_names)]


def _profile_allowed(key: str, value) -> bool | None:
    """None if ``key`` is no AppArmor or seccomp annotation; else whether ``value`` is the
    runtime's default or a profile installed on the node (the `restricted` Pod Security
    standard's rule)."""
    value = str(value)
    localhost = value.startswith("localhost/") and len(value) > len("localhost/")
    if key.startswith(APPARMOR_PREFIX):
        return value == "runtime/default" or localhost
    if key == SECCOMP_KEYS[0] or key.startswith(SECCOMP_KEYS[1]):
        return value in ("runtime/default", "docker/default") or localhost
    return None


def pod_issues(template: dict, policy: TenancyPolicy) -> list[Issue]:
    """AppArmor and seccomp annotations and emptyDir sizes, for everybody."""
    base, issues = "spec.trial.template", []
    for key, value in (template.get("annotations") or {}).items():
        if _profile_allowed(str(key), value) is False:
            issues.append(Issue(f"{base}.annotations[{key}]",
                                f"{value} is not allowed: trial pods run with the runtime's default profile "
                                "(runtime/default) or one installed on the nodes (localhost/<profile>); remove it"))
    limit = parse_quantity(policy.empty_dir_size_limit)
    for name, volume in _volumes(template).items():
        empty_dir = volume.get("emptyDir")
        size = empty_dir.get("sizeLimit") if isinstance(empty_dir, dict) else None
        if size is None:
            continue
        amount = parse_quantity(size)
        if amount is None or limit is None or amount > limit:
            issues.append(Issue(f"{base}.volumes[name={name}].emptyDir.sizeLimit",
                                f"{size} is above {policy.empty_dir_size_limit}, the most an emptyDir of a trial pod may "
                                f"hold (on disk or, with medium Memory, in memory; emptyDirSizeLimit in {WHERE}): "
                                "ask for less, or use a PersistentVolumeClaim"))
    return issues


def ambient_credentials_issues(spec: dict, policy: TenancyPolicy) -> list[Issue]:
    """spec.artifacts.url without credentialsSecret (gs takes none): the trial pods would
    use whatever credentials the node or the pod has, a bucket the author was never given;
    for everybody, unless the admin allows it (allowAmbientCredentials)."""
    artifacts = spec.get("artifacts") or {}
    url = artifacts.get("url")
    if not url or artifacts.get("credentialsSecret") or policy.allows_ambient_credentials:
        return []
    return [Issue("spec.artifacts.credentialsSecret",
                  f"{url} without credentialsSecret would be reached with the ambient credentials of the node or the "
                  f"trial pod (an instance profile, Workload Identity), which this cluster does not allow: name a "
                  f"Secret with the store's credentials in credentialsSecret (s3, az), or ask a cluster admin to set "
                  f"allowAmbientCredentials: \"true\" in {WHERE}")]


def policy_issues(spec: dict, policy: TenancyPolicy) -> list[Issue]:
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
    issues += mount_issues(template, policy)
    issues += pod_issues(template, policy)
    issues += ambient_credentials_issues(spec, policy)
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
        gate = ("changes what code the trial pod runs, and this cluster's operator enforces the policy without "
                f"exceptions (operatorEnforcesLists) while userCode is not \"true\" in {WHERE}: ")
        issues += [Issue(f"{base}.volumeMounts[name={m.get('name')}].mountPath",
                         f"{m.get('mountPath')} is outside {_listed(policy.mount_path_prefixes)} and " + gate
                         + "mount it under one of those (mountPathPrefixes)")
                   for m in outside_mounts(template, policy)]
        issues += [Issue(f"{base}.env[name={name}]", f"{name} is not in envNames and " + gate
                         + "use a name of envNames (KUBENAS_USER_ names are yours), or ask a cluster admin")
                   for name in outside_env(template, policy)]
    return issues


def user_code_fields(spec: dict) -> list[str]:
    """The fields of ``spec`` that run the author's own code in the trial pods (docs/byo.md)."""
    trial = spec.get("trial") or {}
    fields = [("spec.trial.command", trial.get("command")),
              ("spec.trial.model.builder", (trial.get("model") or {}).get("builder")),
              ("spec.trial.model.supernet", (trial.get("model") or {}).get("supernet")),
              ("spec.trial.dataset.loader", (trial.get("dataset") or {}).get("loader"))]
    return [path for path, value in fields if value]


# ------------------------------------------------ the requester, without admission policies

# Who created an experiment, stamped by the MutatingAdmissionPolicy of deploy/requester/
# (Kubernetes 1.36+) from the API server's own request.userInfo, and put back as it was on
# every update; the operator believes it only on experiments created after that policy's
# binding existed (REQUESTER_POLICY), with a margin for the API server to load it.
CREATED_BY = "kubenas.io/created-by"
CREATED_BY_GROUPS = "kubenas.io/created-by-groups"  # one group per line
REQUESTER_POLICY = "kubenas-created-by"
REQUESTER_POLICY_MARGIN_SECONDS = 10


@dataclass(frozen=True)
class Reference:
    """A namespaced object the trial pods would read: resource is the API plural."""
    field: str
    resource: str  # secrets, configmaps, persistentvolumeclaims
    name: str


@dataclass(frozen=True)
class Requester:
    user: str
    groups: tuple[str, ...] = ()


def references(spec: dict) -> list[Reference]:
    """Every Secret, ConfigMap and PersistentVolumeClaim the trial pods of ``spec`` would
    read (the same list the admission policy checks the requester's get right on)."""
    base = "spec.trial.template"
    template = ((spec.get("trial") or {}).get("template") or {})
    found: list[Reference] = []
    for volume in template.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        field = f"{base}.volumes[name={volume.get('name')}]"
        for key, resource, name_key in (("secret", "secrets", "secretName"), ("configMap", "configmaps", "name"),
                                        ("persistentVolumeClaim", "persistentvolumeclaims", "claimName")):
            if isinstance(volume.get(key), dict):
                found.append(Reference(f"{field}.{key}", resource, str(volume[key].get(name_key) or "")))
        for source in ((volume.get("projected") or {}).get("sources") or []) if isinstance(volume.get("projected"),
                                                                                         dict) else []:
            for key, resource in (("secret", "secrets"), ("configMap", "configmaps")):
                if isinstance((source or {}).get(key), dict):
                    found.append(Reference(f"{field}.projected.{key}", resource, str(source[key].get("name") or "")))
    for item in template.get("env") or []:
        value_from = (item or {}).get("valueFrom") if isinstance(item, dict) else None
        for key, resource in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if isinstance((value_from or {}).get(key), dict):
                found.append(Reference(f"{base}.env[name={item.get('name')}].valueFrom.{key}", resource,
                                       str(value_from[key].get("name") or "")))
    for secret in template.get("imagePullSecrets") or []:
        found.append(Reference(f"{base}.imagePullSecrets[name={(secret or {}).get('name')}]", "secrets",
                               str((secret or {}).get("name") or "")))
    artifacts = spec.get("artifacts") or {}
    if isinstance(artifacts.get("persistentVolumeClaim"), dict):
        found.append(Reference("spec.artifacts.persistentVolumeClaim.claimName", "persistentvolumeclaims",
                               str(artifacts["persistentVolumeClaim"].get("claimName") or "")))
    if artifacts.get("credentialsSecret"):
        found.append(Reference("spec.artifacts.credentialsSecret", "secrets", str(artifacts["credentialsSecret"])))
    return found


def reference_issues(refs: list[Reference], requester: Requester | None, may_get, policy: TenancyPolicy) -> list[Issue]:
    """The operator's own check of the requester's right to what the trial pods would
    read, on a cluster without the admission policies (``operatorEnforcesLists``):
    ``may_get(requester, reference)`` asks the API server (a SubjectAccessReview). An
    unknown requester gets no reference unless ``operatorAllowsUncheckedReferences``."""
    if not refs or not policy.enforces_lists:
        return []
    if requester is None:
        if policy.allows_unchecked_references:
            return []
        return [Issue(r.field, f"the trial pods would read {_KINDS[r.resource]} {r.name}, and the operator cannot tell "
                               "who created this experiment to check their right to get it (no admission policy records "
                               "the requester: install deploy/requester/ on Kubernetes 1.36+, or a cluster admin sets "
                               f"operatorAllowsUncheckedReferences in {WHERE}): remove it")
                for r in refs]
    return [Issue(r.field, f"{requester.user} may not get {_KINDS[r.resource]} {r.name} in this namespace, so the trial "
                           "pods may not read it on their behalf: ask a namespace admin for get on it, or remove it")
            for r in refs if not may_get(requester, r)]


_KINDS = {"secrets": "Secret", "configmaps": "ConfigMap", "persistentvolumeclaims": "PersistentVolumeClaim"}
