"""`kubenas run` with spec.final: the top candidates are trained again with other seeds."""
import json

import pytest

from kubenas.cli import main
from kubenas.local.rundir import RunDir, RunDirMismatch

from .conftest import finished_lines, write


def test_final_reevaluates_the_top_candidates_with_more_seeds(tmp_path, tiny, capsys):
    run_dir = tmp_path / "run"
    tiny["spec"]["budget"].update(maxTrials=3, parallelTrials=2)
    tiny["spec"]["trial"]["training"]["seed"] = 7
    tiny["spec"]["final"] = {"topK": 2, "seeds": 2}
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    rows = {r["index"]: r for r in finished_lines(run_dir)}
    assert sorted(rows) == [0, 1, 2, 3, 4]
    search = sorted((rows[i] for i in (0, 1, 2)), key=lambda r: (-r["reward"], r["index"]))
    for extra, original in zip((rows[3], rows[4]), search):  # rank k re-evaluated at index 3 + k
        assert extra["reevaluationOf"] == original["name"]
        assert extra["architecture"] == original["architecture"]
        assert extra["seed"] == 8  # training.seed + 1
        assert extra["status"] == "Succeeded"
        trial = json.loads((run_dir / "trials" / extra["name"] / "trial.json").read_text())
        assert trial["training"]["seed"] == 8
    final = json.loads((run_dir / "final.json").read_text())
    assert [c["n"] for c in final["candidates"]] == [2, 2]
    best = json.loads((run_dir / "best.json").read_text())
    top = final["candidates"][0]
    assert best["name"] == top["name"] and best["final"]["n"] == 2
    rewards = [rows[top["index"]]["reward"], next(r["reward"] for r in rows.values()
                                                  if r.get("reevaluationOf") == top["name"])]
    assert abs(best["final"]["mean"] - sum(rewards) / 2) < 1e-12
    assert abs(best["final"]["std"] - abs(rewards[0] - rewards[1]) / 2 ** 0.5) < 1e-12
    assert json.loads((run_dir / "state.json").read_text())["phase"] == "Succeeded"
    out = capsys.readouterr().out
    assert f"best: {top['name']} mean reward {top['mean']:.4f} ± {top['std']:.4f} over 2 seeds" in out

    # Killed during the re-evaluation: the unfinished re-evaluation reruns as such, nothing else.
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["index"] != 4]
    (run_dir / "trials.jsonl").write_text("\n".join(kept) + "\n")
    assert main(["run", str(write(tmp_path, tiny)), "--run-dir", str(run_dir), "--no-progress"]) == 0
    again = {r["index"]: r for r in finished_lines(run_dir)}
    assert sorted(again) == [0, 1, 2, 3, 4]
    assert (again[4]["reevaluationOf"], again[4]["seed"]) == (rows[4]["reevaluationOf"], 8)
    assert [again[i] for i in range(4)] == [rows[i] for i in range(4)]


def test_max_trials_cannot_change_with_final(tmp_path, tiny):
    tiny["spec"]["final"] = {"topK": 1, "seeds": 2}
    run_dir = RunDir(tmp_path / "run")
    run_dir.bind(tiny)
    tiny["spec"]["budget"]["parallelTrials"] = 1
    run_dir.bind(tiny)  # other budget changes still resume
    tiny["spec"]["budget"]["maxTrials"] = 5
    with pytest.raises(RunDirMismatch, match="spec.budget.maxTrials cannot change with spec.final"):
        run_dir.bind(tiny)
