"""One trial-result type (kubenas.contract.result): every producer builds it there, with
one message cap and one timestamp format, and it is the shape docs/formats.md shows."""
from __future__ import annotations

import ast
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from kubenas.contract import METRIC_GOALS, TASKS
from kubenas.contract.result import (MESSAGE_LIMIT, OPTIONAL_FIELDS, REQUIRED_FIELDS, RESULT_FIELDS,
                                     TERMINATION_MESSAGE_BYTES, failed_result, read_result,
                                     read_termination_message, short_message, status_fields, termination_message,
                                     timestamp, trial_result)
from kubenas.contract.tasks import TASK_METRIC_GOALS, TASK_METRICS, goal_of

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = (ROOT / "operator" / "kubenas", ROOT / "trainer" / "kubenas_trainer")
HOME = ROOT / "operator" / "kubenas" / "contract" / "result.py"


def _product_files():
    for top in PRODUCT:
        yield from sorted(top.rglob("*.py"))


def _result_literals(tree: ast.AST):
    """Dict literals made only of a result's fields, with a status and a reward: a result built by hand."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict) and node.keys and all(isinstance(k, ast.Constant) for k in node.keys):
            keys = {k.value for k in node.keys}
            if {"status", "reward"} <= keys <= set(RESULT_FIELDS):
                yield node


def test_no_module_but_the_contract_builds_a_trial_result():
    """The trainer, the wrapper, the cluster reporter, the one-shot phases, the local
    runner and the benchmarks' table trainer build results with trial_result/failed_result,
    never as a dict of their own."""
    files = [*_product_files(), *sorted((ROOT / "bench").rglob("*.py"))]
    found = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in files if path != HOME
             for node in _result_literals(ast.parse(path.read_text()))]
    assert found == []


def test_the_check_would_see_a_hand_built_result():
    tree = ast.parse('r = {"status": "Failed", "reward": None, "reason": "InternalError", "message": "x"}')
    assert len(list(_result_literals(tree))) == 1


# Where a trial's result and messages go (kubenas.api's messages are about a spec, not a trial).
TRIAL_PACKAGES = ("trainer/kubenas_trainer", "operator/kubenas/operator", "operator/kubenas/cluster",
                  "operator/kubenas/local", "operator/kubenas/controller", "operator/kubenas/experiment")


def test_one_message_cap_for_trials():
    """No module that handles trials keeps a message cap of its own: no ``MAX_MESSAGE``
    and no slice of a message by a number (the one cap is MESSAGE_LIMIT)."""
    own_caps = []
    for path in (p for top in TRIAL_PACKAGES for p in sorted((ROOT / top).rglob("*.py"))):
        text = path.read_text()
        own_caps += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in re.finditer(r"MAX_MESSAGE\s*=.*", text)]
        own_caps += [f"{path.relative_to(ROOT)}: {m.group(0)}"
                     for m in re.finditer(r"message\w*\)?\s*(or \"\"\))?\[:\s*\d+\]", text)]
    assert own_caps == []


def test_one_timestamp_format_in_the_product():
    """Timestamps of trials are written by contract.result.timestamp only (a Lease's
    renewTime is a MicroTime, kubenas.operator.leader's own)."""
    writers = []
    for path in _product_files():
        if path in (HOME, ROOT / "operator" / "kubenas" / "operator" / "leader.py"):
            continue
        text = path.read_text()
        writers += [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
                    for m in re.finditer(r"strftime\(|\.isoformat\(\)", text)]
    assert writers == []


# ---------------------------------------------------------------------------- the type


def test_a_result_has_the_fields_docs_formats_shows():
    """The JSON block of docs/formats.md "Trial result" names exactly the result's fields."""
    doc = (ROOT / "docs" / "formats.md").read_text()
    block = doc.split("## Trial result", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    shown = set(re.findall(r'^[{ ]"(\w+)":', block, flags=re.M))  # the top-level keys, one a line
    assert shown == set(RESULT_FIELDS)
    for name in OPTIONAL_FIELDS:
        assert f"`{name}`" in doc.split("## Trial result", 1)[1].split("## Checkpoint", 1)[0], name


def test_the_builder_fills_every_required_field_and_only_the_optional_ones_given():
    ok = trial_result("Succeeded", reward=0.9, metrics={"accuracy": 0.9}, split={"seed": 0})
    assert list(ok) == [*REQUIRED_FIELDS, "split"]
    assert ok["reason"] is None and ok["message"] == "" and ok["device"] == "cpu"
    never_ran = failed_result("InvalidTrial", "spec.trial.command: cannot start", exitCode=None)
    assert never_ran["exitCode"] is None and never_ran["reward"] is None and never_ran["history"] == []


@pytest.mark.parametrize("status, reason, fields, error", [
    ("Done", None, {}, "status: 'Done' is not one of"),
    ("Failed", None, {}, "reason: a Failed result needs reason"),
    ("Succeeded", "Diverged", {}, "reason: a Succeeded result has no reason"),
    ("Succeeded", None, {"exit_code": 0}, "exit_code: not a field of a trial result"),
])
def test_the_builder_refuses_what_is_not_a_result(status, reason, fields, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        trial_result(status, reason=reason, **fields)


def test_every_message_is_cut_to_the_one_cap():
    long = "x" * 5000
    assert len(failed_result("InternalError", long)["message"]) == MESSAGE_LIMIT
    assert failed_result("InternalError", long)["message"].endswith("...")
    assert len(status_fields({"status": "Failed", "reason": "InternalError", "message": long})["message"]) \
        == MESSAGE_LIMIT
    assert len(read_result({"status": "Failed", "reason": "InternalError", "message": long})["message"]) \
        == MESSAGE_LIMIT
    assert short_message("  ok \n") == "ok"


def test_the_operator_and_its_events_use_the_same_cap():
    from kubenas.cluster.kube import event_body
    from kubenas.operator.trial_state import pod_failure

    event = event_body({"metadata": {"name": "t", "namespace": "n"}}, "Warning", "Failed", "z" * 5000, "op", "now")
    assert len(event["message"]) == MESSAGE_LIMIT
    pod = {"status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {
        "exitCode": 1, "message": termination_message(failed_result("InternalError", "w" * 5000))}}}]}}
    reason, message = pod_failure([pod])
    assert reason == "InternalError" and len(message) == MESSAGE_LIMIT


