"""`kubenas run` of a one-shot experiment (spec.oneShot) with real trainer processes: the
supernet trial, score trials of several candidates each, the top-k retrained; a run
killed while the supernet trains resumes it from its checkpoint.pt on rerun, and every
candidate is scored exactly once."""
import json
import signal

from .conftest import finished_lines, kubenas, wait_for, write

CELL = {"nodes": 3, "operations": ["none", "skip_connect", "conv_3x3"], "channels": 4, "cellsPerStage": 1,
        "stages": 1}


def oneshot(tiny, epochs=2):
    tiny["metadata"]["name"] = "shot"
    tiny["spec"]["searchSpace"] = {"type": "cell", "cell": CELL}
    tiny["spec"]["strategy"] = {"type": "evolution", "seed": 2, "evolution": {"populationSize": 3, "sampleSize": 2}}
    tiny["spec"]["oneShot"] = {"supernetEpochs": epochs, "candidates": 6, "candidatesPerTrial": 3, "topK": 1,
                               "bnRecalibrationBatches": 1}
    tiny["spec"]["budget"].update(maxTrials=4, parallelTrials=2)
    return tiny


def test_a_killed_one_shot_run_resumes_the_supernet_and_scores_every_candidate_once(tmp_path, tiny):
    path = write(tmp_path, oneshot(tiny, epochs=40))
    run_dir = tmp_path / "run"
    proc = kubenas("run", path, "--run-dir", run_dir)
    checkpoint = run_dir / "trials" / "shot-0" / "checkpoint.pt"
    wait_for(checkpoint.exists, 180, "the supernet's first checkpoint")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert finished_lines(run_dir) == []  # killed mid-supernet

    rerun = kubenas("run", path, "--run-dir", run_dir)
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    rows = finished_lines(run_dir)
    kinds = [r["oneshot"]["kind"] for r in sorted(rows, key=lambda r: r["index"])]
    assert kinds == ["supernet", "score", "score", "retrain"]
    supernet = rows[0]
    assert supernet["metrics"]["resumedFromEpoch"] >= 1 and supernet["metrics"]["epochs"] == 40
    scored = {}
    for row in rows:
        if row["oneshot"]["kind"] == "score":
            assert row["oneshot"]["supernetCheckpoint"] == str(checkpoint)
            assert len(row["scores"]) == len(row["oneshot"]["indices"]) == 3
            for i, score in zip(row["oneshot"]["indices"], row["scores"]):
                assert i not in scored
                scored[i] = score
    assert sorted(scored) == list(range(6))
    top = max(scored, key=lambda c: (scored[c], -c))
    retrain = rows[-1]
    assert retrain["oneshot"] == {"kind": "retrain", "candidate": top} and 0 < retrain["reward"] <= 1
    best = json.loads((run_dir / "best.json").read_text())
    assert best["name"] == retrain["name"]  # the experiment's best is the retrained trial
    # the strategy's checkpoint counts the 6 proposals and 6 observations, not trials
    state = json.loads((run_dir / "strategy.json").read_text())
    assert (state["proposed"], state["finished"]) == (6, 6)


def test_a_one_shot_run_over_a_chain_space(tmp_path, tiny):
    """The chain space's supernet (kubenas_trainer.models.supernet.ChainSupernet): its
    candidates are scored with inherited weights and the best is retrained as a chain."""
    shot = oneshot(tiny)
    shot["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 2, "filters": [4, 8], "kernelSizes": [3],
                                                              "strides": [1, 2]}}
    run_dir = tmp_path / "run"
    out, err = kubenas("run", write(tmp_path, shot), "--run-dir", run_dir).communicate(timeout=600)
    assert "Succeeded" in out, (out, err)
    rows = sorted(finished_lines(run_dir), key=lambda r: r["index"])
    assert [r["oneshot"]["kind"] for r in rows] == ["supernet", "score", "score", "retrain"]
    space = json.loads((run_dir / "trials" / rows[0]["name"] / "trial.json").read_text())["oneshot"]["space"]
    assert space == {"type": "chain", "layers": 2, "operations": ["conv", "dw_conv", "max_pool", "avg_pool", "identity"],
                     "filters": [4, 8], "kernelSizes": [3], "strides": [1, 2], "dilations": [1]}  # defaults filled
    scores = [s for r in rows[1:3] for s in r["scores"]]
    assert len(scores) == 6 and all(0 <= s <= 1 for s in scores)
    retrain = rows[-1]
    assert retrain["architecture"]["type"] == "chain" and len(retrain["architecture"]["layers"]) == 2
    assert 0 < retrain["reward"] <= 1


def test_a_one_shot_run_with_your_own_network_and_its_supernet(tmp_path, tiny):
    """trial.model.builder + trial.model.supernet (tests/byo/user_supernet.py): the user's
    supernet scores the candidates and the user's builder retrains the best."""
    shot = oneshot(tiny)
    shot["spec"]["searchSpace"] = {"type": "chain", "chain": {"layers": 2, "operations": ["conv", "identity"],
                                                              "filters": [8], "kernelSizes": [1, 3], "strides": [1]}}
    shot["spec"]["trial"]["model"] = {"builder": "tests.byo.user_supernet:build",
                                      "supernet": "tests.byo.user_supernet:build_supernet"}
    run_dir = tmp_path / "run"
    out, err = kubenas("run", write(tmp_path, shot), "--run-dir", run_dir).communicate(timeout=600)
    assert "Succeeded" in out, (out, err)
    rows = sorted(finished_lines(run_dir), key=lambda r: r["index"])
    assert [r["oneshot"]["kind"] for r in rows] == ["supernet", "score", "score", "retrain"]
    assert all(0 <= s <= 1 for r in rows[1:3] for s in r["scores"])
    assert 0 < rows[-1]["reward"] <= 1 and rows[-1]["architecture"]["type"] == "chain"
