"""The one-shot plan (``spec.oneShot``, kubenas.experiment.plan.OneShot) as the local runner
and the controller call it: the trials it asks for, their specs, what the strategy
registers and observes of each, and the ending; all from NASTrial objects alone, so a
restarted controller decides the same."""
import copy

import pytest

from kubenas.api.defaults import with_defaults
from kubenas.api.trials import build_trial_spec
from kubenas.contract import FAILED, MAX_TRIALS_REACHED, NO_TRIAL_SUCCEEDED, RUNNING, SUCCEEDED
from kubenas.experiment import from_row, from_trial_object, row_from_trial_object, twin_key
from kubenas.experiment.plan import OneShot, plan_for, row_marks

CELL = {"nodes": 3, "operations": ["none", "skip_connect", "conv_3x3"], "channels": 8, "cellsPerStage": 1,
        "stages": 1}
SPEC = with_defaults({
    "objective": {"metric": "accuracy"},
    "searchSpace": {"type": "cell", "cell": CELL},
    "strategy": {"type": "random", "seed": 0},
    "oneShot": {"supernetEpochs": 3, "candidates": 6, "candidatesPerTrial": 4, "topK": 2},
    "budget": {"maxTrials": 7, "parallelTrials": 3},
    "trial": {"dataset": {"name": "digits"}, "training": {"epochs": 2}},
})


