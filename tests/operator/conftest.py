from __future__ import annotations

import copy

import pytest

from kubenas.api.defaults import with_defaults

EXPERIMENT = {
    "apiVersion": "kubenas.io/v1alpha1",
    "kind": "NASExperiment",
    "metadata": {"name": "digits-evolution", "namespace": "research", "uid": "0f0f0f0f-1111-2222-3333-444444444444",
                 "generation": 1},
    "spec": {
        "objective": {"metric": "accuracy", "goal": "maximize", "target": 0.99},
        "searchSpace": {"type": "chain", "chain": {"layers": 3, "filters": [8, 16], "kernelSizes": [3],
                                                    "strides": [1, 2]}},
        "strategy": {"type": "random", "seed": 1},
        "budget": {"maxTrials": 40, "parallelTrials": 2, "maxFailedTrials": 5, "trialTimeoutSeconds": 600},
        "trial": {
            "dataset": {"name": "digits"},
            "training": {"epochs": 8, "batchSize": 64},
            "template": {
                "image": "ghcr.io/owner/kubenas-trainer:0.1.0",
                "resources": {"limits": {"nvidia.com/gpu": 1, "memory": "4Gi"}, "requests": {"cpu": 2}},
                "nodeSelector": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
                "priorityClassName": "nas-low",
                "env": [{"name": "EXTRA", "value": "1"}, {"name": "KUBENAS_TRIAL", "value": "hijack"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "datasets"}}],
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True}],
                "labels": {"team": "vision"},
                "annotations": {"example.com/cost-center": "42"},
            },
        },
    },
}


@pytest.fixture()
def experiment():
    return copy.deepcopy(EXPERIMENT)


@pytest.fixture()
def spec(experiment):
    return with_defaults(experiment["spec"])


@pytest.fixture()
def trial(experiment, spec):
    from kubenas.cluster.objects import trial_object

    candidate = {"architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1}]},
                 "hyperparameters": {"learningRate": 0.01}}
    obj = trial_object(experiment, spec, 12345, candidate)
    obj["metadata"]["uid"] = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
    obj["metadata"]["resourceVersion"] = "7"
    return obj
