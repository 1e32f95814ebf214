"""Every object the operator and the controller create is valid for a real API server:
deserialized into the official client's models (client-side validation), with names
and labels within Kubernetes' limits."""
from __future__ import annotations

import glob
import re

import pytest
import yaml
from kubernetes import client as k8s

from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment
from kubenas.cluster import kube
from kubenas.cluster.objects import (ANNOTATION_ACCEPTED_SPEC, accepted_spec, accepted_spec_text,
                                     checkpoint_configmap, label_value, trial_object)
from kubenas.operator.manifests import (TRAINER_COMMAND, Settings, controller_deployment, job_for_trial,
                                        namespace_role_bindings, namespace_service_accounts)

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_KEY_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def check_labels(labels: dict) -> None:
    for key, value in (labels or {}).items():
        prefix, _, name = key.rpartition("/")
        assert len(name) <= 63 and LABEL_KEY_NAME.match(name), key
        assert not prefix or (len(prefix) <= 253 and DNS_1123_SUBDOMAIN.match(prefix)), key
        assert isinstance(value, str) and len(value) <= 63 and LABEL_VALUE.match(value), (key, value)


def check_meta(obj: dict, *, label_name: bool = False) -> None:
    name = obj["metadata"]["name"]
    assert len(name) <= 253 and DNS_1123_SUBDOMAIN.match(name), name
    if label_name:  # Job names end up in pod labels (job-name), Deployment names in pod names
        assert len(name) <= 63 and DNS_1123_LABEL.match(name), name
    check_labels(obj["metadata"].get("labels"))
    for ref in obj["metadata"].get("ownerReferences") or []:
        assert ref["uid"] and ref["name"] and ref["kind"] and ref["apiVersion"]


