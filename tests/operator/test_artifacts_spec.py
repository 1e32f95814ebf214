"""spec.artifacts: validation with named errors, the trainer Job's volume and env, and
the best model's location in the experiment status (docs/cluster.md, "Artifacts")."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from kubenas.api.defaults import with_defaults
from kubenas.api.validation import validate_experiment
from kubenas.contract import artifacts as art
from kubenas.experiment import TrialRecord
from kubenas.operator.manifests import job_for_trial
from kubenas.operator.status import fold, model_location, trial_details

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def example():
    return yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())


def issues(obj, artifacts):
    obj = copy.deepcopy(obj)
    obj["spec"]["artifacts"] = artifacts
    return {i.path: i.message for i in validate_experiment(obj)}


def test_valid_destinations(example):
    assert issues(example, {"persistentVolumeClaim": {"claimName": "results", "path": "nas/runs"}}) == {}
    assert issues(example, {"url": "s3://bucket/nas", "credentialsSecret": "s3", "models": "top", "topK": 3,
                            "maxBytes": "50Mi"}) == {}
    assert issues(example, {"url": "gs://bucket/nas", "models": "none"}) == {}
    assert issues(example, {"url": "az://container/x", "credentialsSecret": "az", "models": "top",
                            "maxBytes": 1000000}) == {}


@pytest.mark.parametrize("artifacts, path, words", [
    ({}, "spec.artifacts", "exactly one"),
    ({"url": "s3://b/x", "persistentVolumeClaim": {"claimName": "c"}}, "spec.artifacts", "exactly one"),
    ({"url": "http://host/x"}, "spec.artifacts.url", "(s3|gs|az)://"),
    ({"persistentVolumeClaim": {"claimName": "c", "path": "a/../b"}}, "spec.artifacts.persistentVolumeClaim.path",
     "'..'"),
    ({"persistentVolumeClaim": {"claimName": "c", "path": "/abs"}}, "spec.artifacts.persistentVolumeClaim.path", ""),
    ({"persistentVolumeClaim": {"claimName": "c"}, "credentialsSecret": "s"}, "spec.artifacts.credentialsSecret",
     "remove it"),
    ({"url": "gs://b/x", "credentialsSecret": "s"}, "spec.artifacts.credentialsSecret", "Workload Identity"),
    ({"url": "s3://b/x", "topK": 3}, "spec.artifacts.topK", "models: top"),
    ({"url": "s3://b/x", "models": "all", "maxBytes": "1Gi"}, "spec.artifacts.maxBytes", "models: top"),
    ({"url": "s3://b/x", "models": "top"}, "spec.artifacts.models", "topK"),
    ({"url": "s3://b/x", "models": "top", "maxBytes": "0"}, "spec.artifacts.maxBytes", "positive"),
    ({"url": "s3://b/x", "models": "best"}, "spec.artifacts.models", ""),
])
def test_bad_artifacts_are_named(example, artifacts, path, words):
    found = issues(example, artifacts)
    assert path in found, found
    assert words in found[path]


def test_the_artifacts_volume_name_is_reserved(example):
    example["spec"]["trial"]["template"] = {"volumes": [{"name": art.VOLUME_NAME, "emptyDir": {}}]}
    found = issues(example, {"url": "s3://b/x"})
    assert "rename" in found["spec.trial.template.volumes"]


def test_a_claim_is_mounted_at_the_experiments_folder_only(trial, spec):
    spec = with_defaults({**spec, "artifacts": {"persistentVolumeClaim": {"claimName": "results", "path": "nas"}}})
    job = job_for_trial(trial, spec)
    k8s.V1Job.from_dict(job)
    pod = job["spec"]["template"]["spec"]
    folder = f"{trial['spec']['experiment']}_{trial['metadata']['ownerReferences'][0]['uid']}"
    assert {"name": art.VOLUME_NAME, "persistentVolumeClaim": {"claimName": "results"}} in pod["volumes"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == art.VOLUME_NAME]
    assert mount == {"name": art.VOLUME_NAME, "mountPath": art.MOUNT_PATH, "subPath": f"nas/{folder}"}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env[art.ENV_ROOT] == art.MOUNT_PATH
    assert env[art.ENV_LOCATION] == f"pvc://results/nas/{folder}"
    assert env[art.ENV_MODELS] == "all"


def test_object_store_credentials_are_secret_refs_the_template_cannot_replace(trial, spec):
    spec = copy.deepcopy(spec)
    spec["trial"]["template"]["env"] = [{"name": "AWS_ACCESS_KEY_ID", "value": "mine"}]
    spec["artifacts"] = {"url": "s3://bucket/p", "credentialsSecret": "s3-creds", "models": "top", "topK": 2,
                         "maxBytes": "10Mi"}
    job = job_for_trial(trial, spec)
    k8s.V1Job.from_dict(job)
    pod = job["spec"]["template"]["spec"]
    assert not any(v["name"] == art.VOLUME_NAME for v in pod["volumes"])
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    folder = f"{trial['spec']['experiment']}_{trial['metadata']['ownerReferences'][0]['uid']}"
    assert env[art.ENV_ROOT]["value"] == env[art.ENV_LOCATION]["value"] == f"s3://bucket/p/{folder}"
    assert env[art.ENV_TOP_K]["value"] == "2" and env[art.ENV_MAX_BYTES]["value"] == "10Mi"
    for var in art.CREDENTIAL_VARIABLES["s3"]:
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": "s3-creds", "key": var, "optional": True}
    assert [e["name"] for e in pod["containers"][0]["env"]].count("AWS_ACCESS_KEY_ID") == 1


def test_no_artifacts_no_volume_no_env(trial, spec):
    pod = job_for_trial(trial, spec)["spec"]["template"]["spec"]
    assert not any(e["name"].startswith("KUBENAS_ARTIFACTS") for e in pod["containers"][0]["env"])
    assert not any(v["name"] == art.VOLUME_NAME for v in pod["volumes"])


def _trial(name, model, experiment="exp", uid="u-1"):
    owner = [{"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "name": experiment, "uid": uid,
              "controller": True}]
    return {"metadata": {"name": name, "ownerReferences": owner},
            "spec": {"experiment": experiment, "hyperparameters": {"lr": 0.1}},
            "status": {"phase": "Succeeded", "reward": 0.9, "metrics": {"accuracy": 0.9}, "model": model}}


def test_the_status_names_the_best_model_only_where_artifacts_put_it():
    artifacts = {"url": "s3://bucket/p"}
    good = "s3://bucket/p/exp_u-1/exp-1/model.pt"
    assert model_location(_trial("exp-1", good), artifacts) == good
    assert model_location(_trial("exp-1", "s3://elsewhere/x.pt"), artifacts) is None  # a trainer cannot redirect
    assert model_location(_trial("exp-1", good), None) is None
    pvc = {"persistentVolumeClaim": {"claimName": "c"}}
    assert model_location(_trial("exp-1", "pvc://c/exp_u-1/exp-1/model.pt"), pvc) == "pvc://c/exp_u-1/exp-1/model.pt"
    # The folder of the experiment that owns the trial, not a namesake's, not one without a uid.
    assert model_location(_trial("exp-1", good, uid="u-0"), artifacts) is None
    assert model_location(_trial("exp-1", "s3://bucket/p/exp/exp-1/model.pt"), artifacts) is None
    no_owner = _trial("exp-1", good)
    no_owner["metadata"]["ownerReferences"] = []
    assert model_location(no_owner, artifacts) is None

    records = [TrialRecord("exp-0", 0, "Succeeded", 0.5), TrialRecord("exp-1", 1, "Succeeded", 0.9)]
    status = fold(records, "maximize", lambda name: trial_details(_trial(name, good), artifacts))
    assert status["bestTrial"]["name"] == "exp-1" and status["bestTrial"]["model"] == good
    status = fold(records, "maximize", lambda name: trial_details(_trial(name, None), artifacts))
    assert "model" not in status["bestTrial"]


def test_no_experiments_folder_is_in_another_experiments_folder():
    """Experiment q-5 with path p/q and experiment q with path p: q-5's folder used to be
    p/q/q-5, which is q's trial q-5's folder (its trainers could write q's models).
    The uid, joined by a character no Kubernetes name has, keeps them apart; a namesake in
    another namespace sharing the bucket, or an earlier experiment of the same name, too."""
    def claim(path):
        return {"persistentVolumeClaim": {"claimName": "c", "path": path}}

    q = art.experiment_location(claim("p"), "q", "uid-q")
    q5 = art.experiment_location(claim("p/q"), "q-5", "uid-q5")
    assert (q, q5) == ("pvc://c/p/q_uid-q", "pvc://c/p/q/q-5_uid-q5")
    q_trial = art.join(q, "q-5")
    assert not (q5 + "/").startswith(q_trial + "/") and not (q_trial + "/").startswith(q5 + "/")
    assert art.pvc_sub_path(claim("p/q"), "q-5", "uid-q5") == "p/q/q-5_uid-q5"
    store = {"url": "s3://shared/runs"}
    assert art.experiment_location(store, "mnist", "uid-a") != art.experiment_location(store, "mnist", "uid-b")
    assert art.FOLDER_SEPARATOR not in "abcdefghijklmnopqrstuvwxyz0123456789-."  # DNS-1123 names
    assert art.experiment_location(store, "mnist") == "s3://shared/runs/mnist"  # a local run: no uid


def test_an_object_store_without_credentials_secret_takes_the_admins_allow_ambient_credentials():
    """A url without credentialsSecret (gs takes none) is reached with whatever the node
    or pod has: refused by the operator's own check (clusters without the admission
    policies) unless the admin's ConfigMap says allowAmbientCredentials: "true"."""
    from kubenas.api.policy import TenancyPolicy, policy_issues

    spec = {"artifacts": {"url": "s3://any-bucket"}}
    (issue,) = policy_issues(spec, TenancyPolicy.from_data({}))
    assert issue.path == "spec.artifacts.credentialsSecret"
    assert "s3://any-bucket without credentialsSecret" in issue.message
    assert 'allowAmbientCredentials: "true" in ConfigMap kubenas-system/kubenas-admission-policy' in issue.message
    assert policy_issues({"artifacts": {"url": "gs://b/x"}}, TenancyPolicy.from_data({}))
    assert not policy_issues(spec, TenancyPolicy.from_data({"allowAmbientCredentials": "true"}))
    assert not policy_issues({"artifacts": {"url": "s3://b", "credentialsSecret": "s3"}}, TenancyPolicy.from_data({}))
    assert not policy_issues({"artifacts": {"persistentVolumeClaim": {"claimName": "c"}}}, TenancyPolicy.from_data({}))
