"""strategy.fidelity (ASHA, Hyperband), spec.final and constraints.maxLatencyMs on the real-API-server tier: the controller creates promotions
as NASTrials (through the NASTrial CRD's schema, which must keep their fidelity and
checkpoint fields), the real trainer saves checkpoint.pt to the experiment's volume,
a promotion's trainer continues from it, and the operator ends the experiment when
nothing is left to promote."""
from __future__ import annotations

import json

from tests.e2e.test_artifacts import claim, finish
from tests.e2e.test_cluster import ERROR_LINE, apply, experiment


def test_asha_promotions_continue_from_checkpoints_on_the_volume(local_only, installed, namespace, tmp_path):
    folder = tmp_path / "volume"
    folder.mkdir()
    claim(installed, namespace, "results", folder)
    body = experiment("e2e-asha", maxTrials=3, parallelTrials=2)
    body["spec"]["strategy"]["fidelity"] = {"minResource": 1, "reductionFactor": 3}
    body["spec"]["trial"]["training"]["epochs"] = 3
    body["spec"]["artifacts"] = {"persistentVolumeClaim": {"claimName": "results"}}
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-asha")
    complete = [c for c in exp["status"]["conditions"] if c["type"] == "Complete"][0]
    assert complete["reason"] == "MaxTrialsReached", complete
    assert "3 candidates (budget.maxTrials) by successive halving" in complete["message"], complete

    trials = installed.get_json("nastrials", "-n", namespace)["items"]
    ladder = {(t["spec"]["fidelity"]["candidate"], t["spec"]["fidelity"]["rung"]): t for t in trials}
    assert len(ladder) == len(trials) == 4, sorted(ladder)  # 3 candidates, the best one promoted
    first = {c: t for (c, r), t in ladder.items() if r == 0}
    assert sorted(first) == [0, 1, 2]
    best = max(first, key=lambda c: (first[c]["status"]["reward"], -c))
    promoted = ladder[(best, 1)]
    below = first[best]["metadata"]["name"]
    # The API server kept the fields the trainer needs (a structural schema prunes unknown ones).
    assert promoted["spec"]["training"]["epochs"] == 3 and promoted["spec"]["training"]["scheduleEpochs"] == 3
    assert promoted["spec"]["checkpoint"] == {"save": False,
                                              "resumeFrom": f"/var/lib/kubenas/artifacts/{below}/checkpoint.pt"}
    status = promoted["status"]
    assert status["phase"] == "Succeeded", status
    assert status["metrics"]["resumedFromEpoch"] == 1, status["metrics"]  # continued, not retrained
    assert len(status["history"]) == 3
    assert status["history"][0] == first[best]["status"]["history"][0]
    own = folder / f"e2e-asha_{exp['metadata']['uid']}"  # the experiment's folder: its name and uid
    for c, t in first.items():  # every rung-0 trial left its checkpoint on the volume
        assert t["spec"]["checkpoint"]["save"] is True
        assert (own / t["metadata"]["name"] / "checkpoint.pt").stat().st_size > 0
    result = json.loads((own / promoted["metadata"]["name"] / "result.json").read_text())
    assert result["metrics"]["resumedFromEpoch"] == 1


def test_spec_final_reevaluates_the_best_through_the_controllers_own_rbac(installed, namespace):
    """spec.final end to end on the real API server: the controller, under the RBAC of
    deploy/rbac.yaml (it now GETs the original NASTrial), creates the re-evaluation trials
    once the search is done; the operator ends the experiment on the best mean."""
    body = experiment("e2e-final-run", maxTrials=2, parallelTrials=2)
    body["spec"]["final"] = {"topK": 1, "seeds": 2}
    body["spec"]["objective"].pop("target", None)
    body["spec"]["trial"]["training"]["seed"] = 5
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-final-run")
    complete = [c for c in exp["status"]["conditions"] if c["type"] == "Complete"][0]
    assert "re-evaluated with 2 seeds each (1 more trial" in complete["message"], complete

    trials = {t["metadata"]["name"]: t for t in installed.get_json("nastrials", "-n", namespace)["items"]}
    assert sorted(trials) == ["e2e-final-run-0", "e2e-final-run-1", "e2e-final-run-2"]
    searched = {n: t for n, t in trials.items() if not t["spec"].get("reevaluationOf")}
    top = max(searched, key=lambda n: (searched[n]["status"]["reward"], -searched[n]["spec"]["index"]))
    again = trials["e2e-final-run-2"]
    assert again["spec"]["reevaluationOf"] == top
    assert again["spec"]["training"]["seed"] == 6  # the original's seed + 1
    assert again["spec"]["architecture"] == trials[top]["spec"]["architecture"]
    assert again["status"]["phase"] == "Succeeded", again["status"]
    best = exp["status"]["bestTrial"]
    assert best["name"] == top
    rewards = [trials[top]["status"]["reward"], again["status"]["reward"]]
    assert best["final"]["trials"] == [top, "e2e-final-run-2"] and best["final"]["n"] == 2
    assert abs(best["final"]["mean"] - sum(rewards) / 2) < 1e-9
    # The controller never hit a forbidden GET (it would log an error and never re-evaluate).
    text = installed.logs_ever(namespace, "e2e-final-run-controller")
    assert not ERROR_LINE.findall(text) and "forbidden" not in text.lower(), text[-3000:]


