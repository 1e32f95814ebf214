"""An experiment the API server will not let the operator accept ends Failed (InvalidSpec)
naming why, instead of staying Pending with no condition (issue 23)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from unittest import mock

import yaml
from kubernetes.client.exceptions import ApiException

from kubenas.contract.reasons import INVALID_SPEC
from kubenas.operator.reconcile import Reconciler

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def pending(spec: dict) -> dict:
    return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment", "spec": spec,
            "metadata": {"name": "big", "namespace": "ns", "uid": "u-big", "generation": 1}}


def smoke_spec() -> dict:
    return yaml.safe_load((REPO / "deploy/examples/cluster-digits-smoke.yaml").read_text())["spec"]


def test_an_accepted_spec_the_api_server_refuses_to_store_fails_invalid_spec():
    refusal = ApiException(status=422, reason="Unprocessable Entity")
    refusal.body = json.dumps({"message": 'NASExperiment.kubenas.io "big" is invalid: status.acceptedSpec: '
                                          "Too long: may not be more than 262144 bytes"})
    kube = mock.Mock()
    kube.get.return_value = None  # no policy ConfigMap: the shipped defaults
    kube.patch_custom_status.side_effect = [refusal, {}]
    Reconciler(kube, manage_rbac=False)._experiment(pending(smoke_spec()), [], NOW)

    (_, _, _, accepting), _ = kube.patch_custom_status.call_args_list[0]
    assert "acceptedSpec" in accepting["status"]
    (_, _, _, failing), _ = kube.patch_custom_status.call_args_list[1]
    status = failing["status"]
    assert status["phase"] == "Failed" and "acceptedSpec" not in status
    assert status["message"].startswith("status.acceptedSpec: the API server refused to store the accepted spec (422)")
    assert "Too long: may not be more than 262144 bytes" in status["message"]
    (valid,) = [c for c in status["conditions"] if c["type"] == "Valid"]
    assert (valid["status"], valid["reason"]) == ("False", INVALID_SPEC)
    kube.create.assert_not_called()  # no controller for an experiment that never started


def test_a_spec_too_large_is_refused_before_any_write_of_it():
    spec = smoke_spec()
    spec["trial"]["template"]["env"] = [{"name": f"V{i}", "value": "x" * 16_384} for i in range(64)]
    kube = mock.Mock()
    kube.patch_custom_status.return_value = {}
    Reconciler(kube, manage_rbac=False)._experiment(pending(spec), [], NOW)
    (call,) = kube.patch_custom_status.call_args_list
    status = call.args[3]["status"]
    assert status["phase"] == "Failed" and "acceptedSpec" not in status
    assert status["message"].startswith("spec: is 10") and "status.acceptedSpec, which holds at most 262144" in status["message"]
    assert any(c["reason"] == INVALID_SPEC for c in status["conditions"])
