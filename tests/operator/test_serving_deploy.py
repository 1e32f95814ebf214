"""spec.deploy: the serving objects' pure builders (deploying.py) and the decision what to
do with the one that exists. The API server's side (admission, the real InferenceService
CRD) is the real tier's."""
from __future__ import annotations

import pytest
from kubernetes import client as k8s

from kubenas.cluster.objects import FOREIGN, OURS, STALE
from kubenas.operator import deploying as d
from kubenas.operator.manifests import Settings

UID = "5f0c6a43-1b64-4b0c-9a51-1c2d3e4f5a6b"
EXP = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
       "metadata": {"name": "digits", "namespace": "team-a", "uid": UID}}
PVC_MODEL = f"pvc://models/runs/digits_{UID}/digits-7/model.pt"
S3_MODEL = f"s3://bucket/runs/digits_{UID}/digits-7/model.pt"


def spec(artifacts=None, **deploy) -> dict:
    return {"trial": {"export": {"formats": ["torchscript", "onnx"]}},
            "artifacts": artifacts or {"persistentVolumeClaim": {"claimName": "models", "path": "runs"}},
            "deploy": deploy}


def test_deployment_serves_the_trials_folder_read_only_without_a_token():
    dep = d.serving_deployment(EXP, spec(replicas=2, maxBatchSize=8), "digits-7", PVC_MODEL,
                               Settings(trainer_image="registry.example/kubenas-trainer:1"))
    k8s.V1Deployment.from_dict(dep)
    pod = dep["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["image"] == "registry.example/kubenas-trainer:1"
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == d.MODEL_MOUNT)
    assert mount["readOnly"] is True and mount["subPath"] == f"runs/digits_{UID}/digits-7"
    claim = next(v for v in pod["volumes"] if v["name"] == mount["name"])["persistentVolumeClaim"]
    assert claim == {"claimName": "models", "readOnly": True}
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["command"][:4] == ["kubenas", "serve", "--model-dir", d.MODEL_MOUNT]
    assert "--max-batch-size" in container["command"] and "8" in container["command"]
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert dep["metadata"]["annotations"][d.EXPERIMENT_UID_ANNOTATION] == UID
    assert dep["metadata"]["ownerReferences"] == []  # deleteWithExperiment unset: it outlives the experiment


def test_a_newer_trial_changes_the_pod_template():
    one = d.serving_deployment(EXP, spec(), "digits-7", PVC_MODEL)
    other = d.serving_deployment(EXP, spec(), "digits-9", PVC_MODEL.replace("digits-7", "digits-9"))
    assert one["spec"]["template"] != other["spec"]["template"]
    assert one["spec"]["selector"] == other["spec"]["selector"]


def test_delete_with_experiment_makes_the_experiment_its_owner():
    dep = d.serving_deployment(EXP, spec(deleteWithExperiment=True), "digits-7", PVC_MODEL)
    (ref,) = dep["metadata"]["ownerReferences"]
    assert ref["uid"] == UID and ref["kind"] == "NASExperiment"
    isvc = d.inference_service(EXP, spec(deleteWithExperiment=True), "digits-7", PVC_MODEL)
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == UID
    assert "ownerReferences" not in d.inference_service(EXP, spec(), "digits-7", PVC_MODEL)["metadata"]


def test_service_selects_the_serving_pods():
    dep = d.serving_deployment(EXP, spec(), "digits-7", PVC_MODEL)
    svc = d.serving_service(EXP, spec(), "digits-7", PVC_MODEL)
    k8s.V1Service.from_dict(svc)
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in svc["spec"]["selector"].items())
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert d.service_url(svc["metadata"]["name"], "team-a", d.KIND_DEPLOYMENT) == \
        "http://digits-serve.team-a.svc.cluster.local:8080"


def test_deployment_reads_an_object_stores_model_with_the_artifacts_credentials():
    dep = d.serving_deployment(EXP, spec({"url": "s3://bucket/runs", "credentialsSecret": "s3-creds"}),
                               "digits-7", S3_MODEL)
    k8s.V1Deployment.from_dict(dep)
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    at = container["command"].index("--model-url")
    assert container["command"][at + 1] == S3_MODEL.replace("model.pt", "model.onnx")  # ONNX is exported
    assert "--model-dir" not in container["command"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID", "optional": True}
    assert "AWS_ENDPOINT_URL" in refs
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]  # no claim: the model is read into /tmp
    assert pod["automountServiceAccountToken"] is False


def test_deployment_needs_the_model_where_the_artifacts_are():
    with pytest.raises(ValueError, match="not in the object store"):
        d.serving_deployment(EXP, spec({"url": "s3://bucket/runs"}), "digits-7", PVC_MODEL)
    with pytest.raises(ValueError, match="not on claim"):
        d.serving_deployment(EXP, spec(), "digits-7", S3_MODEL)


