"""bench/budgeted.py and bench/peers.py on a tiny synthetic curves table: what each searcher
is charged, that a repeat cache never trains a network twice, and that the one-shot searcher
drives the product's plan through its three phases (the bench is not run here)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from kubenas.space import SearchSpace  # noqa: E402
from tabular import Table, encoding_string  # noqa: E402
from budgeted import SupernetScores, run_asha, run_oneshot, run_peer, run_strategy  # noqa: E402
from peers import PEERS  # noqa: E402

SPACE = {"type": "cell", "cell": {"nodes": 4, "operations": ["none", "skip_connect", "conv_3x3"],
                                  "channels": 4, "stages": 1}}
EPOCHS = 9


@pytest.fixture(scope="module")
def table() -> Table:
    space = SearchSpace.from_spec(SPACE)
    rows = {}
    for encoding in space.iter_encodings():
        key = encoding_string(encoding)
        final = 0.3 + 0.1 * key.count("2") + 0.01 * key.count("1")
        curve = [final * (e + 1) / EPOCHS for e in range(EPOCHS)]
        rows[key] = {"valAccuracy": curve[-1], "testAccuracy": final, "valLoss": 1.0, "parameters": 1,
                     "trainSeconds": 99.0, "status": "Succeeded", "hash": None, "curve": curve,
                     "epochSeconds": [1.0 + key.count("2")] * EPOCHS}
    return Table(space, rows, {"training": {"epochs": EPOCHS}, "searchSpace": SPACE})  # as a real .meta.json says


def test_a_full_fidelity_strategy_is_charged_whole_trainings(table):
    trace = run_strategy(table, "random", {"type": "random", "seed": 3}, 20, 0.0)
    assert trace.trials == 20 and trace.repeats == 0
    charges = [b[1] - a[1] for a, b in zip([(0, 0.0, None)] + trace.points, trace.points)]
    assert all(any(c == pytest.approx(EPOCHS * (1.0 + k)) for k in range(7)) for c in charges)
    assert [p[0] for p in trace.points] == list(range(1, 21))
    assert trace.after_trials(20) == max(p[2] for p in trace.points)


def test_asha_is_charged_only_the_epochs_each_job_adds(table):
    trace = run_asha(table, "asha", {"type": "random", "seed": 3}, {"minResource": 1, "maxResource": 9,
                                                                     "reductionFactor": 3}, 150.0)
    full = run_strategy(table, "random", {"type": "random", "seed": 3}, 1, 150.0)
    assert trace.seconds >= 150.0 and trace.seconds < 150.0 + 6 * 4.0  # stops after the job that crosses
    assert trace.trials > full.trials  # cheap rung-0 trials: more candidates for the same compute
    # the incumbent is scored by its full-training accuracy
    assert trace.best in {row["valAccuracy"] for row in table.rows.values()}


@pytest.mark.parametrize("name", sorted(PEERS))
def test_a_repeat_cache_never_trains_a_network_twice(table, name):
    trials = 14 if name == "rf-surrogate" else 30  # past its 10 random points, without many refits
    cached = run_peer(table, name, PEERS[name], 1, True, trials, 0.0)
    assert cached.repeats == 0 and cached.trials == trials
    as_is = run_peer(table, name, PEERS[name], 1, False, trials, 0.0)
    assert as_is.trials == trials and as_is.seconds > 0


def _charges(trace):
    return [b[1] - a[1] for a, b in zip([(0, 0.0, None)] + trace.points, trace.points)]


def test_a_repeat_after_the_space_is_spent_is_answered_by_its_twin_at_no_charge(table):
    # As the product does (kubenas.experiment.twins): not trained again, a trial, no seconds.
    networks = table.space.network_count()
    trace = run_strategy(table, "evolution", {"type": "evolution", "seed": 5}, networks + 50, 0.0)
    assert trace.repeats == 0 and trace.answered == 1
    assert trace.trials == networks + 1  # the run ends once nothing is left to train
    assert _charges(trace)[-1] == 0.0 and all(c > 0 for c in _charges(trace)[:-1])
    assert trace.best == max(row["valAccuracy"] for row in table.rows.values())


def test_observing_repeats_proposes_them_and_never_trains_a_network_twice(table):
    avoid = run_strategy(table, "evolution", {"type": "evolution", "seed": 5}, 150, 0.0)
    observe = run_strategy(table, "evolution", {"type": "evolution", "seed": 5}, 150, 0.0, repeats="observe")
    assert avoid.answered == 0  # today: no repeat before the space is spent
    assert observe.answered > 0 and observe.repeats == 0 and observe.trials == 150
    charges = _charges(observe)
    assert charges.count(0.0) == observe.answered  # a twin's answer is free, a training never is
    # the same seed draws the same random population before the first repeat
    assert avoid.points[:16] == observe.points[:16]


def test_observing_repeats_leaves_the_strategys_own_choice_alone():
    from budgeted import propose_repeats
    from kubenas.strategies import make_strategy

    space = SearchSpace.from_spec(SPACE)
    strategy = make_strategy({"type": "random", "seed": 1}, space, "maximize")
    propose_repeats(strategy)
    first = strategy.propose(0)
    strategy.observe(0, first, 0.5)
    # random search's draw for an index is fixed; with the redraw off a seen draw stays as drawn
    draws = [strategy.propose(i) for i in range(1, 400)]
    assert any(space.candidate_hash(c) == space.candidate_hash(first) for c in draws)
    assert type(strategy).type == "random" and type(strategy).__name__ == "RandomSearchObservingRepeats"


def test_an_unknown_repeats_mode_is_refused(table):
    with pytest.raises(ValueError, match="repeats must be one of avoid, observe"):
        run_strategy(table, "tpe", {"type": "tpe", "seed": 1}, 5, 0.0, repeats="sometimes")


def _dump(table, scores, **overrides):
    """What ``bench/oneshot_rank.py --scores-out`` writes, for the synthetic table."""
    return {"seed": 0, "supernetEpochs": 18, "supernetTrainSeconds": 10.0, "secondsPerCandidate": 0.05,
            "scores": scores, **overrides}


def test_one_shot_is_charged_its_supernet_in_trainings_and_its_scoring_at_the_measured_ratio(table):
    supernet = SupernetScores.from_dump(_dump(table, {e: 0.5 for e in table.rows}), table)
    mean_trial = sum(sum(r["epochSeconds"]) for r in table.rows.values()) / len(table.rows)
    assert supernet.supernet_seconds == pytest.approx(2 * mean_trial)  # 18 supernet epochs / 9 table epochs
    # scoring a candidate: its measured seconds at the rate the supernet's measured seconds were charged
    assert supernet.seconds_per_candidate == pytest.approx(0.05 * 2 * mean_trial / 10.0)


def test_supernet_scores_of_another_table_are_refused(table):
    with pytest.raises(ValueError, match="lack 1 of the table's 729 architectures"):
        SupernetScores.from_dump(_dump(table, {e: 0.5 for e in list(table.rows)[1:]}), table)


def test_one_shot_runs_the_products_plan_supernet_then_score_batches_then_the_top_k(table):
    supernet = SupernetScores(0, {e: r["valAccuracy"] for e, r in table.rows.items()}, 20.0, 0.1)
    trace = run_oneshot(table, "oneshot", {"type": "evolution", "seed": 2}, supernet,
                        {"candidates": 40, "candidatesPerTrial": 15, "topK": 2})
    charges = _charges(trace)
    assert trace.trials == 1 + 3 + 2  # the supernet, ceil(40 / 15) score trials, the top 2 retrained
    assert charges[:4] == pytest.approx([20.0, 1.5, 1.5, 1.0])  # 15, 15 and 10 candidates at 0.1 s
    assert all(any(c == pytest.approx(EPOCHS * (1.0 + k)) for k in range(7)) for c in charges[4:])
    assert [p[2] for p in trace.points[:4]] == [None] * 4  # no incumbent before a retrain succeeded
    assert trace.best in {row["valAccuracy"] for row in table.rows.values()}


def test_a_perfect_supernet_scoring_every_network_leads_the_plan_to_retrain_the_optimum(table):
    supernet = SupernetScores(0, {e: r["valAccuracy"] for e, r in table.rows.items()}, 20.0, 0.01)
    worst = SupernetScores(0, {e: -r["valAccuracy"] for e, r in table.rows.items()}, 20.0, 0.01)
    settings = {"candidates": table.space.network_count(), "candidatesPerTrial": 200, "topK": 1}
    best = run_oneshot(table, "oneshot", {"type": "random", "seed": 1}, supernet, settings)
    assert best.best == table.optimum
    inverted = run_oneshot(table, "oneshot", {"type": "random", "seed": 1}, worst, settings)
    # an inverted ranking retrains a network at the bottom (the synthetic table's rows of one
    # dead network differ by 0.01, and the strategy proposes one encoding of each network)
    assert inverted.best <= min(row["valAccuracy"] for row in table.rows.values()) + 0.02


def test_the_peers_bench_runs_one_shot_on_the_table_its_supernets_scored(table, tmp_path):
    import json

    from search_efficiency import load_supernets, peers_section

    ours = tmp_path / "oneshot_scores_seed0.json"
    ours.write_text(json.dumps(_dump(table, {e: r["valAccuracy"] for e, r in table.rows.items()})))
    other = tmp_path / "oneshot_scores_other.json"
    other.write_text(json.dumps(_dump(table, {"0000000": 0.5})))
    supernets = load_supernets(table, [ours, other])
    assert [s.seed for s in supernets] == [0]
    text, summary = peers_section(table, Path("synthetic.csv"), range(2), "random", ["oneshot+evolution"],
                                  supernets)
    assert set(summary["perSeed"]) == {"random", "oneshot+evolution"}
    assert set(summary["perSeed"]["oneshot+evolution"]) == {"10 % compute", "25 % compute", "50 % compute",
                                                            "100 % compute"}  # no per-trial columns
    assert "| oneshot+evolution |" in text


def test_pairwise_merges_runs_split_for_cpu_and_refuses_unpaired_ones(tmp_path):
    import json

    from pairwise import merged

    def run(name, per_seed):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"tables": {"t": {"compute": 10.0, "target": 0.5, "perSeed": per_seed}}}))
        return path

    random = {"25 % compute": [1.0, 2.0]}
    a = run("a", {"random": random, "evolution": {"25 % compute": [0.5, 1.0]}})
    b = run("b", {"random": random, "oneshot+evolution": {"25 % compute": [3.0, 3.0]}})
    assert set(merged([a, b])["t"]["perSeed"]) == {"random", "evolution", "oneshot+evolution"}
    c = run("c", {"random": {"25 % compute": [1.0, 2.5]}})
    with pytest.raises(ValueError, match="t random differs from an earlier run's"):
        merged([a, c])
