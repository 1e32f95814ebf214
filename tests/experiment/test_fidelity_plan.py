"""Multi-fidelity decisions over trial records (kubenas.experiment.fidelity): what to train
next, and when the budget is spent."""
import random

import pytest

from kubenas.api.defaults import with_defaults
from kubenas.contract import FAILED, MAX_TRIALS_REACHED, RUNNING, SUCCEEDED
from kubenas.experiment import experiment_outcome, fidelity, from_row
from kubenas.experiment.plan import plan_for


def starts(spec, records):
    """The indices of the trials the experiment plan starts now."""
    return [t.index for t in plan_for(spec).next_trials(records)]

SPACE = {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_1x1", "conv_3x3"],
                                  "channels": 8, "cellsPerStage": 1, "stages": 2}}


def make_spec(max_trials=12, epochs=9, min_resource=1, eta=3, goal="maximize", parallel=1, kind="asha"):
    return with_defaults({
        "objective": {"metric": "accuracy" if goal == "maximize" else "loss", "goal": goal},
        "searchSpace": SPACE,
        "strategy": {"type": "random", "seed": 3,
                     "fidelity": {"type": kind, "minResource": min_resource, "reductionFactor": eta}},
        "budget": {"maxTrials": max_trials, "parallelTrials": parallel},
        "trial": {"training": {"epochs": epochs}},
    })


def row(index, job, status=SUCCEEDED, reward=None):
    return {"name": f"t-{index}", "index": index, "status": status, "reward": reward,
            fidelity.FIDELITY: job.field()}


def reward_of(candidate: int, epochs: int) -> float:
    """A deterministic noisy learning curve per candidate: better with epochs, ranks shuffled early."""
    rng = random.Random(candidate)
    quality, noise = rng.random(), rng.random()
    return round(quality * epochs / 9 + (1 - epochs / 9) * noise, 6)


def test_rungs_come_from_min_resource_reduction_factor_and_the_epochs():
    assert fidelity.plan(make_spec()).rungs == (1, 3, 9)
    assert fidelity.plan(make_spec(epochs=10, min_resource=2, eta=2)).rungs == (2, 4, 8, 10)
    assert fidelity.plan(with_defaults({"trial": {"training": {"epochs": 5}}, "strategy": {"type": "random"},
                                        "budget": {"maxTrials": 3}})) is None


def test_new_candidates_fill_the_slots_until_a_rung_can_promote():
    spec = make_spec(max_trials=12, parallel=4)
    jobs = fidelity.next_rungs(spec, [], 4)
    assert [(j.candidate, j.rung, j.epochs, j.resume_trial) for j in jobs] == [(c, 0, 1, None) for c in range(4)]
    # three results at rung 0: the best of them (1 in 3) is promoted before any new candidate
    rows = [row(i, j, reward=r) for i, (j, r) in enumerate(zip(jobs[:3], (0.2, 0.9, 0.5)))]
    rows.append(row(3, jobs[3], status=RUNNING))
    records = [from_row(r, details=False) for r in rows]
    nxt = fidelity.next_rungs(spec, records, 2)
    assert (nxt[0].candidate, nxt[0].rung, nxt[0].epochs, nxt[0].resume_trial, nxt[0].resume_epochs) == \
        (1, 1, 3, "t-1", 1)
    assert (nxt[1].candidate, nxt[1].rung) == (4, 0)


def test_a_failed_trial_is_never_promoted_and_minimize_promotes_the_lowest():
    spec = make_spec(goal="minimize")
    jobs = fidelity.next_rungs(spec, [], 3)
    rows = [row(0, jobs[0], reward=0.1), row(1, jobs[1], status=FAILED), row(2, jobs[2], reward=0.5)]
    nxt = fidelity.next_rungs(spec, [from_row(r, details=False) for r in rows], 1)[0]
    assert (nxt.candidate, nxt.rung) == (0, 1)
    rows = [row(0, jobs[0], status=FAILED), row(1, jobs[1], status=FAILED), row(2, jobs[2], status=FAILED)]
    nxt = fidelity.next_rungs(spec, [from_row(r, details=False) for r in rows], 1)[0]
    assert (nxt.candidate, nxt.rung) == (3, 0)


def simulate(spec, stop_after=None):
    """Run the planner one trial at a time on reward_of; the trial rows in order."""
    rows = []
    while experiment_outcome(spec, [from_row(r, details=False) for r in rows], 0.0) is None:
        records = [from_row(r, details=False) for r in rows]
        indices = starts(spec, records)
        jobs = fidelity.next_rungs(spec, records, len(indices))
        assert len(jobs) == len(indices) == 1
        rows.append(row(indices[0], jobs[0], reward=reward_of(jobs[0].candidate, jobs[0].epochs)))
        if stop_after is not None and len(rows) == stop_after:
            break
    return rows


