"""One table of tenant requests, judged by both enforcers of the admin's policy: the
operator's check (tests/api/test_policy.py) and the admission policy on a real API
server (tests/e2e/test_admission_code.py), which must agree. Each case is (template,
the field the refusal names, or None where both accept), for an author without `create
pods` under the shipped ConfigMap (userCode: "false") who may get the ConfigMap ``code``
(CODE_CONFIGMAP: a ConfigMap an author can read carries files as a downwardAPI volume
does)."""
from __future__ import annotations

import argparse
import pathlib

# Where the trainer imports argparse from: in the image (/opt/conda) and in the real
# tier's pods, which run this checkout's interpreter (docs/testing.md).
ARGPARSE_IN_IMAGE = "/opt/conda/lib/python3.11/argparse.py"
ARGPARSE_HERE = str(pathlib.Path(argparse.__file__).resolve())

# The exact attack of issue 23: Python in a pod annotation, exposed by a downwardAPI
# volume, mounted by subPath over a module the trainer imports.
CODE = "import os\nos.execvp('sh', ['sh', '-c', 'echo pwned'])\n"


CODE_CONFIGMAP = "code"


def over_module(path: str) -> dict:
    return {"annotations": {"payload": CODE},
            "volumes": [{"name": "code", "downwardAPI": {"items": [
                {"path": "argparse.py", "fieldRef": {"fieldPath": "metadata.annotations['payload']"}}]}}],
            "volumeMounts": [{"name": "code", "mountPath": path, "subPath": "argparse.py", "readOnly": True}]}


def over_module_from_configmap(path: str) -> dict:
    """The same file from a ConfigMap the author may read (downwardAPI is not allowed)."""
    return {"volumes": [{"name": "code", "configMap": {"name": CODE_CONFIGMAP}}],
            "volumeMounts": [{"name": "code", "mountPath": path, "subPath": "argparse.py", "readOnly": True}]}


def mounted(path: str, source: dict | None = None, **mount) -> dict:
    return {"volumes": [{"name": "v", **(source or {"emptyDir": {}})}],
            "volumeMounts": [{"name": "v", "mountPath": path, **mount}]}


def env(name: str) -> dict:
    return {"env": [{"name": name, "value": "1"}]}


M = "spec.trial.template.volumeMounts[name=v].mountPath"
CASES: dict[str, tuple[dict, str | None]] = {
    # mounts
    "argparse-downward-api": (over_module(ARGPARSE_HERE), "spec.trial.template.volumes[name=code]"),
    "argparse-in-image": (over_module_from_configmap(ARGPARSE_IN_IMAGE),
                          "spec.trial.template.volumeMounts[name=code].mountPath"),
    "argparse-here": (over_module_from_configmap(ARGPARSE_HERE), "spec.trial.template.volumeMounts[name=code].mountPath"),
    "trainer-entrypoint": (mounted("/opt/conda/bin/kubenas-train", {"configMap": {"name": CODE_CONFIGMAP}},
                                   subPath="run"), M),
    "token-path": (mounted("/var/run/secrets/kubernetes.io/serviceaccount"), M),
    "above-token": (mounted("/var/run"), M),
    "run-secrets": (mounted("/run/secrets"), M),
    "artifacts-path": (mounted("/var/lib/kubenas/artifacts/x"), M),
    "root": (mounted("/"), M),
    "dotdot": (mounted("/data/../opt/conda"), M),
    "trailing-slash": (mounted("/opt/"), M),
    "home-tmp-configmap": (mounted("/tmp", {"configMap": {"name": CODE_CONFIGMAP}}), M),
    "tmp-emptydir": (mounted("/tmp"), None),
    "shm-emptydir": (mounted("/dev/shm", {"emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}), None),
    "shm-subpath": (mounted("/dev/shm", subPath="x"), M),
    "subpath-escape": (mounted("/data/x", subPath="../y"), "spec.trial.template.volumeMounts[name=v].subPath"),
    "outside-prefixes": (mounted("/workspace"), M),
    "prefix-boundary": (mounted("/database"), M),
    "data": (mounted("/data"), None),
    "data-subpath-configmap": (mounted("/mnt/cfg/a.py", {"configMap": {"name": CODE_CONFIGMAP}}, subPath="a.py"),
                               None),
    "scratch": (mounted("/scratch/x"), None),
    # reserved names
    "volume-kubenas-api-token": ({"volumes": [{"name": "kubenas-api-token", "emptyDir": {}}]},
                                 "spec.trial.template.volumes[name=kubenas-api-token].name"),
    "mount-kubenas-api-token": ({"volumeMounts": [{"name": "kubenas-api-token", "mountPath": "/data/t"}]},
                                "spec.trial.template.volumeMounts[name=kubenas-api-token].name"),
    # emptyDir sizes
    "emptydir-1pi": ({"volumes": [{"name": "big", "emptyDir": {"sizeLimit": "1Pi"}}]},
                     "spec.trial.template.volumes[name=big].emptyDir.sizeLimit"),
    "emptydir-memory-1ti": ({"volumes": [{"name": "big", "emptyDir": {"medium": "Memory", "sizeLimit": "1Ti"}}]},
                            "spec.trial.template.volumes[name=big].emptyDir.sizeLimit"),
    "emptydir-bytes": ({"volumes": [{"name": "big", "emptyDir": {"sizeLimit": 2 ** 50}}]},
                       "spec.trial.template.volumes[name=big].emptyDir.sizeLimit"),
    "emptydir-100gi": ({"volumes": [{"name": "ok", "emptyDir": {"sizeLimit": "100Gi"}}]}, None),
    # AppArmor and seccomp
    "apparmor-unconfined": ({"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer": "unconfined"}},
                            "spec.trial.template.annotations[container.apparmor.security.beta.kubernetes.io/trainer]"),
    "seccomp-unconfined": ({"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}},
                           "spec.trial.template.annotations[seccomp.security.alpha.kubernetes.io/pod]"),
    "apparmor-default": ({"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer": "runtime/default"}},
                         None),
    "apparmor-localhost": ({"annotations": {"container.apparmor.security.beta.kubernetes.io/trainer": "localhost/k8s"}},
                           None),
    # env
    "env-pythonwarnings": (env("PYTHONWARNINGS"), "spec.trial.template.env[name=PYTHONWARNINGS]"),
    "env-kubernetes-service-host": (env("KUBERNETES_SERVICE_HOST"),
                                    "spec.trial.template.env[name=KUBERNETES_SERVICE_HOST]"),
    "env-nccl-net-plugin": (env("NCCL_NET_PLUGIN"), "spec.trial.template.env[name=NCCL_NET_PLUGIN]"),
    "env-ld-preload": (env("LD_PRELOAD"), "spec.trial.template.env"),
    "env-user": (env("KUBENAS_USER_LR_SCHEDULE"), None),
    "env-threads": (env("OMP_NUM_THREADS"), None),
    # images
    "image-dotdot": ({"image": "ghcr.io/kubenas/../evil/x:1"}, "spec.trial.template.image"),
    "image-empty-component": ({"image": "ghcr.io/kubenas//x:1"}, "spec.trial.template.image"),
    "image-upper-case-path": ({"image": "ghcr.io/kubenas/X:1"}, "spec.trial.template.image"),
    "image-other-org": ({"image": "ghcr.io/kubenasevil/x:1"}, "spec.trial.template.image"),
    "image-digest": ({"image": "ghcr.io/kubenas/kubenas-trainer@sha256:" + "0" * 64}, None),
    "image-tag": ({"image": "ghcr.io/kubenas/kubenas-trainer:0.1.0"}, None),
}