def test_a_result_reaches_the_status_as_the_reporter_wrote_it():
    result = trial_result("Succeeded", reward=0.5, metrics={"accuracy": 0.5, "nan": float("nan"), "flag": True},
                          history=[{"epoch": 1, "accuracy": 0.5, "loss": float("inf")}], model="s3://b/m.pt",
                          split={"seed": 0}, checkpoint="/out/checkpoint.pt")
    status = status_fields(result, completed="2026-01-01T00:00:00Z")
    assert status == {"phase": "Succeeded", "reward": 0.5, "message": "", "metrics": {"accuracy": 0.5},
                      "history": [{"epoch": 1, "accuracy": 0.5}], "device": "cpu", "model": "s3://b/m.pt",
                      "completionTime": "2026-01-01T00:00:00Z"}
    no_reward = status_fields(trial_result("Succeeded", reward=float("nan")), history=[{"epoch": 1}])
    assert (no_reward["phase"], no_reward["reason"], no_reward["history"]) == ("Failed", "NoReward", [{"epoch": 1}])


def test_the_termination_message_fits_the_kubelets_limit_and_reads_back():
    for text in ("a" * 5000, "\u0001" * 5000, "\U0001F600" * 5000):  # 1-, 6- (escaped) and 12-byte characters
        msg = termination_message(failed_result("InternalError", text))
        assert len(msg.encode()) <= TERMINATION_MESSAGE_BYTES
        back = read_termination_message(msg)
        assert back["status"] == "Failed" and back["reason"] == "InternalError" and back["message"]
    ok = read_termination_message(termination_message(trial_result("Succeeded", reward=0.75)))
    assert ok["reward"] == 0.75 and ok["reason"] is None
    assert read_termination_message("panic: the log") is None
    assert read_termination_message(json.dumps({"status": "Succeeded", "reward": "NaN"}))["reward"] is None


def test_a_reader_refuses_what_is_not_a_result():
    assert read_result(["Succeeded"]) is None and read_result({"status": "Done"}) is None
    kept = read_result({"status": "Succeeded", "reward": float("inf"), "metrics": None, "exitCode": 0})
    assert kept["reward"] is None and kept["metrics"] == {} and kept["exitCode"] == 0


def test_one_timestamp_format_rfc3339_utc_seconds():
    when = datetime(2026, 5, 1, 12, 0, 7, 999999, tzinfo=timezone.utc)
    assert timestamp(when) == "2026-05-01T12:00:07Z" == timestamp(when.timestamp())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", timestamp())
    from kubenas.experiment.times import now_iso

    assert now_iso(when) == timestamp(when)


# ------------------------------------------------------------------- metric goals


def test_goals_are_written_once():
    """Goals live in METRIC_GOALS; each task's metrics in TASK_METRICS; the rest reads them."""
    assert set(TASK_METRIC_GOALS) == set(TASKS)
    for task, metrics in TASK_METRICS.items():
        assert list(TASK_METRIC_GOALS[task]) == list(metrics)
        assert all(TASK_METRIC_GOALS[task][m] == METRIC_GOALS[m] for m in metrics)
    assert goal_of("loss") == "minimize" and goal_of("myScore") == "maximize"
    # a metric -> goal pair written down (``"goal": "minimize"`` is a value, not a table)
    goal_words = re.compile(r"""["'](?!goal["'])(\w+)["']\s*:\s*["'](maximize|minimize)["']""")
    written = []
    for path in _product_files():
        if path == ROOT / "operator" / "kubenas" / "contract" / "__init__.py":
            continue
        written += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in goal_words.finditer(path.read_text())]
    assert written == []
