"""A real API server takes a Pareto search as kubenas writes it: the shipped example's
``objective.pareto`` is stored, ``status.paretoFront`` as the operator folds it survives
the status schema unpruned, and the schema refuses a cost that is not one."""
from __future__ import annotations

import copy
import json

import yaml

from kubenas.experiment import from_trial_object
from kubenas.operator.status import fold
from tests.realtier.cluster import REPO

EXAMPLE = REPO / "deploy" / "examples" / "pareto-digits-latency.yaml"


def trial(index: int, reward: float, latency: float) -> dict:
    return {"metadata": {"name": f"pareto-{index}"},
            "spec": {"index": index, "architecture": {"type": "cell", "nodes": 1, "edges": [["conv_3x3"]]}},
            "status": {"phase": "Succeeded", "reward": reward, "metrics": {"latencyMs": latency}}}


def test_the_api_server_keeps_objective_pareto_and_the_status_front(cluster):
    cluster.kubectl("apply", "-f", str(REPO / "crds"))  # as installed (a no-op after `installed`)
    cluster.wait_established()
    namespace = cluster.new_namespace("kubenas-pareto")
    try:
        exp = yaml.safe_load(EXAMPLE.read_text())
        exp["metadata"]["namespace"] = namespace
        cluster.kubectl("create", "-f", "-", input=json.dumps(exp))
        name = exp["metadata"]["name"]
        assert cluster.get_json("nasexperiment", name, "-n", namespace)["spec"]["objective"]["pareto"] == ["latencyMs"]

        records = [from_trial_object(trial(i, r, l)) for i, (r, l) in enumerate([(0.9, 2.0), (0.95, 3.5), (0.8, 1.0),
                                                                                 (0.85, 2.5)])]
        front = fold(records, "maximize", pareto=["latencyMs"])["paretoFront"]
        assert [t["name"] for t in front] == ["pareto-1", "pareto-0", "pareto-2"]
        # A server-side dry run: the object as the API server would store it (schema
        # pruning included), unaffected by an operator of another test writing the same
        # experiment's status meanwhile.
        stored = cluster.kubectl("patch", "nasexperiment", name, "-n", namespace, "--subresource=status",
                                 "--type=merge", "--dry-run=server", "-o", "json",
                                 "-p", json.dumps({"status": {"paretoFront": front}}))
        assert json.loads(stored.stdout)["status"]["paretoFront"] == front

        bad = copy.deepcopy(exp)
        bad["metadata"]["name"] = "pareto-bad"
        bad["spec"]["objective"]["pareto"] = ["accuracy"]
        refused = cluster.kubectl("create", "-f", "-", input=json.dumps(bad), check=False)
        assert refused.returncode != 0
        assert "spec.objective.pareto[0]" in refused.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
