"""ASHA (kubenas.strategies.fidelity): rungs, promotions, what feeds the strategy, replay."""
from __future__ import annotations

import pytest

from kubenas.space import SearchSpace, SpaceError
from kubenas.strategies import make_strategy
from kubenas.strategies.fidelity import (FIDELITY_DEFAULTS, SuccessiveHalving, bracket_cycle, fidelity_settings,
                                         rungs)

SPACE = {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_3x3"],
                                  "channels": 4, "stages": 1}}


def scheduler(kind="random", **settings) -> SuccessiveHalving:
    space = SearchSpace.from_spec(SPACE)
    return SuccessiveHalving(make_strategy({"type": kind, "seed": 1}, space), settings or None)


def reward(job) -> float | None:
    """A landscape with a clear order: more conv edges is better, longer training is better."""
    ops = [op for row in job.candidate["architecture"]["edges"] for op in row]
    return 0.1 * ops.count("conv_3x3") + 0.01 * job.epochs


def test_rungs_grow_by_the_reduction_factor_and_end_at_the_maximum():
    assert rungs(1, 9, 3) == [1, 3, 9]
    assert rungs(2, 10, 3) == [2, 6, 10]
    assert rungs(1, 27, 3) == [1, 3, 9, 27]
    assert rungs(4, 4, 2) == [4]


@pytest.mark.parametrize("args, path", [((0, 9, 3), "minResource"), ((10, 9, 3), "minResource"),
                                        ((1, 9, 1), "reductionFactor"), ((1, 9, True), "reductionFactor")])
def test_bad_rungs_name_the_field(args, path):
    with pytest.raises(SpaceError) as caught:
        rungs(*args)
    assert caught.value.path == f"strategy.fidelity.{path}"


def test_the_top_third_of_a_rung_is_promoted_and_resumes_where_it_stopped():
    sh = scheduler()
    jobs = [sh.next_job() for _ in range(3)]
    assert [(j.index, j.rung, j.epochs, j.resume_from) for j in jobs] == [(0, 0, 1, 0), (1, 0, 1, 0), (2, 0, 1, 0)]
    for job in jobs:
        sh.report(job.index, job.rung, reward(job))
    best = max(jobs, key=lambda j: (reward(j), -j.index))
    promotion = sh.next_job()
    assert (promotion.index, promotion.rung, promotion.epochs, promotion.resume_from) == (best.index, 1, 3, 1)
    assert promotion.candidate == best.candidate
    assert sh.next_job().rung == 0  # one third of three results: nothing more to promote yet


def test_only_rung_zero_results_feed_the_strategy_and_failures_are_never_promoted():
    sh = scheduler("evolution")
    reported = []
    for _ in range(60):
        job = sh.next_job()
        value = None if job.index % 5 == 0 else reward(job)
        sh.report(job.index, job.rung, value)
        reported.append((job.index, job.rung, value))
    rung0 = {index for index, rung, _ in reported if rung == 0}
    assert sh.strategy.state_dict()["observed"] == sorted(rung0)
    promoted = {index for index, rung, _ in reported if rung > 0}
    assert promoted and not any(index % 5 == 0 for index in promoted)
    assert any(rung == 2 for _, rung, _ in reported)  # something reached the top rung
    index, rung, value = sh.best()
    assert rung == 2 and value == max(v for _, r, v in reported if r == 2 and v is not None)


@pytest.mark.parametrize("kind, steps", [("asha", 40), ("hyperband", 60)])
def test_a_scheduler_replaying_the_reports_continues_exactly(kind, steps):
    first = scheduler("evolution", type=kind)
    log = []
    for _ in range(steps):
        job = first.next_job()
        first.report(job.index, job.rung, reward(job))
        log.append(job)
    # A restarted scheduler sees the same jobs and reports in order (a report twice is ignored).
    second = scheduler("evolution", type=kind)
    for job in log:
        assert second.next_job() == job
        second.report(job.index, job.rung, reward(job))
        second.report(job.index, job.rung, reward(job))
    for _ in range(10):
        a, b = first.next_job(), second.next_job()
        assert a == b
        first.report(a.index, a.rung, reward(a))
        second.report(b.index, b.rung, reward(b))


