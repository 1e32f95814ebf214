"""`kubenas run` with `strategy.fidelity` (ASHA, Hyperband), real trainer processes: promotions continue
their candidate's checkpoint, the strategy sees first trials only, and a killed run resumes to the
same ladder."""
import json
import signal

from kubenas.cli import main
from kubenas.experiment import fidelity

from .conftest import finished_lines, kubenas, wait_for, write


def asha(tiny, max_trials=6):
    tiny["spec"]["strategy"]["fidelity"] = {"minResource": 1, "reductionFactor": 3}
    tiny["spec"]["trial"]["training"]["epochs"] = 3
    tiny["spec"]["budget"].update(maxTrials=max_trials, parallelTrials=2)
    return tiny


def ladder(records):
    return {(r[fidelity.FIDELITY]["candidate"], r[fidelity.FIDELITY]["rung"]): r for r in records}


def test_promotions_continue_from_the_checkpoint_of_the_rung_below(tmp_path, tiny, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, asha(tiny))), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = finished_lines(run_dir)
    rungs = ladder(records)
    assert sorted(c for c, r in rungs if r == 0) == list(range(6))
    promoted = [(c, r) for c, r in rungs if r == 1]
    assert len(promoted) >= 2  # the top third of 6, at least
    for record in records:
        assert record["status"] == "Succeeded", record
        rung = record[fidelity.FIDELITY]["rung"]
        trial = json.loads((run_dir / "trials" / record["name"] / "trial.json").read_text())
        assert trial["training"]["epochs"] == (1, 3)[rung] == record[fidelity.FIDELITY]["epochs"]
        assert trial["training"]["scheduleEpochs"] == 3
        assert len(record["history"]) == (1, 3)[rung]
        if rung == 0:
            assert trial["checkpoint"] == {"save": True, "resumeFrom": None}
            assert record["metrics"]["resumedFromEpoch"] == 0
        else:
            below = rungs[(record[fidelity.FIDELITY]["candidate"], 0)]
            assert record["architecture"] == below["architecture"]
            assert trial["checkpoint"]["resumeFrom"] == str(run_dir / "trials" / below["name"] / "checkpoint.pt")
            assert trial["checkpoint"]["save"] is False
            assert record["metrics"]["resumedFromEpoch"] == 1  # continued, not retrained
            assert record["history"][0] == below["history"][0]  # the first epoch is the rung-0 trial's
    # The best third of rung 0 went on (ties: the earlier candidate).
    by_reward = sorted((c for c, r in rungs if r == 0), key=lambda c: (-rungs[(c, 0)]["reward"], c))
    assert by_reward[0] in {c for c, _ in promoted}
    checkpoint = json.loads((run_dir / "strategy.json").read_text())
    assert checkpoint["proposed"] == checkpoint["finished"] == 6  # the strategy: 6 candidates, rung 0 only
    out = capsys.readouterr().out
    assert "6 candidates (budget.maxTrials) by successive halving" in out


def test_a_killed_asha_run_resumes_to_the_same_ladder(tmp_path, tiny):
    path = write(tmp_path, asha(tiny, max_trials=9))
    whole_dir = tmp_path / "whole"
    assert main(["run", str(path), "--run-dir", str(whole_dir), "--no-progress"]) == 0
    run_dir = tmp_path / "run"
    proc = kubenas("run", path, "--run-dir", run_dir)
    wait_for(lambda: len(finished_lines(run_dir)) >= 4, 180, "four finished trials")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    kept = finished_lines(run_dir)
    rerun = kubenas("run", path, "--run-dir", run_dir)
    _, err = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, err
    records = finished_lines(run_dir)
    assert records[:len(kept)] == kept  # nothing finished was lost or rewritten
    assert len({r["index"] for r in records}) == len(records)
    resumed, whole = ladder(records), ladder(finished_lines(whole_dir))
    assert sorted(c for c, r in resumed if r == 0) == list(range(9))
    assert len(resumed) == len(records)  # no candidate trained twice to one rung
    for (c, r) in resumed:
        assert r == 0 or (c, r - 1) in resumed  # a promotion follows its candidate's rung below
    # the candidates themselves are the strategy's, whatever the interruption
    for c in range(9):
        assert resumed[(c, 0)]["architecture"] == whole[(c, 0)]["architecture"]


