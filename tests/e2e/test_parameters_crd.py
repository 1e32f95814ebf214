"""A real API server takes the parameters space as kubenas writes it: the experiment's
nested decisions (three levels, mixed categorical values) are stored unchanged, a
NASTrial keeps the assignment whole (no pruning), and the schema refuses an unknown type."""
from __future__ import annotations

import copy
import json
import random

from kubenas.api.trials import build_trial_spec
from kubenas.experiment.record import candidate
from kubenas.space import SearchSpace
from tests.realtier.cluster import REPO

SPACE = {"type": "parameters", "parameters": [
    {"name": "lr", "type": "logUniform", "min": 1.0e-4, "max": 0.1},
    {"name": "act", "type": "categorical", "values": ["relu", 1, True, 0.5]},
    {"name": "layers", "type": "repeat", "min": 1, "max": 3, "parameters": [
        {"name": "width", "type": "int", "min": 16, "max": 128, "step": 16},
        {"name": "kind", "type": "conditional", "options": [
            {"name": "dense"},
            {"name": "res", "parameters": [{"name": "scale", "type": "uniform", "min": 0, "max": 1}]}]}]}]}


def experiment(name: str, namespace: str, space: dict) -> dict:
    return {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASExperiment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"objective": {"metric": "accuracy"}, "searchSpace": space, "strategy": {"type": "evolution"},
                     "budget": {"maxTrials": 20}, "trial": {"dataset": {"name": "digits"}}}}


def test_the_api_server_keeps_parameters_spaces_and_assignments(cluster):
    cluster.kubectl("apply", "-f", str(REPO / "crds"))  # as installed (a no-op after `installed`)
    cluster.wait_established()
    namespace = cluster.new_namespace("kubenas-byo-space")
    try:
        # Not applied by the operator (none runs here): the API server's own schema only.
        exp = experiment("byo", namespace, SPACE)
        cluster.kubectl("create", "-f", "-", input=json.dumps(exp))
        stored = cluster.get_json("nasexperiment", "byo", "-n", namespace)
        assert stored["spec"]["searchSpace"] == SPACE

        space = SearchSpace.from_spec(SPACE)
        for index in range(5):
            proposal = space.sample(random.Random(index))
            trial = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial",
                     "metadata": {"name": f"byo-{index}", "namespace": namespace},
                     "spec": build_trial_spec("byo", exp["spec"], index, proposal)}
            cluster.kubectl("create", "-f", "-", input=json.dumps(trial))
            read = cluster.get_json("nastrial", f"byo-{index}", "-n", namespace)
            assert read["spec"]["architecture"] == proposal["architecture"]
            assert space.canonical(candidate(read["spec"])) == proposal

        bad = experiment("bad", namespace, copy.deepcopy(SPACE))
        bad["spec"]["searchSpace"]["parameters"][0]["type"] = "float"
        refused = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
        assert refused.returncode != 0
        assert "spec.searchSpace.parameters[0].type" in refused.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
