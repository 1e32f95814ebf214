"""Issue 23, HIGH 2 and the LOW admission findings, as the attacks were made, on a real
API server: mounts are code, image references are parsed, env is an allow-list, and
AppArmor/seccomp and emptyDir sizes are bounded (deploy/admission.yaml,
kubenas.api.policy, docs/security.md). alice may only create, get and list
NASExperiments (the author Role of docs/security.md)."""
from __future__ import annotations

import json

import pytest

from kubenas.api.policy import TenancyPolicy, policy_issues
from tests.api.policy_cases import ARGPARSE_HERE, CASES, CODE_CONFIGMAP, over_module, over_module_from_configmap
from tests.e2e.test_admission import EXPERIMENTS, POLICY, accepted, grant, refused, with_template
from tests.e2e.test_cluster import apply
from tests.realtier.cluster import OPERATOR_NS
from tests.waiting import wait_until


@pytest.fixture(scope="module")
def tenant(installed):
    """alice may create NASExperiments and get one ConfigMap, holding a Python file."""
    namespace = installed.new_namespace("kubenas-code")
    grant(installed, namespace, "experiments", "alice", [EXPERIMENTS, {
        "apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CODE_CONFIGMAP], "verbs": ["get"]}])
    installed.kubectl("create", "configmap", CODE_CONFIGMAP, "-n", namespace, "--from-literal=argparse.py=import os",
                      "--from-literal=run=#!/bin/sh")
    yield namespace
    installed.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def dry_run(cluster, namespace: str, name: str, user: str = "alice", **template):
    return cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", user=user, check=False,
                           input=json.dumps(with_template(name, **template)))


def attack(cluster, namespace: str, name: str, **template):
    """alice creates it for real (not a dry run): refused, and nothing is stored."""
    done = apply(cluster, namespace, with_template(name, **template), user="alice", check=False)
    assert cluster.kubectl("get", "nasexperiment", name, "-n", namespace, check=False).returncode != 0
    return done


def test_a_python_file_mounted_over_a_module_the_trainer_imports_is_refused(installed, tenant):
    """The exact attack: code in a pod annotation, a downwardAPI volume, subPath over
    argparse.py where the trainer imports it; accepted (SpecAccepted) before. downwardAPI
    is no longer a default volume type; the same file from a ConfigMap alice may read is
    stopped by the mount rule."""
    refused(attack(installed, tenant, "argparse", **over_module(ARGPARSE_HERE)),
            "spec.trial.template.volumes[name=code] uses downwardAPI: this volume type is not allowed", "volumeTypes")
    refused(attack(installed, tenant, "argparse-cm", **over_module_from_configmap(ARGPARSE_HERE)),
            f"spec.trial.template.volumeMounts[name=code].mountPath: {ARGPARSE_HERE} would cover a folder the trainer "
            "image needs", "protectedMountPaths", "mount it under one of /data, /mnt, /scratch")


def test_a_script_mounted_over_the_trainer_entrypoint_is_refused(installed, tenant):
    """On real images a #!/bin/sh file over kubenas-train runs instead of the trainer."""
    refused(attack(installed, tenant, "entrypoint",
                   volumes=[{"name": "sh", "configMap": {"name": CODE_CONFIGMAP}}],
                   volumeMounts=[{"name": "sh", "mountPath": "/opt/conda/bin/kubenas-train", "subPath": "run"}]),
            "spec.trial.template.volumeMounts[name=sh].mountPath: /opt/conda/bin/kubenas-train would cover")


def test_a_mount_over_the_token_and_a_reserved_volume_name_are_refused_at_admission(installed, tenant):
    """Before: accepted, then the Job failed (JobRefused: duplicate mount path / volume name)."""
    refused(attack(installed, tenant, "token", volumes=[{"name": "t", "emptyDir": {}}],
                   volumeMounts=[{"name": "t", "mountPath": "/var/run/secrets"}]),
            "spec.trial.template.volumeMounts[name=t].mountPath: /var/run/secrets would cover",
            "the trial's own API token")
    refused(attack(installed, tenant, "token-name", volumes=[{"name": "kubenas-api-token", "emptyDir": {}}]),
            "spec.trial.template.volumes[name=kubenas-api-token].name: names starting with kubenas- are kubenas' own")


def test_a_mount_outside_the_data_folders_needs_create_pods(installed, tenant):
    """Like spec.trial.command: outside mountPathPrefixes only for a requester who may
    create pods, and never over what the image needs, even then."""
    template = {"volumes": [{"name": "w", "emptyDir": {}}], "volumeMounts": [{"name": "w", "mountPath": "/workspace"}]}
    refused(dry_run(installed, tenant, "workspace", **template),
            "spec.trial.template.volumeMounts[name=w].mountPath: /workspace is outside /data, /mnt, /scratch",
            "(alice) may not create pods in namespace " + tenant, "mountPathPrefixes")
    accepted(dry_run(installed, tenant, "data", volumes=template["volumes"],
                     volumeMounts=[{"name": "w", "mountPath": "/data/w"}]))
    grant(installed, tenant, "pods", "alice", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
    try:
        wait_until(lambda: dry_run(installed, tenant, "workspace", **template).returncode == 0, 30,
                   "alice, now allowed to create pods, to mount /workspace")
        refused(dry_run(installed, tenant, "argparse", **over_module_from_configmap(ARGPARSE_HERE)), "would cover")
    finally:
        installed.kubectl("delete", "role,rolebinding", "pods", "-n", tenant, check=False)


def test_apparmor_unconfined_and_a_1pi_emptydir_are_refused(installed, tenant):
    refused(attack(installed, tenant, "apparmor",
                   annotations={"container.apparmor.security.beta.kubernetes.io/trainer": "unconfined"}),
            "spec.trial.template.annotations[container.apparmor.security.beta.kubernetes.io/trainer]: unconfined "
            "is not allowed")
    refused(attack(installed, tenant, "pebibyte", volumes=[{"name": "big", "emptyDir": {"sizeLimit": "1Pi"}}]),
            "spec.trial.template.volumes[name=big].emptyDir.sizeLimit: 1Pi is above 100Gi", "emptyDirSizeLimit")


@pytest.mark.parametrize("name", ["PYTHONWARNINGS", "KUBERNETES_SERVICE_HOST"])
def test_env_outside_the_allow_list_is_refused(installed, tenant, name):
    refused(attack(installed, tenant, f"env-{name.lower().replace('_', '-')}", env=[{"name": name, "value": "x"}]),
            f"spec.trial.template.env[name={name}]: not in envNames", "KUBENAS_USER_")


def test_image_references_are_parsed_not_matched_as_strings(installed, tenant):
    refused(attack(installed, tenant, "dotdot", image="ghcr.io/kubenas/../evil/x:1"),
            "spec.trial.template.image: ghcr.io/kubenas/../evil/x:1 is not an image reference")
    # An admin's prefix without a trailing slash is a repository path, not a string prefix.
    original = installed.get_json("configmap", POLICY, "-n", OPERATOR_NS)["data"]["trainerImagePrefixes"]

    def patch(value):
        installed.kubectl("patch", "configmap", POLICY, "-n", OPERATOR_NS, "--type=merge",
                          "-p", json.dumps({"data": {"trainerImagePrefixes": value}}))

    patch("ghcr.io/kubenas")
    try:
        wait_until(lambda: dry_run(installed, tenant, "boundary", image="ghcr.io/kubenas/kubenas-trainer:1",
                                   volumes=[{"name": "p", "emptyDir": {"sizeLimit": "1Gi"}}]).returncode == 0
                   and "ghcr.io/kubenas " in dry_run(installed, tenant, "b", image="ghcr.io/x/y:1").stderr,
                   30, "the new prefix to take effect")
        refused(attack(installed, tenant, "boundary", image="ghcr.io/kubenasevil/x:1"),
                "spec.trial.template.image: ghcr.io/kubenasevil/x:1 is not an allowed trainer image",
                "use an image under ghcr.io/kubenas (registry and repository path")
    finally:
        patch(original)


def test_admission_and_the_operator_agree_on_the_shared_table(installed, tenant):
    """tests/api/policy_cases.py through the real admission policy (alice, no pod rights)
    and through the operator's check enforcing the lists: the same verdict, naming the
    same field."""
    policy = TenancyPolicy.from_data({**installed.get_json("configmap", POLICY, "-n", OPERATOR_NS)["data"],
                               "operatorEnforcesLists": "true", "userCode": "false"})
    disagree = []
    for case, (template, field) in sorted(CASES.items()):
        done = dry_run(installed, tenant, "table", **template)
        operator = policy_issues({"trial": {"template": template}}, policy)
        if field is None:
            ok = done.returncode == 0 and not operator
        else:
            ok = done.returncode != 0 and field in done.stderr and operator and operator[0].path.startswith(field)
        if not ok:
            disagree.append(f"{case}: admission {done.returncode} {done.stderr.strip()[-300:]}; operator {operator}")
    assert not disagree, "\n".join(disagree)