def test_hyperband_trains_each_candidates_first_trial_at_its_brackets_rung(tmp_path, tiny, capsys):
    spec = asha(tiny, max_trials=5)
    spec["spec"]["strategy"]["fidelity"]["type"] = "hyperband"
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, spec)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    records = finished_lines(run_dir)
    rungs = ladder(records)
    # rungs 1 and 3 epochs: a cycle of 5 puts 3 candidates at 1 epoch, 2 straight at 3
    first = {c: min(r for cc, r in rungs if cc == c) for c, _ in rungs}
    assert first == {0: 0, 1: 1, 2: 0, 3: 1, 4: 0}
    for (candidate, rung), record in rungs.items():
        assert record["status"] == "Succeeded", record
        trial = json.loads((run_dir / "trials" / record["name"] / "trial.json").read_text())
        assert trial["training"]["epochs"] == (1, 3)[rung] and len(record["history"]) == (1, 3)[rung]
        if rung == first[candidate]:  # a new candidate: trained from scratch
            assert trial["checkpoint"]["resumeFrom"] is None and record["metrics"]["resumedFromEpoch"] == 0
        else:  # bracket 0's best of three, continued
            assert record["metrics"]["resumedFromEpoch"] == 1
    assert [c for c, r in rungs if r > first[c]] == [max((0, 2, 4), key=lambda c: (rungs[(c, 0)]["reward"], -c))]
    checkpoint = json.loads((run_dir / "strategy.json").read_text())
    assert checkpoint["proposed"] == checkpoint["finished"] == 5  # every candidate's first trial, once
    assert "5 candidates (budget.maxTrials) by Hyperband" in capsys.readouterr().out


ONE_NETWORK = {"type": "chain", "chain": {"layers": 1, "operations": ["identity"]}}


def test_a_repeated_candidate_is_answered_only_at_the_same_rung(tmp_path, tiny):
    # Hyperband, a space of one network: candidate 0 trains 1 epoch, candidate 1 (the
    # same network, bracket 1) must train its 3 epochs, not reuse a 1-epoch result.
    spec = asha(tiny, max_trials=2)
    spec["spec"]["strategy"]["fidelity"]["type"] = "hyperband"
    spec["spec"]["searchSpace"] = ONE_NETWORK
    spec["spec"]["budget"]["parallelTrials"] = 1
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, spec)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    rungs = ladder(finished_lines(run_dir))
    assert sorted(rungs) == [(0, 0), (1, 1)]
    assert rungs[(1, 1)].get("duplicateOf") is None and len(rungs[(1, 1)]["history"]) == 3


def test_promoting_a_repeated_candidate_continues_its_twin_or_takes_its_result(tmp_path, tiny):
    # ASHA, a space of one network, 6 candidates: tiny-0 trains, 1-5 reuse its result; the
    # top two at 1 epoch (a tie: candidates 0 and 1) go on. Candidate 1 trained nothing
    # itself, so its promotion is planned to continue tiny-0's checkpoint; by then
    # candidate 0's promotion has trained the same network to 3 epochs, whose result it takes.
    spec = asha(tiny, max_trials=6)
    spec["spec"]["searchSpace"] = ONE_NETWORK
    spec["spec"]["budget"]["parallelTrials"] = 1
    run_dir = tmp_path / "run"
    assert main(["run", str(write(tmp_path, spec)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    rungs = ladder(finished_lines(run_dir))
    assert [rungs[(c, 0)].get("duplicateOf") for c in range(6)] == [None] + ["tiny-0"] * 5
    assert sorted(c for c, r in rungs if r == 1) == [0, 1]
    first, second = rungs[(0, 1)], rungs[(1, 1)]
    assert first["metrics"]["resumedFromEpoch"] == 1 and first.get("duplicateOf") is None
    trial = json.loads((run_dir / "trials" / second["name"] / "trial.json").read_text())
    assert trial["checkpoint"]["resumeFrom"] == str(run_dir / "trials" / "tiny-0" / "checkpoint.pt")
    assert second["duplicateOf"] == first["name"] and second["reward"] == first["reward"]
    assert not (run_dir / "trials" / second["name"] / "result.json").exists()  # never trained
