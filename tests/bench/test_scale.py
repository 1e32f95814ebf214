"""bench/scale.py's audit-log reading and invariants, on hand-made audit lines (the
bench itself runs on the real tier: tests/e2e/test_scale.py)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.scale import Experiment, experiment_report, layout, manifest, read_audit, summarise  # noqa: E402

T0 = 1_800_000_000.0


def line(verb, resource, name, ns, user, t, code=201, subresource=None):
    from datetime import datetime, timezone

    ref = {"resource": resource, "namespace": ns, "name": name}
    if subresource:
        ref["subresource"] = subresource
    stamp = datetime.fromtimestamp(T0 + t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps({"verb": verb, "objectRef": ref, "user": {"username": user},
                       "responseStatus": {"code": code}, "stageTimestamp": stamp},
                      separators=(",", ":"))  # as the API server writes it


def sa(ns, who):
    return f"system:serviceaccount:{ns}:kubenas-{who}"


def trial_lines(ns, exp, index, t):
    """A trial's life as the audit log shows it: created, Job, pod bound, trainer's result."""
    name = f"{exp}-{index}"
    return [line("create", "nastrials", name, ns, sa(ns, "controller"), t),
            line("create", "jobs", name, ns, sa("kubenas-system", "operator"), t + 0.1),
            line("create", "pods", f"{name}-abcde", ns, "admin", t + 0.2, subresource="binding"),
            line("get", "nastrials", name, ns, sa(ns, "trainer"), t + 0.3, code=200),
            line("patch", "nastrials", name, ns, sa(ns, "trainer"), t + 0.4, code=200, subresource="status")]


def trial_object(exp, index, phase="Succeeded"):
    return {"metadata": {"name": f"{exp}-{index}"}, "spec": {"experiment": exp, "index": index},
            "status": {"phase": phase}}


def test_layout_spreads_experiments_over_namespaces():
    exps = layout(20, 10, 200, 5)
    assert len({e.namespace for e in exps}) == 10
    assert len({(e.namespace, e.name) for e in exps}) == 20
    assert all(sum(e.namespace == ns for e in exps) == 2 for ns in {e.namespace for e in exps})
    with pytest.raises(ValueError, match="namespaces"):
        layout(2, 3, 10, 1)
    items = manifest(exps[:2])["items"]
    assert [i["metadata"]["namespace"] for i in items] == [exps[0].namespace, exps[1].namespace]
    assert items[0]["spec"]["budget"]["maxTrials"] == 200 and items[0]["spec"]["budget"]["parallelTrials"] == 5


def test_a_clean_run_holds_every_invariant_and_is_timed():
    e = Experiment("ns-a", "exp", 3, 1)
    lines = [line("create", "nasexperiments", "exp", "ns-a", "admin", 0.0)]
    for i in range(3):
        lines += trial_lines("ns-a", "exp", i, 1.0 + i)
    # another tenant's namespace and a namesake experiment there are not counted
    lines += trial_lines("ns-b", "exp", 0, 0.5)
    facts = read_audit(lines, {"ns-a"})
    report = experiment_report(e, facts, {"status": {"phase": "Succeeded"}}, [trial_object("exp", i) for i in range(3)])
    assert report["violations"] == []
    assert report["first_job_seconds"] == pytest.approx(1.1, abs=1e-3)
    # finishes at 1.4, 2.4, 3.4; the next Jobs at 2.1 and 3.1: 0.7 s each
    assert report["finish_to_next_job_ms"]["p95"] == pytest.approx(700, abs=1)
    assert report["trials_per_second"] == round(3 / (3.4 - 1.1), 2)
    assert report["longest_wait_between_finishes_seconds"] == pytest.approx(1.0, abs=1e-3)


def test_a_trial_run_twice_a_missing_index_and_a_failure_are_each_named():
    e = Experiment("ns-a", "exp", 3, 1)
    lines = [line("create", "nasexperiments", "exp", "ns-a", "admin", 0.0)]
    lines += trial_lines("ns-a", "exp", 0, 1.0)
    lines += trial_lines("ns-a", "exp", 1, 2.0)
    lines += trial_lines("ns-a", "exp", 1, 3.0)[1:]  # a second Job, pod and result for trial 1
    facts = read_audit(lines, {"ns-a"})
    trials = [trial_object("exp", 0), trial_object("exp", 1, phase="Failed")]
    report = experiment_report(e, facts, {"status": {"phase": "Failed"}}, trials)
    text = "\n".join(report["violations"])
    assert "phase 'Failed'" in text
    assert "missing indexes [2]" in text
    assert "1 trials not Succeeded: ['exp-1']" in text
    assert "given a Job (of 3); more than once: ['exp-1']" in text
    assert "reported by a trainer (of 3); more than once: ['exp-1']" in text
    assert "2 trials created (of 3)" in text


def test_summary_names_the_starved_experiment_and_the_slowest_first_job():
    reports = [{"name": f"e{i}", "namespace": "n", "trials_per_second": tps, "first_job_seconds": first,
                "longest_wait_between_finishes_seconds": 1.0, "violations": []}
               for i, (tps, first) in enumerate([(2.0, 1.0), (2.2, 3.5), (0.3, 2.0)])]
    s = summarise(reports)
    assert s["starved"] == ["e2"]
    assert s["slowest_first_job_seconds"] == 3.5
    assert s["trials_per_second_per_experiment"] == {"min": 0.3, "median": 2.0, "max": 2.2}


def test_the_rotated_audit_log_files_are_read_too_oldest_first(tmp_path):
    """The API server rotates its audit log every 100 MB (audit-<time>.log); a run that
    read only audit.log counted every trial of the rotated files as missing."""
    from bench.scale import audit_lines

    e = Experiment("ns-a", "exp", 3, 1)
    lives = [trial_lines("ns-a", "exp", i, 1.0 + i) for i in range(3)]
    (tmp_path / "audit-2026-12-06T23-59-02.085.log").write_text(
        line("create", "nasexperiments", "exp", "ns-a", "admin", 0.0) + "\n" + "\n".join(lives[0]) + "\n")
    (tmp_path / "audit-2026-12-07T00-10-13.279.log").write_text("\n".join(lives[1]) + "\n")
    (tmp_path / "audit.log").write_text("\n".join(lives[2]) + "\n")
    (tmp_path / "audit-policy.yaml").write_text("not: a log\n")
    facts = read_audit(audit_lines(tmp_path / "audit.log"), {"ns-a"})
    report = experiment_report(e, facts, {"status": {"phase": "Succeeded"}}, [trial_object("exp", i) for i in range(3)])
    assert report["violations"] == []
    assert report["first_job_seconds"] == pytest.approx(1.1, abs=1e-3)  # the creation is in the oldest file