@pytest.mark.parametrize("kind", ["asha", "hyperband"])
def test_a_whole_run_fills_the_rungs_by_the_reduction_factor(kind):
    spec = make_spec(max_trials=27, kind=kind)
    rows = simulate(spec)
    rungs = [r[fidelity.FIDELITY]["rung"] for r in rows]
    if kind == "asha":
        # 27 candidates; at least the top 9 reach 3 epochs and the top 3 of those 9 epochs (ASHA
        # promotes on the results so far, so an early promotion can later fall out of the top)
        assert rungs.count(0) == 27 and rungs.count(1) >= 9 and rungs.count(2) >= 3
        assert fidelity.planned_trials(spec) == 27 + 9 + 3
    else:
        # Hyperband's cycle of 17 (9 start at 1 epoch, 5 at 3, 3 at 9): 27 candidates are
        # 14 + 8 + 5 by bracket, and each bracket promotes within itself
        first = [min(r[fidelity.FIDELITY]["rung"] for r in rows if r[fidelity.FIDELITY]["candidate"] == c)
                 for c in range(27)]
        assert [first.count(b) for b in range(3)] == [14, 8, 5]
        assert fidelity.planned_trials(spec) == (14 + 4 + 1) + (8 + 2) + 5


def test_the_budget_is_spent_only_when_nothing_is_in_flight_or_promotable():
    spec = make_spec(max_trials=9)
    rows = simulate(spec)
    records = [from_row(r, details=False) for r in rows]
    outcome = experiment_outcome(spec, records, 0.0)
    assert outcome.reason == MAX_TRIALS_REACHED
    rungs = [r[fidelity.FIDELITY]["rung"] for r in rows]
    assert outcome.message.endswith(f"9 candidates (budget.maxTrials) by successive halving; trials per rung: "
                                    f"9 × 1 epoch, {rungs.count(1)} × 3 epochs, {rungs.count(2)} × 9 epochs")
    # the last trial still in flight: not over, and nothing more to start
    last = dict(rows[-1], status=RUNNING, reward=None)
    pending = [from_row(r, details=False) for r in rows[:-1] + [last]]
    assert experiment_outcome(spec, pending, 0.0) is None
    assert starts(spec, pending) == []
    # without the last trial: its promotion is due again (decided from the trials alone)
    before = [from_row(r, details=False) for r in rows[:-1]]
    nxt = fidelity.next_rungs(spec, before, 1)
    assert [(j.candidate, j.rung) for j in nxt] == [tuple(rows[-1][fidelity.FIDELITY].values())]


def test_a_restart_from_the_trials_continues_exactly():
    spec = make_spec(max_trials=18)
    whole = simulate(spec)
    part = simulate(spec, stop_after=11)
    rows = list(part)
    while experiment_outcome(spec, [from_row(r, details=False) for r in rows], 0.0) is None:
        records = [from_row(r, details=False) for r in rows]
        job = fidelity.next_rungs(spec, records, 1)[0]
        rows.append(row(starts(spec, records)[0], job, reward=reward_of(job.candidate, job.epochs)))
    assert rows == whole


def test_trial_fields_train_the_rung_on_the_last_rungs_schedule():
    spec = make_spec()
    p = fidelity.plan(spec)
    base = {"index": 5, "training": {"epochs": 9, "seed": 0}, "architecture": {}, "hyperparameters": {}}
    job = fidelity.RungAssignment(candidate=2, rung=1, epochs=3, resume_trial="t-2", resume_epochs=1)
    trial = fidelity.trial_fields(base, job, p, "/runs/x/t-2/checkpoint.pt")
    assert trial["training"] == {"epochs": 3, "scheduleEpochs": 9, "seed": 0}
    assert trial["fidelity"] == {"candidate": 2, "rung": 1}
    assert trial["checkpoint"] == {"save": True, "resumeFrom": "/runs/x/t-2/checkpoint.pt"}
    assert base["training"]["epochs"] == 9  # the input is not changed
    last = fidelity.trial_fields(base, fidelity.RungAssignment(2, 2, 9, "t-7", 3), p, "c.pt")
    assert last["checkpoint"] == {"save": False, "resumeFrom": "c.pt"}
    first = fidelity.trial_fields(base, fidelity.RungAssignment(2, 0, 1), p, None)
    assert first["checkpoint"] == {"save": True, "resumeFrom": None}


@pytest.mark.parametrize("bad", [{"candidate": "x"}, "nonsense", None])
def test_a_trial_without_a_well_formed_fidelity_field_is_not_on_the_ladder(bad):
    spec = make_spec(max_trials=2)
    rows = [{"name": "t-0", "index": 0, "status": SUCCEEDED, "reward": 0.5, "fidelity": bad}]
    jobs = fidelity.next_rungs(spec, [from_row(r, details=False) for r in rows], 3)
    assert [(j.candidate, j.rung) for j in jobs] == [(0, 0), (1, 0)]


def test_a_promotion_continues_the_twin_that_answered_the_rung_below():
    """A candidate whose first trial was answered by a twin (kubenas.experiment.twins)
    trained nothing itself: its promotion continues the twin's trial (its checkpoint)."""
    spec = make_spec(max_trials=3)
    jobs = fidelity.next_rungs(spec, [], 3)
    rows = [row(0, jobs[0], reward=0.2), dict(row(1, jobs[1], reward=0.9), duplicateOf="t-2"),
            row(2, jobs[2], reward=0.9)]
    nxt = fidelity.next_rungs(spec, [from_row(r, details=False) for r in rows], 1)[0]
    assert (nxt.candidate, nxt.rung, nxt.resume_trial, nxt.resume_epochs) == (1, 1, "t-2", 1)