def test_job_for_trial_is_a_valid_v1_job(trial, spec):
    job = job_for_trial(trial, spec, Settings())
    model = k8s.V1Job.from_dict(job)  # raises on any type error
    assert model.spec.template.spec.restart_policy == "Never"
    check_meta(job, label_name=True)
    check_labels(job["spec"]["template"]["metadata"]["labels"])
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == TRAINER_COMMAND  # never the image's entrypoint
    assert container["image"] == "ghcr.io/owner/kubenas-trainer:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["resources"]["requests"]["cpu"] == "2"
    env = {e["name"]: e for e in container["env"]}
    assert env["KUBENAS_TRIAL"]["value"] == trial["metadata"]["name"]  # the template cannot override it
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["EXTRA"]["value"] == "1"
    assert pod["serviceAccountName"] == "kubenas-trainer"
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["affinity"]["nodeAffinity"]
    assert pod["priorityClassName"] == "nas-low"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert {v["name"] for v in pod["volumes"]} == {"tmp", "dshm", "data", "kubenas-api-token"}
    # The API token: in the trainer container only, for 10 minutes, renewed by the kubelet.
    assert pod["automountServiceAccountToken"] is False
    (token,) = [v for v in pod["volumes"] if v["name"] == "kubenas-api-token"]
    assert token["projected"]["sources"][0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}
    assert {"name": "kubenas-api-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True} in container["volumeMounts"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp", "/dev/shm", "/data",
                                                                   "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert job["spec"]["activeDeadlineSeconds"] == 600
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert job["metadata"]["labels"]["kubenas.io/experiment"] == "digits-evolution"
    assert job["metadata"]["labels"]["kubenas.io/trial"] == trial["metadata"]["name"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "NASTrial"
    assert job["spec"]["template"]["metadata"]["labels"]["team"] == "vision"
    assert "suspend" not in job["spec"]


def test_job_with_kueue_queue_is_suspended_and_labelled(trial, spec):
    spec["trial"]["template"]["queueName"] = "gpu-queue"
    job = job_for_trial(trial, spec)
    k8s.V1Job.from_dict(job)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"


def test_user_volumes_replace_builtin_ones_with_the_same_name(trial, spec):
    spec["trial"]["template"]["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}]
    spec["trial"]["template"]["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    job = job_for_trial(trial, spec)
    names = [v["name"] for v in job["spec"]["template"]["spec"]["volumes"]]
    assert sorted(names) == ["dshm", "kubenas-api-token", "tmp"]


def test_trial_pods_are_never_best_effort_and_scratch_space_is_bounded(trial, spec):
    """cpu/memory requests the template leaves unset get the operator's defaults (a limit
    alone counts: the API server requests the same); every emptyDir has a sizeLimit."""
    template = spec["trial"]["template"]
    template["resources"] = {"limits": {"nvidia.com/gpu": 1, "memory": "8Gi"}}
    template["volumes"] = [{"name": "data", "emptyDir": {}}, {"name": "big", "emptyDir": {"sizeLimit": "50Gi"}}]
    template["volumeMounts"] = [{"name": "data", "mountPath": "/data"}, {"name": "big", "mountPath": "/big"}]
    settings = Settings.from_env({"KUBENAS_TRAINER_DEFAULT_CPU": "2", "KUBENAS_SCRATCH_SIZE_LIMIT": "5Gi"})
    job = job_for_trial(trial, spec, settings)
    pod = job["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources == {"limits": {"nvidia.com/gpu": "1", "memory": "8Gi"}, "requests": {"cpu": "2"}}
    limits = {v["name"]: v["emptyDir"].get("sizeLimit") for v in pod["volumes"] if "emptyDir" in v}
    assert limits == {"tmp": "5Gi", "dshm": "2Gi", "data": "5Gi", "big": "50Gi"}
    assert template["volumes"][0]["emptyDir"] == {}  # the accepted spec is not changed
    template.pop("resources")
    bare = job_for_trial(trial, spec)["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert bare == {"requests": {"cpu": "1", "memory": "2Gi"}}
    k8s.V1Job.from_dict(job)


def test_controller_deployment_is_valid(experiment, spec):
    dep = controller_deployment(experiment, spec, Settings())
    k8s.V1Deployment.from_dict(dep)
    check_meta(dep, label_name=True)
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate"
    template = dep["spec"]["template"]
    assert set(dep["spec"]["selector"]["matchLabels"].items()) <= set(template["metadata"]["labels"].items())
    check_labels(template["metadata"]["labels"])
    cmd = template["spec"]["containers"][0]["command"]
    assert cmd == ["kubenas", "controller", "--namespace", "research", "--experiment", "digits-evolution"]
    assert template["spec"]["serviceAccountName"] == "kubenas-controller"
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True
    assert dep["metadata"]["ownerReferences"][0]["uid"] == experiment["metadata"]["uid"]
    # Its API token: the controller container only, for 10 minutes (renewed by the kubelet).
    assert template["spec"]["automountServiceAccountToken"] is False
    (token,) = [v for v in template["spec"]["volumes"] if v["name"] == "kubenas-api-token"]
    assert token["projected"]["sources"][0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}
    assert {"name": "kubenas-api-token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True} in template["spec"]["containers"][0]["volumeMounts"]


def test_reinforce_controllers_run_in_the_trainer_image(experiment, spec):
    spec["strategy"] = {"type": "reinforce", "seed": 0}
    dep = controller_deployment(experiment, spec, Settings(trainer_image="t:1", controller_image="o:1"))
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "t:1"


def test_namespace_identities_and_checkpoint_are_valid(experiment):
    for sa in namespace_service_accounts("research"):
        k8s.V1ServiceAccount.from_dict(sa)
        check_meta(sa, label_name=True)
    for rb in namespace_role_bindings("research"):
        k8s.V1RoleBinding.from_dict(rb)
        check_meta(rb)
        assert rb["subjects"][0]["namespace"] == "research"
    cm = checkpoint_configmap(experiment, {"state": {"x": 1}})
    k8s.V1ConfigMap.from_dict(cm)
    check_meta(cm)


def test_trial_object_matches_the_crd_and_names(trial):
    check_meta(trial, label_name=True)
    assert trial["metadata"]["name"] == "digits-evolution-12345"
    assert trial["spec"]["index"] == 12345
    assert trial["spec"]["timeoutSeconds"] == 600
    from kubenas.api.schema import validator

    errors = list(validator("NASTrial").iter_errors(trial))
    assert not errors, errors


def test_event_body_is_a_valid_core_event(trial):
    body = kube.event_body(trial, "Warning", "Failed", "x" * 5000, "operator", "2024-01-01T00:00:00Z")
    k8s.CoreV1Event.from_dict(body)
    check_meta(body)
    assert len(body["message"]) <= 1024


def test_longest_experiment_names_fit_every_limit(experiment, spec):
    experiment["metadata"]["name"] = "a" * 50  # the validation maximum
    assert not [i for i in validate_experiment({k: experiment[k] for k in ("apiVersion", "kind", "metadata", "spec")})
                if i.path == "metadata.name"]
    trial = trial_object(experiment, spec, 99999, {"architecture": {"type": "chain", "layers": []}})
    trial["metadata"]["uid"] = "u"
    check_meta(trial, label_name=True)
    check_meta(job_for_trial(trial, spec), label_name=True)
    check_meta(controller_deployment(experiment, spec), label_name=True)
    # pods of a Job are named <job>-<5 chars>
    assert len(trial["metadata"]["name"]) + 6 <= 63


def test_label_value_hashes_what_does_not_fit():
    assert label_value("ok-name") == "ok-name"
    long = label_value("x" * 100)
    assert len(long) <= 63 and LABEL_VALUE.match(long)
    assert label_value("x" * 100) == long != label_value("x" * 99 + "y")


def test_the_accepted_spec_is_read_from_status_only(experiment, spec):
    """status.acceptedSpec, which only the operator writes; an author's annotation of the
    old place counts for nothing on an experiment that is not yet running (a forgery),
    and is adopted only for one an earlier operator already started."""
    experiment["status"] = {"acceptedSpec": accepted_spec_text(spec)}
    assert accepted_spec(experiment) == spec
    experiment["status"]["acceptedSpec"] = "{not json"
    assert accepted_spec(experiment) is None
    forged = {**spec, "budget": {**spec["budget"], "maxTrials": 10**6}}
    experiment["status"] = {}
    experiment["metadata"]["annotations"] = {ANNOTATION_ACCEPTED_SPEC: accepted_spec_text(forged)}
    assert accepted_spec(experiment) is None
    experiment["status"] = {"phase": "Pending"}
    assert accepted_spec(experiment) is None
    experiment["status"] = {"phase": "Running"}  # started by an operator before 0.2
    assert accepted_spec(experiment) == forged
    experiment["status"] = {"phase": "Running", "acceptedSpec": accepted_spec_text(spec)}
    assert accepted_spec(experiment) == spec


@pytest.mark.parametrize("path", sorted(glob.glob("deploy/examples/*.yaml")))
def test_every_example_builds_valid_objects(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for exp in docs:
        if exp.get("kind") != "NASExperiment":
            continue
        assert validate_experiment(exp) == []
        exp = {**exp, "metadata": {**exp["metadata"], "namespace": "research", "uid": "u-1"}}
        spec = with_defaults(exp["spec"])
        trial = trial_object(exp, spec, 0, {"architecture": {"type": spec["searchSpace"]["type"], "layers": []}})
        trial["metadata"]["uid"] = "u-2"
        k8s.V1Job.from_dict(job_for_trial(trial, spec))
        k8s.V1Deployment.from_dict(controller_deployment(exp, spec))
