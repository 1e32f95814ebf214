"""Pure functions that build the objects only the operator creates (no API calls here):
trial Jobs, controller Deployments, per-namespace identities. Names, labels and the
objects the controller builds too live in kubenas.cluster.objects.

Each builder returns a plain dict ready for the API server; tests deserialize them into
the official client's models (V1Job, V1Deployment, ...) and check names and labels
against Kubernetes' limits.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field

from kubenas.cluster.objects import (
    LABEL_COMPONENT,
    LABEL_EXPERIMENT,
    LABEL_INDEX,
    LABEL_MANAGED_BY,
    LABEL_PART_OF,
    LABEL_TRIAL,
    MANAGED_BY,
    common_labels,
    experiment_uid,
    label_value,
    owned_by_experiment,
    owner_reference,
)
from kubenas.cluster.intervals import CONTROLLER_POLL_ENV, CONTROLLER_POLL_SECONDS
from kubenas.contract import FINAL_EXIT_CODES, TRIAL_KIND
from kubenas.contract import artifacts as art

from .distributed import launch_command

KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

TRAINER_CONTAINER = "trainer"
CONTROLLER_CONTAINER = "controller"
TRAINER_COMMAND = ["kubenas-train", "--from-cluster"]
# spec.trial.command runs under the wrapper, which reports for it (docs/byo.md).
USER_COMMAND_WRAPPER = ["kubenas-trial", "--from-cluster", "--"]
TRAINER_SERVICE_ACCOUNT = "kubenas-trainer"
CONTROLLER_SERVICE_ACCOUNT = "kubenas-controller"
TRAINER_CLUSTER_ROLE = "kubenas-trainer"
CONTROLLER_CLUSTER_ROLE = "kubenas-controller"
# Trainer exit codes that are final answers (docs/formats.md): never retried.
TRAINER_FINAL_EXIT_CODES = list(FINAL_EXIT_CODES)

NON_ROOT_UID = 65532
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": NON_ROOT_UID,
    "runAsGroup": NON_ROOT_UID,
    "fsGroup": NON_ROOT_UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}

@dataclass(frozen=True)
class Settings:
    """Operator-wide settings (from the operator Deployment's environment)."""

    trainer_image: str = "ghcr.io/kubenas/kubenas-trainer:0.1.0"
    controller_image: str = "ghcr.io/kubenas/kubenas-operator:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    job_ttl_seconds: int = 86400
    controller_resources: dict = field(default_factory=lambda: {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    })
    # How often, at least, the controller pod makes a pass (it also wakes on every trial change it watches).
    controller_poll_seconds: float = CONTROLLER_POLL_SECONDS
    # How often, at most, the controller writes its strategy checkpoint (seconds).
    controller_checkpoint_seconds: float = 60.0
    # Requests a trainer container gets for cpu/memory its template leaves unset (no
    # BestEffort pods, first to be evicted and invisible to quotas and autoscalers).
    trainer_default_requests: dict = field(default_factory=lambda: {"cpu": "1", "memory": "2Gi"})
    # sizeLimit of emptyDir volumes of trial pods that set none (/tmp, and the template's).
    scratch_size_limit: str = "20Gi"
    # sizeLimit of the memory-backed /dev/shm (counts against the pod's memory).
    shm_size_limit: str = "2Gi"
    # Where the cluster admin's policy ConfigMap kubenas-admission-policy lives.
    policy_namespace: str = "kubenas-system"

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        default = cls()
        return cls(
            trainer_image=env.get("KUBENAS_TRAINER_IMAGE", default.trainer_image),
            controller_image=env.get("KUBENAS_CONTROLLER_IMAGE", default.controller_image),
            image_pull_policy=env.get("KUBENAS_IMAGE_PULL_POLICY", default.image_pull_policy),
            job_ttl_seconds=int(env.get("KUBENAS_JOB_TTL_SECONDS", default.job_ttl_seconds)),
            controller_poll_seconds=float(env.get(CONTROLLER_POLL_ENV,
                                                  default.controller_poll_seconds)),
            controller_checkpoint_seconds=float(env.get("KUBENAS_CONTROLLER_CHECKPOINT_SECONDS",
                                                        default.controller_checkpoint_seconds)),
            trainer_default_requests={k: v for k, v in (
                ("cpu", env.get("KUBENAS_TRAINER_DEFAULT_CPU", default.trainer_default_requests["cpu"])),
                ("memory", env.get("KUBENAS_TRAINER_DEFAULT_MEMORY", default.trainer_default_requests["memory"])),
            ) if v},
            scratch_size_limit=env.get("KUBENAS_SCRATCH_SIZE_LIMIT", default.scratch_size_limit),
            shm_size_limit=env.get("KUBENAS_SHM_SIZE_LIMIT", default.shm_size_limit),
            policy_namespace=env.get("KUBENAS_POLICY_NAMESPACE", env.get("POD_NAMESPACE", default.policy_namespace)),
        )


def quantities(resources: dict | None) -> dict:
    """Resource requirements with every quantity as a string ("1", "500m", "2Gi"), as
    core/v1 ResourceRequirements wants them (YAML lets users write `nvidia.com/gpu: 1`)."""
    out = {}
    for key in ("limits", "requests"):
        values = (resources or {}).get(key)
        if values:
            out[key] = {name: str(value) for name, value in values.items()}
    for key, value in (resources or {}).items():
        if key not in ("limits", "requests"):
            out[key] = copy.deepcopy(value)
    return out


def controller_name(experiment: str) -> str:
    return f"{experiment}-controller"


# --------------------------------------------------------------------------- trial Job


def _trainer_env(trial_name: str, template_env: list, artifacts_env: list = ()) -> list:
    env = [
        {"name": "KUBENAS_TRIAL", "value": trial_name},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # The root filesystem is read-only: caches (torch, matplotlib, sklearn) go to /tmp.
        {"name": "HOME", "value": "/tmp"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "MPLCONFIGDIR", "value": "/tmp/.matplotlib"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        *copy.deepcopy(list(artifacts_env)),
    ]
    ours = {e["name"] for e in env}
    # The user's env may add variables but never replace the ones the trainer relies on.
    env += [copy.deepcopy(e) for e in template_env or [] if e.get("name") not in ours]
    return env


def trial_command(spec: dict) -> list[str]:
    """The trial container's command: the built-in trainer, or the user's program
    (spec.trial.command, admitted by deploy/admission.yaml) under ``kubenas-trial``."""
    command = spec["trial"].get("command")
    return [*USER_COMMAND_WRAPPER, *command] if command else list(TRAINER_COMMAND)


TOKEN_VOLUME = "kubenas-api-token"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"  # where in-cluster clients look
TOKEN_SECONDS = 600  # the API server's minimum; bound to the pod, renewed by the kubelet at 80 %


def token_volume() -> dict:
    """What the ServiceAccount admission plugin would mount (kube-api-access-*), with a
    10-minute token."""
    return {"name": TOKEN_VOLUME, "projected": {"defaultMode": 0o444, "sources": [
        {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def with_default_requests(resources: dict, defaults: dict) -> dict:
    """``resources`` with a request for each default resource it neither requests nor
    limits (a limit alone makes the API server request the same)."""
    missing = {k: v for k, v in defaults.items()
               if k not in (resources.get("requests") or {}) and k not in (resources.get("limits") or {})}
    if not missing:
        return resources
    return {**resources, "requests": {**missing, **(resources.get("requests") or {})}}


def credential_env(artifacts: dict) -> list:
    """An object store's credentials from ``spec.artifacts.credentialsSecret`` as env
    (secretKeyRef), one variable per name its fsspec backend reads
    (kubenas.contract.artifacts.CREDENTIAL_VARIABLES), each optional; none without a Secret."""
    secret = artifacts.get("credentialsSecret")
    if not secret or not artifacts.get("url"):
        return []
    return [{"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": var, "optional": True}}}
            for var in art.CREDENTIAL_VARIABLES[art.scheme(artifacts["url"])]]


def artifacts_pod_parts(spec: dict, experiment: str, uid: str | None) -> tuple[list, list, list]:
    """The trainer's (env, volumes, volumeMounts) for ``spec.artifacts``; all empty
    without it. A claim is mounted by subPath at the experiment's folder only (named
    with the experiment's ``uid``: kubenas.contract.artifacts.experiment_folder); an object
    store's credentials come as env from secretKeyRef, one variable per name its fsspec
    backend reads (kubenas.contract.artifacts.CREDENTIAL_VARIABLES), each optional."""
    artifacts = spec.get("artifacts")
    if not artifacts:
        return [], [], []
    root = art.trainer_root(artifacts, experiment, uid)
    env = [{"name": k, "value": v} for k, v in art.trainer_env(artifacts, experiment, root, uid).items()]
    if artifacts.get("url"):
        return env + credential_env(artifacts), [], []
    volumes = [{"name": art.VOLUME_NAME,
                "persistentVolumeClaim": {"claimName": artifacts["persistentVolumeClaim"]["claimName"]}}]
    mounts = [{"name": art.VOLUME_NAME, "mountPath": art.MOUNT_PATH,
               "subPath": art.pvc_sub_path(artifacts, experiment, uid)}]
    return env, volumes, mounts


def job_for_trial(trial: dict, spec: dict, settings: Settings = Settings()) -> dict:
    """The batch/v1 Job that trains one NASTrial.

    `trial` is the NASTrial object (its uid owns the Job); `spec` the experiment's
    accepted spec with defaults (``kubenas.api.defaults.with_defaults``: read plainly
    here), whose ``trial.template`` shapes the pod.
    """
    meta = trial["metadata"]
    template = spec["trial"]["template"]
    labels = trainer_labels(trial)
    job_labels = dict(labels)
    if template.get("queueName"):
        job_labels[KUEUE_QUEUE_LABEL] = label_value(template["queueName"])
    job_spec = {
        "backoffLimit": int(spec["budget"]["maxRetries"]),
        "activeDeadlineSeconds": int(trial["spec"].get("timeoutSeconds") or spec["budget"]["trialTimeoutSeconds"]),
        "ttlSecondsAfterFinished": settings.job_ttl_seconds,
        "podFailurePolicy": copy.deepcopy(POD_FAILURE_POLICY),
        "template": {
            "metadata": {"labels": {**(template.get("labels") or {}), **labels},
                         "annotations": copy.deepcopy(template.get("annotations") or {})},
            "spec": trainer_pod_spec(trial, spec, settings),
        },
    }
    if template.get("queueName"):
        job_spec["suspend"] = True  # Kueue admits (unsuspends) it
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": job_labels,
            "ownerReferences": [owner_reference({**trial, "kind": trial.get("kind", TRIAL_KIND)})],
        },
        "spec": job_spec,
    }


# Trainer exit codes are final answers (a bad architecture is not retried). Evictions and
# preemptions (pod condition DisruptionTarget: spot reclaim, node drain, Kueue/priority
# preemption) are retried, up to backoffLimit = budget.maxRetries, and show as
# status.retries on the trial. Servers older than 1.26 drop this field and count every
# pod failure against backoffLimit.
POD_FAILURE_POLICY = {"rules": [
    {"action": "FailJob",
     "onExitCodes": {"containerName": TRAINER_CONTAINER, "operator": "In", "values": list(TRAINER_FINAL_EXIT_CODES)}},
    {"action": "Count", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
]}


def trainer_labels(trial: dict) -> dict:
    """The labels of a trial's Job and pod: kubenas' own, the experiment, trial and index."""
    labels = common_labels("trainer", trial["spec"]["experiment"])
    labels[LABEL_TRIAL] = label_value(trial["metadata"]["name"])
    labels[LABEL_INDEX] = str(trial["spec"].get("index", ""))
    return labels


def trainer_pod_spec(trial: dict, spec: dict, settings: Settings) -> dict:
    """The trial pod's spec: the trainer container, its volumes, the template's scheduling."""
    template = spec["trial"]["template"]
    artifacts_env, artifacts_volumes, artifacts_mounts = artifacts_pod_parts(
        spec, trial["spec"]["experiment"], experiment_uid(trial))
    volumes, mounts = trainer_volumes(template, settings)
    container = {
        "name": TRAINER_CONTAINER,
        "image": template.get("image") or settings.trainer_image,
        "imagePullPolicy": template.get("imagePullPolicy") or settings.image_pull_policy,
        "command": launch_command(spec, trial_command(spec), USER_COMMAND_WRAPPER),  # torchrun: distributed.py
        "env": _trainer_env(trial["metadata"]["name"], template.get("env") or [], artifacts_env),
        "resources": with_default_requests(quantities(template.get("resources")), settings.trainer_default_requests),
        "volumeMounts": mounts + artifacts_mounts,
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    pod_spec = {
        "restartPolicy": "Never",
        "serviceAccountName": template.get("serviceAccountName") or TRAINER_SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
        "containers": [container],
        "volumes": volumes + artifacts_volumes,
        "enableServiceLinks": False,
    }
    for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"):
        if template.get(key):
            pod_spec[key] = copy.deepcopy(template[key])
    return pod_spec


def trainer_volumes(template: dict, settings: Settings) -> tuple[list, list]:
    """The trainer's volumes and mounts: a writable /tmp and a /dev/shm for data loaders
    (unless the template brings its own), the API token, then the template's."""
    user_volumes = copy.deepcopy(template.get("volumes") or [])
    user_mounts = copy.deepcopy(template.get("volumeMounts") or [])
    taken_names = {v.get("name") for v in user_volumes}
    taken_paths = {m.get("mountPath") for m in user_mounts}
    volumes, mounts = [], []
    for vol_name, path, source in (("tmp", "/tmp", {"sizeLimit": settings.scratch_size_limit}),
                                   ("dshm", "/dev/shm", {"medium": "Memory", "sizeLimit": settings.shm_size_limit})):
        if vol_name not in taken_names and path not in taken_paths:
            volumes.append({"name": vol_name, "emptyDir": source})
            mounts.append({"name": vol_name, "mountPath": path})
    for volume in user_volumes:  # a scratch volume without a bound could fill the node's disk
        if isinstance(volume.get("emptyDir"), dict) and not volume["emptyDir"].get("sizeLimit"):
            volume["emptyDir"]["sizeLimit"] = (settings.shm_size_limit if volume["emptyDir"].get("medium") == "Memory"
                                               else settings.scratch_size_limit)
    # The trainer's API token, in the trainer container only and short-lived (the kubelet
    # renews it; the client rereads it): not the pod-wide automounted one, which clusters
    # that extend token expiry keep valid for a year in whatever the user's image does.
    volumes.append(token_volume())
    mounts.append({"name": TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True})
    return volumes + user_volumes, mounts + user_mounts


# ------------------------------------------------------------------ controller Deployment


CONTROLLER_METRICS_PORT = 9091  # kubenas.controller.metrics; scraped by the PodMonitor


def controller_image(spec: dict, settings: Settings) -> str:
    """The controller image: spec.controller.image, else the operator's default.

    The reinforce strategy needs torch, which only the trainer image has.
    """
    image = (spec.get("controller") or {}).get("image")
    if image:
        return image
    if (spec.get("strategy") or {}).get("type") == "reinforce":
        return settings.trainer_image
    return settings.controller_image


def controller_deployment(experiment: dict, spec: dict, settings: Settings = Settings()) -> dict:
    """The experiment's controller: one pod running `kubenas controller`.

    Recreate, so that a spec-triggered rollout never runs two controllers at once.
    """
    meta = experiment["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    labels = common_labels("controller", name)
    selector = {LABEL_EXPERIMENT: labels[LABEL_EXPERIMENT], LABEL_COMPONENT: "controller"}
    ctl = spec.get("controller") or {}
    resources = quantities(ctl.get("resources") or settings.controller_resources)
    container = {
        "name": CONTROLLER_CONTAINER,
        "image": controller_image(spec, settings),
        "imagePullPolicy": ctl.get("imagePullPolicy") or settings.image_pull_policy,
        "command": ["kubenas", "controller", "--namespace", namespace, "--experiment", name],
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": CONTROLLER_POLL_ENV, "value": str(settings.controller_poll_seconds)},
            {"name": "KUBENAS_CONTROLLER_CHECKPOINT_SECONDS", "value": str(settings.controller_checkpoint_seconds)},
            {"name": "KUBENAS_CONTROLLER_METRICS_PORT", "value": str(CONTROLLER_METRICS_PORT)},
            {"name": "HOME", "value": "/tmp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "resources": resources,
        "ports": [{"name": "metrics", "containerPort": CONTROLLER_METRICS_PORT}],
        # The controller's API token as the trainer's: this container only, 10 minutes, renewed.
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         {"name": TOKEN_VOLUME, "mountPath": TOKEN_PATH, "readOnly": True}],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": controller_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": owned_by_experiment(experiment),
        },
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": CONTROLLER_SERVICE_ACCOUNT,
                    "automountServiceAccountToken": False,
                    "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}, token_volume()],
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 10,
                },
            },
        },
    }


# -------------------------------------------------- per-namespace identities (RBAC model)


def namespace_service_accounts(namespace: str) -> list[dict]:
    """The controller's and the trainer's ServiceAccounts in an experiment namespace."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": sa, "namespace": namespace,
                      "labels": {LABEL_PART_OF: "kubenas", LABEL_MANAGED_BY: MANAGED_BY,
                                 LABEL_COMPONENT: component}}}
        for sa, component in ((CONTROLLER_SERVICE_ACCOUNT, "controller"), (TRAINER_SERVICE_ACCOUNT, "trainer"))
    ]


def namespace_role_bindings(namespace: str) -> list[dict]:
    """RoleBindings granting the kubenas-controller / kubenas-trainer ClusterRoles in
    this namespace only (the operator may bind exactly these two roles)."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": role, "namespace": namespace,
                      "labels": {LABEL_PART_OF: "kubenas", LABEL_MANAGED_BY: MANAGED_BY,
                                 LABEL_COMPONENT: component}},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]}
        for role, sa, component in (
            (CONTROLLER_CLUSTER_ROLE, CONTROLLER_SERVICE_ACCOUNT, "controller"),
            (TRAINER_CLUSTER_ROLE, TRAINER_SERVICE_ACCOUNT, "trainer"),
        )
    ]
