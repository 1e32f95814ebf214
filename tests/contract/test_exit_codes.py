"""The one table of exit codes (kubenas.contract.EXIT_TABLE) and everything that reads it:
the trainer's failures, the wrapper's mapping of a program's code, the Job's
podFailurePolicy, and the docs' tables."""
from __future__ import annotations

import pathlib
import re

from kubenas import contract
from kubenas.contract import BY_PROGRAM, BY_TRAINER, EXIT_TABLE
from kubenas.api.defaults import with_defaults
from kubenas.operator.manifests import job_for_trial
from kubenas_trainer import errors

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"


def test_each_code_and_reason_is_written_once():
    codes = [e.code for e in EXIT_TABLE]
    reasons = [r for e in EXIT_TABLE for r in e.reasons]
    assert len(set(codes)) == len(codes) and len(set(reasons)) == len(reasons)
    # Below 126: the shell's "cannot execute", "not found" and 128+signal are never ours.
    assert all(0 <= c < 126 for c in codes)
    assert all(e.producers <= {BY_TRAINER, BY_PROGRAM} and e.producers for e in EXIT_TABLE)


def test_a_program_may_say_only_what_it_can_know():
    """kubenas' own findings (a latency refusal, an unreachable API server, no reward,
    an internal error) are not a program's to claim: its 1 or 7 is InternalError."""
    assert set(contract.PROGRAM_EXIT_REASONS) == {e.code for e in EXIT_TABLE if BY_PROGRAM in e.producers and e.code}
    for reason in (contract.CONSTRAINT_VIOLATED, contract.API_UNAVAILABLE, contract.NO_REWARD,
                   contract.UNSATISFIABLE, contract.INTERNAL_ERROR):
        assert reason not in contract.PROGRAM_EXIT_REASONS.values()


def test_the_trainer_has_a_code_for_every_failure_it_reports():
    for reason in errors.REASONS:
        code = errors.exit_code({"status": "Failed", "reason": reason})
        assert contract.EXIT_REASONS[code] == next(e.reasons[0] for e in EXIT_TABLE if reason in e.reasons)
    assert errors.exit_code({"status": "Succeeded"}) == errors.exit_code({"status": "EarlyStopped"}) == 0


def test_the_jobs_failure_policy_fails_on_the_final_codes_only():
    job = job_for_trial({"metadata": {"name": "e-0", "namespace": "ns", "uid": "u"},
                         "spec": {"experiment": "e", "index": 0}}, with_defaults({}))
    fail = job["spec"]["podFailurePolicy"]["rules"][0]
    assert fail["action"] == "FailJob"
    assert fail["onExitCodes"]["values"] == [e.code for e in EXIT_TABLE if e.final] == list(contract.FINAL_EXIT_CODES)
    assert 0 not in contract.FINAL_EXIT_CODES  # the API server refuses 0 with operator In
    assert list(contract.FINAL_EXIT_CODES) == sorted(set(contract.FINAL_EXIT_CODES))  # unique and ordered, as it wants
    assert 1 in contract.FINAL_EXIT_CODES       # the documented rule: an exit 1 is never retried


def _table(doc: str, heading: str) -> dict[int, list[str]]:
    """``| code | cell | ...`` rows of the first table after ``heading`` in docs/<doc>."""
    text = (DOCS / doc).read_text()
    rows = {}
    for line in text[text.index(heading):].splitlines()[1:]:
        if line.startswith("#"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].isdigit():
            rows[int(cells[0])] = cells[1:]
    return rows


def test_docs_trainer_lists_every_code_with_its_reasons_producers_and_retry():
    rows = _table("trainer.md", "## Results and exit codes")
    assert set(rows) == {e.code for e in EXIT_TABLE}
    for e in EXIT_TABLE:
        reasons, producers, retried = rows[e.code][:3]
        assert all(f"`{r}`" in reasons for r in e.reasons), (e.code, reasons)
        assert set(producers.replace(" ", "").split(",")) == set(e.producers), (e.code, producers)
        if e.code:
            assert retried.startswith("no" if e.final else "yes"), (e.code, retried)


def test_docs_byo_names_the_codes_a_program_may_use():
    text = (DOCS / "byo.md").read_text()
    codes = ", ".join(map(str, contract.PROGRAM_EXIT_REASONS))
    assert f"| exits {codes} |" in text
    assert all(f"`{r}`" in text for r in contract.PROGRAM_EXIT_REASONS.values())


def test_the_trial_crd_names_every_reason_a_trainer_may_report():
    import yaml

    crd = yaml.safe_load((DOCS.parent / "crds" / "kubenas.io_nastrials.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    described = schema["properties"]["status"]["properties"]["reason"]["description"]
    assert all(re.search(rf"\b{reason}\b", described) for reason in contract.TRAINER_REASONS), described
