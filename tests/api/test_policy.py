"""The operator's copy of the cluster admin's tenancy policy (kubenas.api.policy)."""
import pytest
import yaml

from kubenas.api.policy import (DEFAULTS, RESERVED_MOUNT_PATHS, RESERVED_NAME_PREFIX, TenancyPolicy, env_allowed,
                                policy_issues)
from tests.api.policy_cases import CASES  # the table the admission policy is tested on too (tests/e2e)


def test_the_shipped_configmap_and_the_operator_defaults_agree():
    with open("deploy/admission-params.yaml") as f:
        shipped = next(d for d in yaml.safe_load_all(f) if d["kind"] == "ConfigMap")["data"]
    assert shipped == DEFAULTS
    assert TenancyPolicy.from_data(shipped) == TenancyPolicy.default()


def spec(**template) -> dict:
    return {"trial": {"template": template}}


def paths(issues) -> list[str]:
    return [issue.path for issue in issues]


def test_what_the_lists_allow_passes():
    policy = TenancyPolicy.default()
    ok = spec(image="ghcr.io/kubenas/kubenas-trainer:1", volumes=[{"name": "d", "emptyDir": {}}],
              env=[{"name": "FOO", "value": "1"}], serviceAccountName="someone", tolerations=[{"key": "spot"}])
    assert policy_issues(ok, policy) == []      # accounts and tolerations are admission's (requester) call
    assert policy_issues({}, policy) == []


def test_each_rule_names_the_field_and_the_fix():
    policy = TenancyPolicy.default()
    bad = spec(image="evil.example/x:1", volumes=[{"name": "h", "hostPath": {"path": "/"}}],
               env=[{"name": "LD_PRELOAD", "value": "/x.so"}], labels={"kubenas.io/trial": "b-1"},
               annotations={"kubenas.io/x": "1"})
    bad["controller"] = {"image": "evil.example/c:1"}
    issues = policy_issues(bad, policy)
    assert paths(issues) == ["spec.trial.template.image", "spec.controller.image",
                             "spec.trial.template.volumes[name=h]", "spec.trial.template.env[name=LD_PRELOAD]",
                             "spec.trial.template.labels", "spec.trial.template.annotations"]
    text = "\n".join(map(str, issues))
    assert "under ghcr.io/kubenas/" in text and "uses hostPath" in text and "remove it" in text
    assert "kubenas-system/kubenas-admission-policy" in text


def test_without_admission_the_operator_enforces_the_lists_with_no_exception():
    policy = TenancyPolicy.from_data({"operatorEnforcesLists": "true", "priorityClasses": "low",
                               "volumeTypes": "*", "trainerImagePrefixes": "*"})
    bad = spec(image="anything:1", volumes=[{"name": "h", "hostPath": {"path": "/"}}],
               serviceAccountName="default", priorityClassName="high",
               tolerations=[{"key": "nvidia.com/gpu"}, {"operator": "Exists"}])
    assert paths(policy_issues(bad, policy)) == ["spec.trial.template.serviceAccountName",
                                                 "spec.trial.template.priorityClassName",
                                                 "spec.trial.template.tolerations[key=]"]
    assert policy_issues(spec(serviceAccountName="kubenas-trainer", priorityClassName="low"), policy) == []


# ------------------------------------------------ mounts, env, images, profiles, emptyDirs


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_operator_judges_the_shared_table_as_admission_does(case):
    """Without the user-code right (the operator enforcing the lists, userCode false):
    refused naming the case's field first (admission reports its first failing rule), or
    accepted."""
    template, field = CASES[case]
    issues = policy_issues(spec(**template), TenancyPolicy.from_data({"operatorEnforcesLists": "true"}))
    if field is None:
        assert issues == []
    else:
        assert issues and issues[0].path.startswith(field), issues


def test_with_the_user_code_right_mounts_and_env_outside_the_lists_pass_but_never_over_the_image():
    """What admission grants a requester who may create pods, the operator grants with
    userCode "true"; protected and reserved paths stay refused for everybody."""
    policy = TenancyPolicy.from_data({"operatorEnforcesLists": "true", "userCode": "true"})
    assert policy_issues(spec(volumes=[{"name": "w", "emptyDir": {}}],
                              volumeMounts=[{"name": "w", "mountPath": "/workspace"}],
                              env=[{"name": "WANDB_PROJECT", "value": "nas"}]), policy) == []
    for path in ("/opt/conda/lib/python3.11/argparse.py", "/var/run/secrets", "/usr/local/bin/python"):
        (issue,) = policy_issues(spec(volumeMounts=[{"name": "w", "mountPath": path}]), policy)
        assert "would cover" in issue.message and "/data, /mnt, /scratch" in issue.message
    assert paths(policy_issues(spec(env=[{"name": "LD_PRELOAD", "value": "x"}]), policy)) == [
        "spec.trial.template.env[name=LD_PRELOAD]"]


