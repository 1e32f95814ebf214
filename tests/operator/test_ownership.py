"""Own before you touch: the operator finds its objects by deterministic names (the
controller Deployment ``<experiment>-controller``, a trial's Job ``<trial>``), and a name
says nothing about whose the object is. Only an ownerReference to this experiment's or
trial's uid does; anything else ends the experiment or trial with NameConflict and is
never adopted, read or deleted. The real API server's side is tests/e2e/test_ownership.py."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import yaml

from kubenas.api.defaults import with_defaults
from kubenas.cluster.objects import (FOREIGN, OURS, STALE, accepted_spec_text, events_about, owned_pods, owner_reference,
                                     ownership)
from kubenas.contract import NAME_CONFLICT
from kubenas.operator.reconcile import Reconciler
from kubenas.operator.trial_state import name_conflict_action

EXP = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
       "metadata": {"name": "web", "namespace": "ns", "uid": "u-web"}}
NOW = "2026-01-01T00:00:00Z"
REPO = Path(__file__).resolve().parents[2]


def owned(uid: str, owner: dict = EXP, **extra) -> dict:
    return {"metadata": {"name": "x", "uid": uid, "ownerReferences": [owner_reference(owner)], **extra}}


def test_whose_an_object_is_is_decided_by_the_owner_uid_not_the_name():
    assert ownership(owned("d-1"), EXP) == OURS
    assert ownership({"metadata": {"name": "web-controller"}}, EXP) == FOREIGN
    earlier = {**EXP, "metadata": {**EXP["metadata"], "uid": "u-earlier"}}
    assert ownership(owned("d-2", earlier), EXP) == STALE  # the garbage collector removes it: wait
    another = {**EXP, "metadata": {**EXP["metadata"], "name": "other", "uid": "u-other"}}
    assert ownership(owned("d-3", another), EXP) == FOREIGN
    not_controller = owned("d-4", earlier)
    not_controller["metadata"]["ownerReferences"][0]["controller"] = False
    assert ownership(not_controller, EXP) == FOREIGN
    other_group = owned("d-5", {**earlier, "apiVersion": "evil.example/v1"})
    assert ownership(other_group, EXP) == FOREIGN


def test_only_the_jobs_own_pods_and_events_are_read():
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "jobx-0", "uid": "j-1"}}
    mine = owned("p-1", job)
    namesake = {"metadata": {"name": "p-2", "labels": {"job-name": "jobx-0"}}}
    assert owned_pods(job, [mine, namesake]) == [mine]
    events = [{"involvedObject": {"kind": "Job", "name": "jobx-0", "uid": "j-1"}, "message": "a"},
              {"involvedObject": {"kind": "Job", "name": "jobx-0", "uid": "j-0"}, "message": "b"},
              {"involvedObject": {"kind": "Job", "name": "jobx-0"}, "message": "c"}]
    assert [e["message"] for e in events_about(job, events)] == ["a"]


def test_a_name_conflict_ends_the_trial_and_keeps_the_job():
    trial = {"metadata": {"name": "jobx-0", "namespace": "ns", "uid": "t-1"}}
    action = name_conflict_action(trial, now=NOW)
    assert action.status["phase"] == "Failed" and action.status["reason"] == NAME_CONFLICT
    assert "Job jobx-0 already exists in namespace ns and is not this trial's" in action.status["message"]
    assert not action.delete_job and not action.create_job


def accepted_experiment(phase: str | None = None) -> dict:
    with open(REPO / "deploy" / "examples" / "cluster-digits-smoke.yaml") as f:
        spec = with_defaults(yaml.safe_load(f)["spec"])
    status = {"acceptedSpec": accepted_spec_text(spec)}
    if phase:
        status["phase"] = phase
    return {**EXP, "spec": spec, "status": status}


def reconciler(deployment: dict | None) -> tuple[Reconciler, mock.Mock]:
    kube = mock.Mock()
    kube.create.return_value = None  # 409: the name is taken
    kube.get.return_value = deployment
    kube.patch_custom_status.return_value = {}
    return Reconciler(kube, manage_rbac=False), kube


def test_an_experiment_whose_controller_name_is_taken_fails_name_conflict_and_deletes_nothing():
    admins = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web-controller", "uid": "d-admin"}}
    r, kube = reconciler(admins)
    r._experiment(accepted_experiment(), [], datetime(2026, 1, 1, tzinfo=timezone.utc))
    (_, _, _, patch), _ = kube.patch_custom_status.call_args
    assert patch["status"]["phase"] == "Failed", patch
    assert patch["status"]["message"].startswith("Deployment web-controller already exists in namespace ns and is "
                                                 "not this experiment's"), patch
    assert any(c["reason"] == NAME_CONFLICT for c in patch["status"]["conditions"]), patch
    kube.delete.assert_not_called()
    # Finished now: the later folds do not delete it either.
    r._experiment({**accepted_experiment("Failed")}, [], datetime(2026, 1, 1, tzinfo=timezone.utc))
    kube.delete.assert_not_called()


def test_a_finished_experiment_deletes_its_own_controller_by_uid_only():
    ours = {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web-controller", "uid": "d-1", "ownerReferences": [owner_reference(EXP)]}}
    r, kube = reconciler(ours)
    r._experiment(accepted_experiment("Succeeded"), [], datetime(2026, 1, 1, tzinfo=timezone.utc))
    kube.delete.assert_called_once_with("Deployment", "ns", "web-controller", "d-1")


def trial_and_experiment():
    exp = accepted_experiment("Running")
    trial = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial",
             "metadata": {"name": "web-0", "namespace": "ns", "uid": "t-1", "resourceVersion": "1",
                          "ownerReferences": [owner_reference(exp)]},
             "spec": {"experiment": "web", "index": 0}, "status": {"phase": "Pending", "jobName": "web-0"}}
    return trial, exp


def test_a_trial_whose_job_name_is_taken_fails_and_never_reads_or_deletes_that_job():
    trial, exp = trial_and_experiment()
    completed = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "web-0", "uid": "j-admin"},
                 "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}}
    r, kube = reconciler(completed)
    decision = r.trial("ns", "web-0", [], body=trial, experiment=exp)
    assert decision.status["reason"] == NAME_CONFLICT and decision.status["phase"] == "Failed"
    kube.list_pods.assert_not_called()  # a foreign Job's termination message is never a reward
    kube.list_events.assert_not_called()
    kube.delete.assert_not_called()
    kube.create.assert_not_called()
    (_, _, _, patch), _ = kube.patch_custom_status.call_args
    assert "reward" not in patch["status"], patch


def test_a_namesake_pod_with_a_reward_in_its_termination_message_is_not_the_trials_result():
    trial, exp = trial_and_experiment()
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": "web-0", "uid": "j-1", "ownerReferences": [owner_reference(trial)]},
           "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}}
    namesake = {"metadata": {"name": "web-0-evil", "labels": {"job-name": "web-0"}},
                "status": {"phase": "Succeeded", "containerStatuses": [{"state": {"terminated": {
                    "exitCode": 0, "message": json.dumps({"status": "Succeeded", "reward": 0.99})}}}]}}
    r, kube = reconciler(job)
    kube.list_pods.return_value = [namesake]
    decision = r.trial("ns", "web-0", [], body=trial, experiment=exp)
    assert decision.status["phase"] == "Failed" and decision.status["reason"] == "NoReward", decision.status