# -- settings, Hyperband brackets, a spent space --------------------------------------------

SMALL = {"type": "cell", "cell": {"nodes": 3, "operations": ["none", "skip_connect", "conv_3x3"],
                                  "channels": 4, "stages": 1}}


def test_settings_fill_the_defaults_and_name_a_bad_key():
    assert fidelity_settings(None) == FIDELITY_DEFAULTS == {"type": "asha", "minResource": 1, "maxResource": 9,
                                                            "reductionFactor": 3}
    assert fidelity_settings({"type": "hyperband"})["type"] == "hyperband"
    for bad, path in [({"type": "bohb"}, "type"), ({"minRungs": 2}, "minRungs"), ({"maxResource": 0}, "maxResource"),
                      ({"minResource": 2, "maxResource": 1}, "minResource")]:
        with pytest.raises(SpaceError) as caught:
            fidelity_settings(bad)
        assert caught.value.path == f"strategy.fidelity.{path}"
    with pytest.raises(SpaceError) as caught:
        SuccessiveHalving(make_strategy({"type": "random"}, SearchSpace.from_spec(SPACE)), {"type": "sha"})
    assert caught.value.path == "strategy.fidelity.type"


def test_hyperband_gives_every_bracket_its_share_of_new_candidates():
    cycle = bracket_cycle(3, 3)  # rungs 1, 3, 9: brackets starting at each rung
    assert [cycle.count(b) for b in range(3)] == [9, 5, 3]  # Li et al. 2018: ceil(3/(s+1) * 3^s), s = 2, 1, 0
    assert cycle[:4] == [0, 1, 0, 2]  # interleaved, not one bracket after another
    assert bracket_cycle(1, 3) == [0]  # one rung: plain full-fidelity search


def test_hyperband_trains_a_new_candidate_to_its_brackets_first_rung_and_promotes_within_the_bracket():
    sh = scheduler("evolution", type="hyperband")
    cycle = bracket_cycle(3, 3)
    log = []
    for _ in range(120):
        job = sh.next_job()
        if job.resume_from == 0:  # a new candidate: straight to its bracket's first rung
            assert job.rung == cycle[job.index % len(cycle)] and job.epochs == sh.rungs[job.rung]
        else:  # a promotion: from the rung below, within the trial's own bracket
            assert job.resume_from == sh.rungs[job.rung - 1] and job.rung > sh.bracket[job.index]
        sh.report(job.index, job.rung, reward(job))
        log.append(job)
    # the strategy observed each trial once, at its bracket's first rung
    assert sh.strategy.state_dict()["observed"] == sorted(j.index for j in log if j.resume_from == 0)
    fed = {index: fitness for index, _, fitness in sh.strategy.population}
    assert all(sh.results[sh.bracket[i]][i] == f for i, f in fed.items())
    assert {sh.bracket[j.index] for j in log if j.rung == 2} == {0, 1, 2}  # every bracket reached the top
    index, rung, value = sh.best()
    assert rung == 2 and value == max(v for v in sh.results[2].values())


@pytest.mark.parametrize("kind", ["asha", "hyperband"])
def test_a_spent_space_is_never_trained_twice_at_the_first_rung_while_anything_can_be_promoted(kind):
    space = SearchSpace.from_spec(SMALL)
    sh = SuccessiveHalving(make_strategy({"type": "random", "seed": 2}, space), {"type": kind})
    networks = space.network_count()
    started, jobs = [], 0
    while len(sh.results[-1]) < networks:  # until every network has been trained to the top rung
        job = sh.next_job()
        if job.resume_from == 0:
            started.append(space.candidate_hash(job.candidate))
        sh.report(job.index, job.rung, reward(job))
        jobs += 1
        assert jobs < 10 * networks
    assert len(started) == len(set(started)) == networks  # each network started once, none repeated
    index, rung, value = sh.best()
    assert rung == 2 and value == max(sh.results[2].values())
    # with nothing left to promote, the strategy may repeat (as a full-fidelity search would)
    assert sh.next_job().resume_from == 0
