"""Every reason kubenas writes is declared once, in kubenas.contract.reasons, with who
may write it (issue 24: the operator's trial reasons were defined in its own modules)."""
from __future__ import annotations

import ast
import pathlib

import yaml

from kubenas import contract
from kubenas.contract import reasons

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Where reasons are written: the operator, the controller, the experiment rules, the
# local runner, the API checks and the trainer (its results).
SOURCES = [*(ROOT / "operator" / "kubenas").glob("*/**/*.py"), *(ROOT / "trainer" / "kubenas_trainer").rglob("*.py")]
PRODUCT = [p for p in SOURCES if "contract" not in p.relative_to(ROOT).parts[:3]]
DECLARED = reasons.TRIAL_REASON_NAMES | reasons.EXPERIMENT_REASON_NAMES | reasons.DEPLOYMENT_REASON_NAMES


def _contract_imports(tree: ast.Module) -> set[str]:
    return {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubenas.contract")
            for alias in node.names}


def _reason_values(tree: ast.Module):
    """The values written under a ``"reason"`` key of a dict literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "reason":
                    yield value


def test_every_reason_product_code_writes_is_declared():
    wrong = []
    for path in PRODUCT:
        tree = ast.parse(path.read_text())
        imported = _contract_imports(tree)
        for value in _reason_values(tree):
            where = f"{path.relative_to(ROOT)}:{value.lineno}"
            if isinstance(value, ast.Constant) and value.value and value.value not in DECLARED:
                wrong.append(f"{where}: {value.value!r} is not declared in kubenas.contract.reasons")
            if isinstance(value, ast.Name) and value.id.isupper() and value.id not in imported:
                wrong.append(f"{where}: {value.id} is not imported from kubenas.contract")
    assert not wrong, "\n".join(wrong)


def test_no_reason_is_defined_outside_the_contract():
    """A module-level constant whose value is a declared reason is a second definition."""
    again = []
    for path in PRODUCT:
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and node.value.value in DECLARED and all(isinstance(t, ast.Name) and t.id.isupper()
                                                             for t in node.targets)):
                again.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert not again, "declare these in kubenas.contract.reasons and import them:\n" + "\n".join(again)


def test_the_table_says_who_writes_each_reason_once():
    for table in (reasons.TRIAL_REASONS, reasons.EXPERIMENT_REASONS, reasons.DEPLOYMENT_REASONS):
        names = [r.name for r in table]
        assert len(names) == len(set(names))
        assert all(r.producers and r.producers <= {reasons.TRAINER, reasons.OPERATOR, reasons.RUNNER,
                                                   reasons.KUBERNETES} and r.meaning for r in table)
    # The trainer writes exactly the reasons of its exit codes, and each of them is a trial reason.
    assert reasons.produced_by(reasons.TRAINER) == set(contract.TRAINER_REASONS)
    # What the experiment plan ends an experiment with.
    assert {contract.MAX_TRIALS_REACHED, contract.TARGET_REACHED, contract.TOO_MANY_FAILED_TRIALS,
            contract.NO_TRIAL_SUCCEEDED, contract.UNSATISFIABLE} <= reasons.EXPERIMENT_REASON_NAMES


def test_the_trial_crd_names_the_reasons_it_may_hold():
    """status.reason is free text in the CRD (a Kubernetes reason the kubelet invents later
    is copied as it is), so there is no enum to match; its description names every reason
    the operator or the trainer writes."""
    crd = yaml.safe_load((ROOT / "crds" / "kubenas.io_nastrials.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["reason"]
    assert "enum" not in schema
    missing = sorted(r.name for r in reasons.TRIAL_REASONS
                     if r.producers & {reasons.TRAINER, reasons.OPERATOR} and r.name not in schema["description"])
    assert not missing, f"crds/kubenas.io_nastrials.yaml status.reason's description does not name {missing}"