def test_hyperband_brackets_run_on_the_real_tier(local_only, installed, namespace, tmp_path):
    folder = tmp_path / "volume"
    folder.mkdir()
    claim(installed, namespace, "results", folder)
    body = experiment("e2e-hb", maxTrials=5, parallelTrials=2)
    body["spec"]["strategy"]["fidelity"] = {"type": "hyperband", "minResource": 1, "reductionFactor": 3}
    body["spec"]["trial"]["training"]["epochs"] = 3
    body["spec"]["artifacts"] = {"persistentVolumeClaim": {"claimName": "results"}}
    apply(installed, namespace, body)
    exp = finish(installed, namespace, "e2e-hb")
    complete = [c for c in exp["status"]["conditions"] if c["type"] == "Complete"][0]
    assert "5 candidates (budget.maxTrials) by Hyperband" in complete["message"], complete

    trials = installed.get_json("nastrials", "-n", namespace)["items"]
    ladder = {(t["spec"]["fidelity"]["candidate"], t["spec"]["fidelity"]["rung"]): t for t in trials}
    # rungs 1 and 3 epochs; the cycle puts candidates 0, 2, 4 at 1 epoch and 1, 3 straight at 3
    best = max((0, 2, 4), key=lambda c: (ladder[(c, 0)]["status"]["reward"], -c))  # bracket 0's best of 3
    assert sorted(ladder) == sorted([(0, 0), (2, 0), (4, 0), (1, 1), (3, 1), (best, 1)]), sorted(ladder)
    for c in (1, 3):
        spec, status = ladder[(c, 1)]["spec"], ladder[(c, 1)]["status"]
        assert spec["checkpoint"] == {"save": False, "resumeFrom": None} and spec["training"]["epochs"] == 3
        assert status["phase"] == "Succeeded" and status["metrics"]["resumedFromEpoch"] == 0
    promoted = ladder[(best, 1)]["status"]
    assert promoted["phase"] == "Succeeded" and promoted["metrics"]["resumedFromEpoch"] == 1, promoted


def test_the_nastrial_schema_keeps_what_promotions_and_limits_need(cluster, namespace):
    """A structural schema prunes fields it does not list: the trainer would then silently
    train from scratch, or without its latency limit. A server-side dry run shows what the
    API server stores."""
    body = {"apiVersion": "kubenas.io/v1alpha1", "kind": "NASTrial",
            "metadata": {"name": "schema-7", "namespace": namespace},
            "spec": {"experiment": "schema", "index": 7,
                     "architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 8}]},
                     "training": {"epochs": 3, "scheduleEpochs": 9},
                     "fidelity": {"candidate": 2, "rung": 1},
                     "checkpoint": {"save": True, "resumeFrom": "s3://b/nas/schema/schema-2/checkpoint.pt"},
                     "constraints": {"maxLatencyMs": 2.5}, "reevaluationOf": "schema-2"}}
    stored = json.loads(cluster.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-",
                                        input=json.dumps(body)).stdout)["spec"]
    for key in ("training", "fidelity", "checkpoint", "constraints", "reevaluationOf"):
        assert stored[key] == body["spec"][key], (key, stored.get(key))


def test_the_status_schema_keeps_the_best_mean_of_spec_final(cluster, namespace):
    """status.bestTrial.final as the operator folds it survives the status schema unpruned
    (a server-side dry run, so no operator of another test races it)."""
    from kubenas.api.defaults import with_defaults
    from kubenas.experiment import final, from_row
    from kubenas.operator.status import fold

    body = experiment("e2e-final", maxTrials=2)
    body["spec"]["final"] = {"topK": 1, "seeds": 3}
    body["spec"]["objective"].pop("target", None)
    apply(cluster, namespace, body)
    arch = {"type": "chain", "layers": [{"op": "conv", "filters": 8}]}
    rows = [{"name": "e2e-final-0", "index": 0, "status": "Succeeded", "reward": 0.9, "architecture": arch},
            {"name": "e2e-final-1", "index": 1, "status": "Succeeded", "reward": 0.8, "architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 16}]}},
            {"name": "e2e-final-2", "index": 2, "status": "Succeeded", "reward": 0.7, "reevaluationOf": "e2e-final-0"},
            {"name": "e2e-final-3", "index": 3, "status": "Succeeded", "reward": 0.8, "reevaluationOf": "e2e-final-0"}]
    records = [from_row(r) for r in rows]
    top = final.aggregates(with_defaults(body["spec"]), final.rows_of(records))[0]
    best = fold(records, "maximize", final=top)["bestTrial"]
    assert best["final"]["trials"] == ["e2e-final-0", "e2e-final-2", "e2e-final-3"]
    stored = cluster.kubectl("patch", "nasexperiment", "e2e-final", "-n", namespace, "--subresource=status",
                             "--type=merge", "--dry-run=server", "-o", "json",
                             "-p", json.dumps({"status": {"bestTrial": best}}))
    assert json.loads(stored.stdout)["status"]["bestTrial"] == best


def test_the_api_server_accepts_hyperband_and_names_an_unknown_fidelity_type(cluster, namespace):
    body = experiment("e2e-hyperband", maxTrials=6)
    body["spec"]["strategy"]["fidelity"] = {"type": "hyperband", "minResource": 1, "reductionFactor": 3}
    body["spec"]["trial"]["training"]["epochs"] = 9
    done = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body),
                           check=False)
    assert done.returncode == 0, done.stderr
    body["spec"]["strategy"]["fidelity"]["type"] = "bohb"
    done = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(body),
                           check=False)
    assert done.returncode != 0 and "spec.strategy.fidelity.type" in done.stderr, done.stderr
    assert "hyperband" in done.stderr  # the refusal names the values that would do
