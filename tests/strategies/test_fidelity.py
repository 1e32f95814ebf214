"""ASHA (kubenas.strategies.fidelity): rungs, promotions, what feeds the strategy, replay."""
from __future__ import annotations

import pytest

from kubenas.space import SearchSpace, SpaceError
from kubenas.strategies import make_strategy
from kubenas.strategies.fidelity import SuccessiveHalving, rungs

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


def test_a_scheduler_replaying_the_reports_continues_exactly():
    first = scheduler("evolution")
    log = []
    for _ in range(40):
        job = first.next_job()
        first.report(job.index, job.rung, reward(job))
        log.append(job)
    # A restarted scheduler sees the same jobs and reports in order (a report twice is ignored).
    second = scheduler("evolution")
    for job in log:
        assert second.next_job() == job
        second.report(job.index, job.rung, reward(job))
        second.report(job.index, job.rung, reward(job))
    for _ in range(10):
        a, b = first.next_job(), second.next_job()
        assert a == b
        first.report(a.index, a.rung, reward(a))
        second.report(b.index, b.rung, reward(b))
