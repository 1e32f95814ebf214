"""The operator's copy of the cluster admin's tenancy policy (kubenas.api.policy)."""
import yaml

from kubenas.api.policy import DEFAULTS, Policy, policy_issues


def test_the_shipped_configmap_and_the_operator_defaults_agree():
    with open("deploy/admission-params.yaml") as f:
        shipped = next(d for d in yaml.safe_load_all(f) if d["kind"] == "ConfigMap")["data"]
    assert shipped == DEFAULTS
    assert Policy.from_data(shipped) == Policy.default()


def spec(**template) -> dict:
    return {"trial": {"template": template}}


def paths(issues) -> list[str]:
    return [issue.path for issue in issues]


def test_what_the_lists_allow_passes():
    policy = Policy.default()
    ok = spec(image="ghcr.io/kubenas/kubenas-trainer:1", volumes=[{"name": "d", "emptyDir": {}}],
              env=[{"name": "FOO", "value": "1"}], serviceAccountName="someone", tolerations=[{"key": "spot"}])
    assert policy_issues(ok, policy) == []      # accounts and tolerations are admission's (requester) call
    assert policy_issues({}, policy) == []


def test_each_rule_names_the_field_and_the_fix():
    policy = Policy.default()
    bad = spec(image="evil.example/x:1", volumes=[{"name": "h", "hostPath": {"path": "/"}}],
               env=[{"name": "LD_PRELOAD", "value": "/x.so"}], labels={"kubenas.io/trial": "b-1"},
               annotations={"kubenas.io/x": "1"})
    bad["controller"] = {"image": "evil.example/c:1"}
    issues = policy_issues(bad, policy)
    assert paths(issues) == ["spec.trial.template.image", "spec.controller.image",
                             "spec.trial.template.volumes[name=h]", "spec.trial.template.env[name=LD_PRELOAD]",
                             "spec.trial.template.labels", "spec.trial.template.annotations"]
    text = "\n".join(map(str, issues))
    assert "starts with ghcr.io/kubenas/" in text and "uses hostPath" in text and "remove it" in text
    assert "kubenas-system/kubenas-admission-policy" in text


def test_without_admission_the_operator_enforces_the_lists_with_no_exception():
    policy = Policy.from_data({"operatorEnforcesLists": "true", "priorityClasses": "low",
                               "volumeTypes": "*", "trainerImagePrefixes": "*"})
    bad = spec(image="anything:1", volumes=[{"name": "h", "hostPath": {"path": "/"}}],
               serviceAccountName="default", priorityClassName="high",
               tolerations=[{"key": "nvidia.com/gpu"}, {"operator": "Exists"}])
    assert paths(policy_issues(bad, policy)) == ["spec.trial.template.serviceAccountName",
                                                 "spec.trial.template.priorityClassName",
                                                 "spec.trial.template.tolerations[key=]"]
    assert policy_issues(spec(serviceAccountName="kubenas-trainer", priorityClassName="low"), policy) == []