def genotype(k: int) -> dict:
    """Candidate k: a distinct genotype of CELL."""
    ops = CELL["operations"]
    return {"type": "cell", "nodes": 3, "edges": [[ops[k % 3]], [ops[(k // 3) % 3], ops[k % 2]]], "channels": 8,
            "cellsPerStage": 1, "stages": 1}


class Cluster:
    """NASTrial objects made the way the controller makes them (its _trial_body), whose
    status a test sets; the plan reads them back through from_trial_object."""

    def __init__(self, plan):
        self.plan, self.trials = plan, {}

    def records(self):
        return [from_trial_object(t) for t in self.trials.values()]

    def start(self, slots=None) -> list[dict]:
        made = []
        for nxt in self.plan.next_trials(self.records(), slots):
            proposals = [{"architecture": genotype(i), "hyperparameters": {}} for i in nxt.batch]
            source = None
            if nxt.given is not None:
                proposal = nxt.given
            else:
                source = self.trials[nxt.copies]["spec"]
                proposal = self.plan.copied_candidate(nxt, source)
            resume_from = f"s3://b/os/{nxt.resume}/checkpoint.pt" if nxt.resume else None
            spec = self.plan.trial_spec(nxt, build_trial_spec("os", SPEC, nxt.index, proposal), source, resume_from,
                                        proposals)
            body = {"metadata": {"name": f"os-{nxt.index}"}, "spec": spec, "status": {"phase": RUNNING}}
            self.trials[body["metadata"]["name"]] = body
            made.append(body)
        return made

    def finish(self, name, phase=SUCCEEDED, **status):
        self.trials[name]["status"] = {"phase": phase, **status}


def kinds(bodies):
    return [(b["metadata"]["name"], b["spec"]["oneshot"]["kind"]) for b in bodies]


def test_plan_for_picks_the_one_shot_plan_and_counts_its_trials():
    plan = plan_for(SPEC)
    assert isinstance(plan, OneShot)
    assert plan.planned_trials() == 1 + 2 + 2


def test_three_phases_from_the_trials_alone():
    cluster = Cluster(plan_for(SPEC))
    first = cluster.start()
    assert kinds(first) == [("os-0", "supernet")]  # alone, whatever the free slots
    supernet = first[0]["spec"]
    assert supernet["oneshot"] == {"kind": "supernet", "space": CELL, "epochs": 3, "sampling": "uniform"}
    assert supernet["architecture"]["type"] == "cell" and supernet["training"]["epochs"] == 2
    assert cluster.start() == []  # nothing is scored while it trains (a killed pod resumes inside it)

    cluster.finish("os-0", metrics={"epochs": 3})
    scoring = cluster.start()
    assert kinds(scoring) == [("os-1", "score"), ("os-2", "score")]  # one Job per batch, never per candidate
    batch = scoring[0]["spec"]["oneshot"]
    assert batch["indices"] == [0, 1, 2, 3] and batch["candidates"] == [genotype(i) for i in range(4)]
    assert batch["supernetCheckpoint"] == "s3://b/os/os-0/checkpoint.pt"
    assert scoring[1]["spec"]["oneshot"]["indices"] == [4, 5]

    plan = cluster.plan
    record = from_trial_object(cluster.trials["os-1"])
    assert plan.proposals(record, cluster.trials["os-1"]["spec"]) == [
        (i, {"architecture": genotype(i), "hyperparameters": {}}) for i in range(4)]
    assert plan.observations(record, cluster.trials["os-1"]["spec"], None) == []  # not finished

    cluster.finish("os-1", scores=[0.5, 0.9, None, 0.7])
    cluster.finish("os-2", scores=[0.95, 0.1])
    record = from_trial_object(cluster.trials["os-1"])
    assert [(i, s) for i, _, s, _ in plan.observations(record, cluster.trials["os-1"]["spec"], None)] == [
        (0, 0.5), (1, 0.9), (2, None), (3, 0.7)]
    for r in cluster.records():  # phase trials answer no repeat and are no best
        assert r.reward is None and (r.oneshot == "retrain" or twin_key(r) is None)

    retrain = cluster.start()
    assert kinds(retrain) == [("os-3", "retrain"), ("os-4", "retrain")]
    # the best two scores: candidate 4 (0.95, in os-2), candidate 1 (0.9, in os-1); ordinary trials of them
    assert [b["spec"]["architecture"] for b in retrain] == [genotype(4), genotype(1)]
    assert [b["spec"]["oneshot"] for b in retrain] == [{"kind": "retrain", "candidate": 4},
                                                        {"kind": "retrain", "candidate": 1}]
    assert all(plan.proposals(from_trial_object(b), b["spec"]) == [] for b in retrain)  # the strategy never sees them
    assert plan.may_stop_early(from_trial_object(retrain[0]))
    assert not plan.may_stop_early(from_trial_object(cluster.trials["os-1"]))
    assert plan.outcome(cluster.records(), 0) is None

    cluster.finish("os-3", reward=0.96)
    cluster.finish("os-4", reward=0.97)
    assert cluster.start() == []
    outcome = plan.outcome(cluster.records(), 0)
    assert (outcome.phase, outcome.reason) == (SUCCEEDED, MAX_TRIALS_REACHED)
    assert "best of 2 retrained" in outcome.message and "5 of 6" in outcome.message

    # A restarted controller: a fresh plan over the same objects decides the same.
    again = plan_for(copy.deepcopy(SPEC))
    assert again.next_trials(cluster.records()) == [] and again.outcome(cluster.records(), 0) == outcome


def test_a_failed_score_trial_is_retried_with_the_same_candidates_and_not_observed():
    cluster = Cluster(plan_for(SPEC))
    cluster.start()
    cluster.finish("os-0")
    cluster.start()
    cluster.finish("os-1", FAILED, reason="OutOfMemory")
    record = from_trial_object(cluster.trials["os-1"])
    assert cluster.plan.observations(record, cluster.trials["os-1"]["spec"], None) == []
    retry = cluster.start()
    assert kinds(retry) == [("os-3", "score")]
    assert retry[0]["spec"]["oneshot"]["indices"] == [0, 1, 2, 3]


def test_max_trials_bounds_retries_and_a_spent_budget_ends_it():
    spec = copy.deepcopy(SPEC)
    spec["budget"]["maxTrials"] = 5  # the planned trials exactly: no room for a retry
    cluster = Cluster(plan_for(spec))
    cluster.start()
    cluster.finish("os-0")
    cluster.start()
    cluster.finish("os-1", FAILED, reason="OutOfMemory")
    cluster.finish("os-2", scores=[0.4, 0.6])
    assert kinds(cluster.start()) == [("os-3", "retrain"), ("os-4", "retrain")]  # scoring given up: no room
    cluster.finish("os-3", reward=0.9)
    cluster.finish("os-4", FAILED)
    assert cluster.start() == []
    outcome = cluster.plan.outcome(cluster.records(), 0)
    assert outcome.phase == SUCCEEDED and "2 of 6" in outcome.message


def test_a_failed_supernet_fails_the_experiment_naming_it():
    cluster = Cluster(plan_for(SPEC))
    cluster.start()
    cluster.finish("os-0", FAILED, reason="OutOfMemory")
    outcome = cluster.plan.outcome(cluster.records(), 0)
    assert (outcome.phase, outcome.reason) == (FAILED, NO_TRIAL_SUCCEEDED) and "os-0" in outcome.message
    assert cluster.start() == []


def test_the_deadline_stops_it():
    spec = copy.deepcopy(SPEC)
    spec["budget"]["deadlineSeconds"] = 10
    plan = plan_for(spec)
    assert plan.outcome([], 11).reason == "DeadlineExceeded" and plan.next_trials([], None, 11) == []


def test_a_local_row_keeps_what_the_plan_reads_back():
    """trials.jsonl rows (row_marks + the trainer's scores) read back as the NASTrial does."""
    cluster = Cluster(plan_for(SPEC))
    cluster.start()
    cluster.finish("os-0")
    body = cluster.start()[0]
    cluster.finish("os-1", scores=[0.5, 0.9, 0.1, 0.7])
    row = {"name": "os-1", "index": 1, "status": SUCCEEDED, "reward": None, "scores": [0.5, 0.9, 0.1, 0.7],
           "architecture": body["spec"]["architecture"], **row_marks(body["spec"])}
    assert "space" not in row["oneshot"]
    plan = cluster.plan
    local = plan.observations(from_row(row), row, None)
    cluster_side = plan.observations(from_trial_object(cluster.trials["os-1"]), body["spec"], None)
    assert local == cluster_side and len(local) == 4
    assert from_row(row_from_trial_object(cluster.trials["os-1"])).scores == from_row(row).scores


@pytest.mark.parametrize("goal, best", [("maximize", [1, 0]), ("minimize", [2, 3])])
def test_the_top_follows_the_goal(goal, best):
    spec = copy.deepcopy(SPEC)
    spec["objective"] = {"metric": "loss", "goal": "minimize", "penalties": []} if goal == "minimize" else \
        spec["objective"]
    spec["oneShot"] = {"candidates": 4, "candidatesPerTrial": 4, "topK": 2}
    spec["budget"]["maxTrials"] = 4
    cluster = Cluster(plan_for(spec))
    cluster.start()
    cluster.finish("os-0")
    cluster.start()
    cluster.finish("os-1", scores=[0.8, 0.9, 0.1, 0.2])
    assert [b["spec"]["oneshot"]["candidate"] for b in cluster.start()] == best
