"""The user-program trial contract (docs/byo.md): metric lines, the candidate file,
substitution, and the kubenas-trial wrapper's outcomes (no torch)."""
from __future__ import annotations

import json
import sys
import threading
import time

import pytest

from kubenas.contract import DIVERGED, EARLY_STOPPED, INVALID_TRIAL, NO_REWARD, OUT_OF_MEMORY, SUCCEEDED, TIMEOUT
from kubenas.contract.byo import ReportError, format_report, parse_report, references, substitute
from kubenas.contract.result import MESSAGE_LIMIT
from kubenas_trainer.reporting.wrapper import Terminated, main, run_command

TRIAL = {"experiment": "x", "index": 3, "name": "x-3", "architecture": {"type": "chain", "layers": []},
         "hyperparameters": {"learningRate": 0.05, "optimizer": "adam"},
         "objective": {"metric": "accuracy", "goal": "maximize", "penalties": []},
         "training": {"epochs": 4, "seed": 7}, "timeoutSeconds": 60}


def program(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_metric_lines_round_trip_and_malformed_ones_are_named():
    line = format_report({"epoch": 3, "accuracy": 0.912, "loss": 0.3})
    assert line == "kubenas: epoch=3 accuracy=0.912 loss=0.3"
    assert parse_report(line) == ("epoch", {"epoch": 3, "accuracy": 0.912, "loss": 0.3})
    assert parse_report(format_report({"accuracy": 0.5}, final=True)) == ("final", {"accuracy": 0.5})
    assert parse_report("epoch 3 done") is None
    with pytest.raises(ReportError, match="accuracy=high"):
        parse_report("kubenas: epoch=3 accuracy=high")
    with pytest.raises(ReportError, match="needs epoch"):
        parse_report("kubenas: accuracy=0.9")
    with pytest.raises(ReportError, match="must be a number"):
        format_report({"epoch": 1, "accuracy": "0.9"})


def test_substitution_names_values_builtins_and_escapes():
    doc = {"values": {"lr": 0.05, "deep": True}, "trial": "x-3", "index": 3, "experiment": "x", "seed": 7,
           "epochs": 4, "trialFile": "/t.json", "outputDir": "/o"}
    assert substitute(["--lr=${lr}", "${deep}", "${trial}", "$${HOME}"], doc) == \
        ["--lr=0.05", "true", "x-3", "${HOME}"]
    assert references(["a${lr}b${x}", "$${y}"]) == [(0, "lr"), (0, "x")]
    with pytest.raises(KeyError):
        substitute(["${nope}"], doc)


def run(code, tmp_path, trial=TRIAL, on_epoch=None, **kw):
    return run_command(program(code), trial, on_epoch=on_epoch, workdir=tmp_path, **kw)


def test_stdout_lines_candidate_file_and_environment(tmp_path):
    code = ("import json, os; d = json.load(open(os.environ['KUBENAS_TRIAL_FILE']));"
            "assert d['hyperparameters']['learningRate'] == 0.05 and d['index'] == 3 and d['seed'] == 7;"
            "assert os.environ['KUBENAS_TRIAL_NAME'] == 'x-3' and os.environ['KUBENAS_EPOCHS'] == '4';"
            "[print(f'kubenas: epoch={e} accuracy={e / 10}', flush=True) for e in (1, 2)];"
            "print('kubenas: final accuracy=0.5 parameters=1000')")
    seen = []
    result = run(code, tmp_path, on_epoch=lambda r: seen.append(r))
    assert result["status"] == SUCCEEDED, result
    assert result["reward"] == 0.5 and result["metrics"]["parameters"] == 1000
    assert [h["accuracy"] for h in result["history"]] == [0.1, 0.2] == [r["accuracy"] for r in seen]


def test_report_module_and_result_file(tmp_path):
    code = ("from kubenas import report; import json, os;"
            "report.report(epoch=1, accuracy=0.4); report.report(epoch=2, accuracy=0.6);"
            "json.dump({'accuracy': 0.7}, open(os.environ['KUBENAS_RESULT_FILE'], 'w'))")
    result = run(code, tmp_path)
    assert result["status"] == SUCCEEDED and result["reward"] == 0.7
    assert [h["epoch"] for h in result["history"]] == [1, 2]


def test_the_wrapper_measures_the_programs_seconds_unless_it_reports_them(tmp_path):
    """The leaderboard's "train s" is metrics.wallSeconds: a program that reports only its
    objective and testAccuracy still fills both columns (docs/byo.md)."""
    started = time.monotonic()
    result = run("import time; time.sleep(0.3); print('kubenas: final accuracy=0.9 testAccuracy=0.8')", tmp_path)
    took = time.monotonic() - started
    assert result["status"] == SUCCEEDED, result
    assert result["metrics"]["testAccuracy"] == 0.8
    assert 0.3 <= result["metrics"]["wallSeconds"] <= took
    failed = run("import sys; sys.exit(6)", tmp_path)
    assert failed["status"] == "Failed" and failed["metrics"]["wallSeconds"] > 0
    own = run("print('kubenas: final accuracy=0.9 wallSeconds=12.5')", tmp_path)
    assert own["metrics"]["wallSeconds"] == 12.5


def test_substituted_command(tmp_path):
    result = run_command([sys.executable, "-c", "import sys; print('kubenas: final accuracy=' + sys.argv[1])",
                          "${learningRate}"], TRIAL, on_epoch=None, workdir=tmp_path)
    assert result["reward"] == 0.05


@pytest.mark.parametrize("code, reason, words", [
    ("import sys; sys.exit(4)", OUT_OF_MEMORY, "exited with code 4"),
    ("print('kubenas: epoch=1 loss=0.3')", NO_REWARD, "reported no accuracy"),
    ("print('kubenas: epoch=1 accuracy=nan')", DIVERGED, "accuracy=nan"),
    ("print('kubenas: epoch=one accuracy=0.5')", INVALID_TRIAL, "malformed"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "InternalError", "signal 9"),
    # Codes kubenas keeps for itself are the program's own failures: 7 is not ConstraintViolated.
    ("import sys; sys.exit(7)", "InternalError", "exited with code 7"),
    ("import sys; sys.exit(75)", "InternalError", "exited with code 75"),
])
def test_failures_map_to_the_contract_reasons(tmp_path, code, reason, words):
    result = run(code, tmp_path)
    assert (result["status"], result["reason"]) == ("Failed", reason), result
    assert words in result["message"]


@pytest.mark.parametrize("program_code, reason, wrapper_code", [
    (7, "InternalError", 1), (75, "InternalError", 1), (1, "InternalError", 1), (3, "Diverged", 3)])
def test_the_wrapper_exits_with_its_results_code_never_the_programs(tmp_path, program_code, reason, wrapper_code):
    trial_file = tmp_path / "trial.json"
    trial_file.write_text(json.dumps(TRIAL))
    out = tmp_path / "out"
    code = main(["--trial", str(trial_file), "--out", str(out), "--", *program(f"raise SystemExit({program_code})")])
    result = json.loads((out / "result.json").read_text())
    assert (code, result["reason"], result["exitCode"]) == (wrapper_code, reason, program_code)


def test_a_non_finite_objective_mid_run_is_diverged_and_stops_the_program(tmp_path):
    code = ("from kubenas import report; import time\n"
            "report.report(epoch=1, accuracy=0.4)\nreport.report(epoch=2, accuracy=float('nan'))\n"
            "time.sleep(0.5)\nreport.report(epoch=3, accuracy=0.8)\ntime.sleep(30)")
    seen = []
    start = time.monotonic()
    result = run(code, tmp_path, on_epoch=lambda r: seen.append(r["epoch"]), grace_seconds=2)
    assert (result["status"], result["reason"]) == ("Failed", DIVERGED), result
    assert "accuracy=nan at epoch 2" in result["message"]
    assert [h["epoch"] for h in result["history"]] == [1, 2] and seen == [1]  # stopped there, not at its end
    assert time.monotonic() - start < 20


def test_a_program_that_reports_nothing_keeps_its_own_exit_code(tmp_path):
    trial_file = tmp_path / "trial.json"
    trial_file.write_text(json.dumps(TRIAL))
    out = tmp_path / "out"
    code = main(["--trial", str(trial_file), "--out", str(out), "--", *program("print('training done')")])
    result = json.loads((out / "result.json").read_text())
    assert (result["reason"], result["exitCode"]) == (NO_REWARD, 0)
    assert result["message"].startswith("the program exited 0 but reported nothing: print 'kubenas: epoch=N")
    assert code == 8  # NoReward's own code (kubenas.contract.EXIT_TABLE), not InternalError's 1


def test_a_failure_message_keeps_the_programs_last_line_within_the_one_cap(tmp_path):
    """The message is cut to MESSAGE_LIMIT from the front of the output, so the error a
    program dies with (its last line) is always in it."""
    code = "print('x' * 3000, flush=True); raise SystemExit('the real error is here')"
    result = run(code, tmp_path)
    assert result["reason"] == "InternalError" and result["exitCode"] == 1
    assert len(result["message"]) <= MESSAGE_LIMIT
    assert result["message"].startswith("the program exited with code 1")
    assert result["message"].endswith("the real error is here")


def test_unknown_substitution_fails_the_trial_naming_the_field(tmp_path):
    result = run_command(["echo", "${depth}"], TRIAL, on_epoch=None, workdir=tmp_path)
    assert result["reason"] == INVALID_TRIAL and "spec.trial.command: ${depth}" in result["message"]


def test_timeout_kills_the_program(tmp_path):
    code = "import time; time.sleep(60)"
    start = time.monotonic()
    result = run_command(program(code), {**TRIAL, "timeoutSeconds": 1}, on_epoch=None, workdir=tmp_path,
                         grace_seconds=1)
    assert result["reason"] == TIMEOUT and time.monotonic() - start < 20


def test_early_stop_ends_the_program_with_its_last_value(tmp_path):
    code = ("import time\nfor e in range(1, 100):\n    print(f'kubenas: epoch={e} accuracy={e / 100}', flush=True)\n"
            "    time.sleep(0.05)")
    result = run(code, tmp_path, on_epoch=lambda r: "stop" if r["epoch"] == 2 else None, grace_seconds=2)
    assert result["status"] == EARLY_STOPPED and result["reward"] == 0.02
    assert [h["epoch"] for h in result["history"]] == [1, 2]


def test_sigterm_is_forwarded_and_nothing_is_reported(tmp_path):
    marker = tmp_path / "got-term"
    code = ("import signal, time, sys\n"
            f"signal.signal(signal.SIGTERM, lambda *a: (open({str(marker)!r}, 'w').write('x'), sys.exit(0)))\n"
            "print('kubenas: epoch=1 accuracy=0.5', flush=True)\ntime.sleep(60)")
    stop = threading.Event()
    box = {}

    def target():
        try:
            box["result"] = run(code, tmp_path, on_epoch=lambda r: stop.set(), terminated=stop, grace_seconds=5)
        except Terminated:
            box["terminated"] = True

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    assert box == {"terminated": True} and marker.read_text() == "x"


def test_cli_writes_the_local_run_files(tmp_path):
    trial_file = tmp_path / "trial.json"
    trial_file.write_text(json.dumps(TRIAL))
    out = tmp_path / "out"
    code = main(["--trial", str(trial_file), "--out", str(out), "--", sys.executable, "-c",
                 "print('kubenas: epoch=1 accuracy=0.25', flush=True)"])
    assert code == 0
    assert json.loads((out / "history.jsonl").read_text()) == {"epoch": 1, "accuracy": 0.25}
    assert json.loads((out / "result.json").read_text())["reward"] == 0.25
    assert json.loads((out / "candidate.json").read_text())["trial"] == "x-3"


@pytest.mark.parametrize("save", [True, False])
def test_checkpoint_settings_reach_the_program_which_opts_in(tmp_path, save):
    """kubenas cannot resume a program: it hands over where to save and what to resume from."""
    trial = {**TRIAL, "checkpoint": {"save": save, "resumeFrom": "s3://b/x/x-1/checkpoint.pt"}}
    code = ("import os; assert os.environ['KUBENAS_RESUME_FROM'] == 's3://b/x/x-1/checkpoint.pt';"
            "path = os.environ.get('KUBENAS_CHECKPOINT_FILE');"
            f"assert (path is not None) == {save};"
            "path and open(path, 'wb').write(b'state');"
            "print('kubenas: final accuracy=0.5')")
    result = run(code, tmp_path, trial=trial, checkpoint_path=tmp_path / "checkpoint.pt")
    assert result["status"] == SUCCEEDED, result
    assert result.get("checkpoint") == (str(tmp_path / "checkpoint.pt") if save else None)
    plain = run("import os; assert 'KUBENAS_RESUME_FROM' not in os.environ and "
                "'KUBENAS_CHECKPOINT_FILE' not in os.environ; print('kubenas: final accuracy=0.5')", tmp_path / "p")
    assert plain["status"] == SUCCEEDED, plain
