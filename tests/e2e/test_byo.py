"""Bring your own training code on a real API server (docs/byo.md): the script example
runs as trial pods (`kubenas-trial --from-cluster -- python -m byo_digits.train_mlp ...`,
the node stand-in's image holds deploy/examples at /opt/kubenas/examples) and its results
land in NASTrial status; user code is admitted only from who could run a pod themselves."""
from __future__ import annotations

import copy
import json

import yaml

from tests.e2e.test_admission import EXPERIMENTS, accepted, grant, refused, tenant_namespace
from tests.e2e.test_cluster import apply, finish
from tests.realtier.cluster import REPO

EXAMPLE = REPO / "deploy" / "examples" / "byo-script-digits.yaml"


def script_experiment(name: str) -> dict:
    body = yaml.safe_load(EXAMPLE.read_text())
    body["metadata"]["name"] = name
    body["spec"]["budget"].update(maxTrials=4, parallelTrials=2)
    body["spec"]["strategy"]["evolution"]["populationSize"] = 3
    body["spec"]["trial"]["training"]["epochs"] = 5
    body["spec"]["trial"]["template"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}}
    return body


def test_a_script_that_never_imports_kubenas_reports_into_trial_status(installed, namespace):
    apply(installed, namespace, script_experiment("byo-script"))
    exp = finish(installed, namespace, "byo-script")
    trials = installed.get_json("nastrials", "-n", namespace)["items"]
    assert len(trials) == 4
    for trial in trials:
        status = trial["status"]
        assert status["phase"] == "Succeeded", status
        assert 0 < status["reward"] <= 1 and status["metrics"]["parameters"] > 0
        assert [h["epoch"] for h in status["history"]] == [1, 2, 3, 4, 5]
        assert status["reward"] == status["history"][-1]["accuracy"]
    pods = installed.pods(namespace)
    commands = [p["spec"]["containers"][0]["command"] for p in pods if p["metadata"]["name"].startswith("byo-script-")
                and "controller" not in p["metadata"]["name"]]
    assert commands and all(c[:3] == ["kubenas-trial", "--from-cluster", "--"] for c in commands)
    assert exp["status"]["bestTrial"]["reward"] > 0.5


def test_user_code_is_admitted_only_from_who_may_create_pods(installed):
    with tenant_namespace(installed, "kubenas-byo-adm") as namespace:
        def dry_run(body):
            return installed.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", user="alice",
                                     check=False, input=json.dumps(body))

        builder = yaml.safe_load((REPO / "deploy" / "examples" / "byo-builder-digits.yaml").read_text())
        refused(dry_run(script_experiment("no-command")), "spec.trial.command: runs code of your choosing",
                "(alice) may not create pods", "userCode")
        refused(dry_run(builder), "spec.trial.model.builder: runs code of your choosing")
        with_supernet = copy.deepcopy(builder)  # trial.model.supernet (spec.oneShot) is user code as well
        with_supernet["spec"]["trial"]["model"]["supernet"] = "byo_digits.models:build_supernet"
        refused(dry_run(with_supernet), "spec.trial.model.builder: runs code of your choosing")
        grant(installed, namespace, "pods", "alice", [EXPERIMENTS,
                                                       {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}])
        accepted(dry_run(script_experiment("yes-command")))
        accepted(dry_run(builder))
        # The image policy applies to user commands as to everything else.
        other_image = script_experiment("no-image")
        other_image["spec"]["trial"]["template"]["image"] = "docker.io/library/python:3.12"
        refused(dry_run(other_image), "trainerImagePrefixes")