@pytest.mark.parametrize("artifacts,model,uri", [
    (None, PVC_MODEL, f"pvc://models/runs/digits_{UID}/digits-7"),
    ({"url": "s3://bucket/runs"}, S3_MODEL, f"s3://bucket/runs/digits_{UID}/digits-7"),
])
def test_inference_service_storage_uri_format_and_resources(artifacts, model, uri):
    resources = {"limits": {"nvidia.com/gpu": 1, "memory": "4Gi"}}
    isvc = d.inference_service(EXP, spec(artifacts, replicas=3, resources=resources), "digits-7", model)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["name"] == "digits"  # KServe's V2 model name: the experiment's, as kubenas serve's
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 3
    assert predictor["model"]["storageUri"] == uri
    assert predictor["model"]["modelFormat"] == {"name": "onnx"}
    assert predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "4Gi"}


def test_torchscript_only_is_format_pytorch():
    s = {**spec(), "trial": {"export": {"formats": ["torchscript"]}}}
    assert d.inference_service(EXP, s, "digits-7", PVC_MODEL)["spec"]["predictor"]["model"]["modelFormat"] == \
        {"name": "pytorch"}


def test_kind_auto_follows_discovery():
    assert d.resolve_kind({}, True) == d.KIND_ISVC
    assert d.resolve_kind({"kind": "auto"}, False) == d.KIND_DEPLOYMENT
    assert d.resolve_kind({"kind": "Deployment"}, True) == d.KIND_DEPLOYMENT


def served(trial, model, uid=UID):
    return {"metadata": {"annotations": {d.SERVED_TRIAL_ANNOTATION: trial, d.SERVED_MODEL_ANNOTATION: model,
                                         d.EXPERIMENT_UID_ANNOTATION: uid}}}


@pytest.mark.parametrize("deploy,succeeded,trial,model,existing,whose,action", [
    (None, True, "t", PVC_MODEL, None, None, d.NOTHING),                     # no spec.deploy
    ({"enabled": False}, True, "t", PVC_MODEL, None, None, d.NOTHING),
    ({}, False, "t", PVC_MODEL, None, None, d.NOTHING),                      # not Succeeded (yet)
    ({}, True, "t", None, None, None, d.WAIT),                               # no kept model
    ({}, True, "t", PVC_MODEL, None, None, d.CREATE),
    ({}, True, "t", PVC_MODEL, served("t", PVC_MODEL), OURS, d.KEEP),
    ({}, True, "u", PVC_MODEL + "x", served("t", PVC_MODEL), OURS, d.REPLACE),  # a newer best / --trial
    ({}, True, "t", PVC_MODEL, served("t", PVC_MODEL), FOREIGN, d.CONFLICT),  # never adopted or overwritten
    ({}, True, "t", PVC_MODEL, served("t", PVC_MODEL), STALE, d.WAIT),
])
def test_decision(deploy, succeeded, trial, model, existing, whose, action):
    assert d.decide(deploy, succeeded, trial, model, existing, whose).action == action


def test_ownership_by_uid_not_by_name():
    mine = d.serving_deployment(EXP, spec(), "digits-7", PVC_MODEL)
    assert d.serving_ownership(mine, EXP) == OURS
    namesake = {**EXP, "metadata": {**EXP["metadata"], "uid": "another-uid"}}
    assert d.serving_ownership(mine, namesake) == FOREIGN
    someone_elses = {"metadata": {"name": "digits-serve", "annotations": {}}}
    assert d.serving_ownership(someone_elses, EXP) == FOREIGN


def test_chosen_trial_annotation_else_best():
    exp = {**EXP, "status": {"bestTrial": {"name": "digits-7"}}}
    assert d.chosen_trial(exp) == "digits-7"
    named = {**exp, "metadata": {**EXP["metadata"], "annotations": {d.DEPLOY_TRIAL_ANNOTATION: "digits-3"}}}
    assert d.chosen_trial(named) == "digits-3"


@pytest.mark.parametrize("artifacts,deploy,field", [
    (None, {}, "spec.deploy"),
    ({"persistentVolumeClaim": {"claimName": "m"}, "models": "none"}, {}, "spec.deploy"),
])
def test_validation_names_the_field(artifacts, deploy, field):
    import pathlib

    import yaml

    from kubenas.api.validation import validate_experiment

    root = pathlib.Path(__file__).resolve().parents[2]
    exp = yaml.safe_load((root / "deploy/examples/digits-evolution.yaml").read_text())
    exp["spec"].pop("artifacts", None)
    if artifacts:
        exp["spec"]["artifacts"] = artifacts
    exp["spec"]["deploy"] = deploy
    assert [i.path for i in validate_experiment(exp)] == [field]
    exp["spec"]["artifacts"] = {"persistentVolumeClaim": {"claimName": "m"}}
    assert validate_experiment(exp) == []