def test_admission_installed_the_operator_still_refuses_what_nobody_may_do():
    """operatorEnforcesLists "false" (admission judges the requester): the operator still
    refuses the argparse attack, a 1Pi emptyDir, unconfined AppArmor and a foreign image,
    and leaves mounts and env outside the lists to admission."""
    policy = TenancyPolicy.default()
    for case in ("argparse-downward-api", "argparse-in-image", "token-path", "emptydir-1pi", "apparmor-unconfined",
                 "image-dotdot", "volume-kubenas-api-token"):
        assert policy_issues(spec(**CASES[case][0]), policy), case
    for case in ("outside-prefixes", "env-pythonwarnings"):
        assert policy_issues(spec(**CASES[case][0]), policy) == [], case


def test_the_shipped_lists_of_paths_cover_what_the_operator_mounts():
    from kubenas.contract.artifacts import MOUNT_PATH
    from kubenas.operator.manifests import TOKEN_PATH, TOKEN_VOLUME

    assert TOKEN_VOLUME.startswith(RESERVED_NAME_PREFIX)
    assert any(TOKEN_PATH.startswith(p + "/") for p in RESERVED_MOUNT_PATHS) and MOUNT_PATH in RESERVED_MOUNT_PATHS
    policy = TenancyPolicy.default()
    assert all(any(p == q or p.startswith(q + "/") for q in policy.protected_mount_paths)
               for p in ("/opt/conda/lib/python3.11/argparse.py", "/opt/conda/bin/kubenas-train", "/usr/lib", "/etc"))


def test_an_env_item_ending_in_a_star_is_a_prefix():
    assert env_allowed("KUBENAS_USER_X", ("KUBENAS_USER_*",)) and env_allowed("ANY", ("*",))
    assert not env_allowed("KUBENAS_USERX", ("KUBENAS_USER_*",)) and not env_allowed("TZ2", ("TZ",))


# ------------------------------------------------ the requester's rights, without admission

def test_references_list_every_secret_configmap_and_claim_the_pods_would_read():
    from kubenas.api.policy import references

    refs = references({"trial": {"template": {
        "volumes": [{"name": "s", "secret": {"secretName": "a"}}, {"name": "c", "configMap": {"name": "b"}},
                    {"name": "p", "persistentVolumeClaim": {"claimName": "c"}},
                    {"name": "j", "projected": {"sources": [{"secret": {"name": "d"}}, {"configMap": {"name": "e"}}]}}],
        "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "f", "key": "k"}}}],
        "imagePullSecrets": [{"name": "g"}]}},
        "artifacts": {"url": "s3://b/p", "credentialsSecret": "h"}})
    assert [(r.resource, r.name) for r in refs] == [
        ("secrets", "a"), ("configmaps", "b"), ("persistentvolumeclaims", "c"), ("secrets", "d"), ("configmaps", "e"),
        ("secrets", "f"), ("secrets", "g"), ("secrets", "h")]
    assert refs[3].field == "spec.trial.template.volumes[name=j].projected.secret"


def test_an_unknown_requester_gets_no_reference_unless_the_admin_allows_it():
    from kubenas.api.policy import Reference, Requester, reference_issues

    refs = [Reference("spec.trial.template.volumes[name=s].secret", "secrets", "db")]
    enforcing = TenancyPolicy.from_data({"operatorEnforcesLists": "true"})
    (issue,) = reference_issues(refs, None, None, enforcing)
    assert issue.path == refs[0].field and "cannot tell who created this experiment" in issue.message
    assert "operatorAllowsUncheckedReferences" in issue.message and "deploy/requester/" in issue.message
    assert reference_issues(refs, None, None, TenancyPolicy.from_data({"operatorEnforcesLists": "true",
                                                                 "operatorAllowsUncheckedReferences": "true"})) == []
    asked = []
    (denied,) = reference_issues(refs, Requester("alice", ("team",)), lambda who, ref: asked.append((who, ref)), enforcing)
    assert asked == [(Requester("alice", ("team",)), refs[0])] and denied.message.startswith("alice may not get Secret db")
    assert reference_issues(refs, Requester("alice"), lambda who, ref: True, enforcing) == []
    assert reference_issues(refs, None, None, TenancyPolicy.default()) == []    # admission judges the requester