def test_a_deployment_may_serve_from_an_object_store():
    import pathlib

    import yaml

    from kubenas.api.validation import validate_experiment

    root = pathlib.Path(__file__).resolve().parents[2]
    exp = yaml.safe_load((root / "deploy/examples/digits-evolution.yaml").read_text())
    exp["spec"]["artifacts"] = {"url": "s3://bucket/runs", "credentialsSecret": "s3-creds"}
    exp["spec"]["deploy"] = {"kind": "Deployment"}
    assert validate_experiment(exp) == []


def deploy_reconciler(existing: dict | None):
    from unittest import mock

    from kubenas.operator.reconcile import Reconciler

    kube = mock.Mock()
    kube.serves.return_value = False  # no KServe: auto is a Deployment
    kube.get.side_effect = lambda kind, ns, name: existing if kind == "Deployment" else None
    kube.create.return_value = {}
    return Reconciler(kube, manage_rbac=False), kube


STATUS = {"phase": "Succeeded", "bestTrial": {"name": "digits-7", "model": PVC_MODEL}}


def test_reconciler_creates_the_deployment_and_service():
    r, kube = deploy_reconciler(None)
    shown = r._deploy(EXP, spec(), STATUS, "2026-01-01T00:00:00Z")
    assert shown["reason"] == "Deployed" and shown["trial"] == "digits-7" and shown["kind"] == "Deployment", shown
    assert [c.args[0] for c in kube.create.call_args_list] == ["Deployment", "Service"]
    kube.patch.assert_not_called()


def test_reconciler_never_touches_a_foreign_deployment_of_that_name():
    theirs = {"metadata": {"name": "digits-serve", "uid": "x", "resourceVersion": "1", "annotations": {}}}
    r, kube = deploy_reconciler(theirs)
    shown = r._deploy(EXP, spec(), STATUS, "2026-01-01T00:00:00Z")
    assert shown["reason"] == "NameConflict", shown
    kube.create.assert_not_called()
    kube.patch.assert_not_called()
    kube.delete.assert_not_called()


def test_reconciler_rolls_its_own_deployment_to_a_newer_model_conditionally():
    mine = d.serving_deployment(EXP, spec(), "digits-3", PVC_MODEL.replace("digits-7", "digits-3"))
    mine["metadata"].update(uid="dep-uid", resourceVersion="42")
    r, kube = deploy_reconciler(mine)
    shown = r._deploy(EXP, spec(), STATUS, "2026-01-01T00:00:00Z")
    assert shown["reason"] == "Deployed" and shown["trial"] == "digits-7", shown
    (kind, _, name, patch), _ = kube.patch.call_args
    assert (kind, name) == ("Deployment", "digits-serve")
    assert patch["metadata"]["resourceVersion"] == "42"  # only the object it read
    assert patch["spec"]["template"]["metadata"]["annotations"][d.SERVED_TRIAL_ANNOTATION] == "digits-7"
    # no Deployment made anew; only the Service, which this stub says is missing
    assert [c.args[0] for c in kube.create.call_args_list] == ["Service"]


def test_without_admission_the_operator_checks_the_authors_right_to_the_serving_kind():
    """operatorEnforcesLists: the operator asks the API server (SubjectAccessReview) whether
    the recorded author may create what spec.deploy would make, as admission does."""
    from unittest import mock

    from kubenas.api.policy import TenancyPolicy, Requester

    r, kube = deploy_reconciler(None)
    policy = TenancyPolicy.from_data({"operatorEnforcesLists": "true"})
    exp = {**EXP, "spec": {"deploy": {"kind": "Deployment"}}}
    kube.may.return_value = False
    with mock.patch.object(r, "_requester", return_value=Requester("alice", ("team",))):
        (issue,) = r._reference_issues(exp, policy)
        assert issue.path == "spec.deploy" and "alice may not create deployments.apps" in issue.message
        assert kube.may.call_args.kwargs["group"] == "apps" and kube.may.call_args.args[2] == "create"
        kube.may.return_value = True
        assert r._reference_issues(exp, policy) == []
        exp["spec"]["deploy"] = {}  # auto: both kinds
        assert r._reference_issues(exp, policy) == []
        assert {c.kwargs["group"] for c in kube.may.call_args_list[-2:]} == {"apps", "serving.kserve.io"}
    with mock.patch.object(r, "_requester", return_value=None):  # no record of the author
        (issue,) = r._reference_issues({**exp, "spec": {"deploy": {"kind": "Deployment"}}}, policy)
        assert "cannot tell who created this experiment" in issue.message
