"""A malformed-input corpus, tried as a user would: `kubenas validate` / `kubenas run` on
bad files. Each case checks the exact field (or file:line:column) named in what is
printed, that nothing crashes (no traceback, no rich MarkupError), and that nothing
hangs (timeouts)."""
from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubenas.api.loading import MAX_FILE_BYTES, MAX_YAML_NODES
from kubenas.api.validation import validate_experiment
from kubenas.cli import main

ROOT = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((ROOT / "deploy/examples/digits-evolution.yaml").read_text())
BASE_TEXT = (ROOT / "deploy/examples/digits-evolution.yaml").read_text()


def mutated(change) -> dict:
    obj = copy.deepcopy(BASE)
    change(obj)
    return obj


def _set(path: str, value):
    """A change that sets spec.a.b.c (creating maps on the way); a key holding dots in
    brackets: spec.limits[nvidia.com/gpu]."""
    def change(obj):
        dotted, _, bracketed = path.partition("[")
        keys = dotted.split(".") + ([bracketed.rstrip("]")] if bracketed else [])
        *parents, last = keys
        node = obj
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


def alias_bomb(levels: int = 9) -> str:
    lines = ["apiVersion: kubenas.io/v1alpha1", "kind: NASExperiment", "metadata: {name: bomb}",
             "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    lines.append(f"spec: {{budget: [*a{levels - 1}, *a{levels - 1}]}}")
    return "\n".join(lines) + "\n"


# (id, file content: a dict to dump or raw text, the field or place the output must name,
#  a fragment the message must hold)
CORPUS = [
    # --- text that looks like rich markup is printed as is ---------------------------
    ("markup-yaml-error", BASE_TEXT.replace("dataset: {name: digits}", "dataset:\n      name: npz\n"
                                            "      path: [/data/x.npz}"),
     "{file}:29:25", "expected ',' or ']', but got '}'"),
    ("markup-key", mutated(lambda o: o["spec"].update({"[/x]": 1})), "spec[[/x]]", "unknown field"),
    ("markup-value", mutated(_set("spec.budget.maxTrials", "[/bold]")), "spec.budget.maxTrials",
     "'[/bold]' is not of type 'integer'"),
    ("markup-name", mutated(_set("metadata.name", "[red]x[/red]")), "metadata.name",
     "'[red]x[/red]' is not a DNS-1123 label"),
    ("emoji-code", mutated(_set("spec.budget.maxTrials", ":smile:")), "spec.budget.maxTrials", "':smile:'"),
    # --- YAML syntax: file:line:column and a caret ------------------------------------
    ("tab-indent", "apiVersion: kubenas.io/v1alpha1\nkind: NASExperiment\n\tmetadata: {}\n",
     "{file}:3:1", "found character '\\t' that cannot start any token"),
    ("unclosed-flow", "spec: [unclosed\n  foo: bar\n", "{file}:2:6", "while parsing a flow sequence at line 1"),
    ("unhashable-key", "? [a, b]\n: c\n", "{file}:1:3", "found unhashable key"),
    # --- resource quantities -------------------------------------------------------------
    ("gpu-lots", mutated(_set("spec.trial.template.resources.limits[nvidia.com/gpu]", "lots")),
     "spec.trial.template.resources.limits[nvidia.com/gpu]", "'lots' is not a Kubernetes quantity"),
    ("memory-trailing-newline", mutated(_set("spec.trial.template.resources.requests.memory", "2Gi\n")),
     "spec.trial.template.resources.requests.memory", "is not a Kubernetes quantity"),
    ("cpu-float", mutated(_set("spec.trial.template.resources.requests.cpu", 1.5)),
     "spec.trial.template.resources.requests.cpu", "1.5 is not a Kubernetes quantity"),
    ("controller-memory-unit", mutated(_set("spec.controller.resources", {"limits": {"memory": "2GB"}})),
     "spec.controller.resources.limits.memory", "'2GB' is not a Kubernetes quantity"),
    # --- names and oversize input ------------------------------------------------------
    ("name-51", mutated(_set("metadata.name", "a" * 51)), "metadata.name", "51 characters long; at most 50"),
    ("image-600", mutated(_set("spec.trial.template.image", "x" * 600)), "spec.trial.template.image",
     "600 characters long; at most 512"),
    ("path-5000", mutated(_set("spec.trial.dataset", {"name": "npz", "path": "/d" * 2500})),
     "spec.trial.dataset.path", "5000 characters long; at most 4096"),
    ("operations-300", mutated(_set("spec.searchSpace.cell.operations", ["conv_3x3"] * 300)),
     "spec.searchSpace.cell.operations", "has 300 items; at most 64"),
    ("hp-values-1000", mutated(_set("spec.searchSpace.hyperparameters",
                                    [{"name": "batchSize", "type": "categorical", "values": list(range(1000))}])),
     "spec.searchSpace.hyperparameters[0].values", "has 1000 items; at most 256"),
    ("labels-40", mutated(_set("spec.trial.template.labels", {f"l{i}": "v" for i in range(40)})),
     "spec.trial.template.labels", "has 40 entries; at most 32"),
    ("env-100", mutated(_set("spec.trial.template.env", [{"name": f"E{i}", "value": "v"} for i in range(100)])),
     "spec.trial.template.env", "has 100 items; at most 64"),
    ("long-key", mutated(_set("spec." + "k" * 100_000, 1)), "spec[" + "k" * 61 + "...]", "unknown field"),
    ("list-of-60000", "a: [" + ", ".join(["1"] * 60_000) + "]\n", "{file}:1:4",
     f"more than {MAX_YAML_NODES} YAML values"),
    # --- YAML bombs and shapes that would hang or recurse --------------------------------
    ("alias-bomb", alias_bomb(), "{file}:", "YAML alias bomb"),
    ("recursive-alias", "a: &a [1, *a]\n", "{file}:1:4", "cannot be recursive"),
    ("deep-nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", "{file}:1:", "nested more than 64 levels"),
    # --- wrong shapes: schema errors, no crash in the semantic checks ---------------------
    ("spec-is-a-list", mutated(_set("spec", [1, 2])), "spec", "is not of type 'object'"),
    ("budget-is-a-string", mutated(_set("spec.budget", "lots")), "spec.budget", "is not of type 'object'"),
    ("metadata-is-a-string", mutated(_set("metadata", "x")), "metadata", "is not of type 'object'"),
    ("document-is-a-list", "[1, 2]\n", "(top level)", "must be a YAML/JSON object"),
]


def _write(tmp_path: Path, case_id: str, content) -> Path:
    path = tmp_path / f"{case_id}.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case_id, content, field, fragment", CORPUS, ids=[c[0] for c in CORPUS])
def test_validate_names_the_field(tmp_path, capsys, case_id, content, field, fragment):
    path = _write(tmp_path, case_id, content)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    field = field.format(file=path)
    lines = err.splitlines()
    assert lines[0] == f"error: {path} is not a valid NASExperiment:"
    named = [line for line in lines if line.startswith(f"  {field}")]
    assert named, err
    assert any(fragment in line for line in named), err
    assert "Traceback" not in err


def test_yaml_error_shows_the_line_and_a_caret(tmp_path, capsys):
    path = _write(tmp_path, "caret", CORPUS[0][1])
    assert main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[1].startswith(f"  {path}:29:25: is not valid YAML: expected ',' or ']', but got '}}' "
                               "(while parsing a flow sequence at line 29, column 13); fix the syntax at the caret")
    snippet, caret = lines[2], lines[3]
    assert snippet.strip() == "path: [/data/x.npz}"
    assert caret.strip() == "^" and caret.index("^") == snippet.index("}")


def test_schema_and_semantic_errors_are_reported_together():
    obj = mutated(lambda o: (o["spec"]["objective"].update(metric="loss", goal="maximize", target=None),
                             o["spec"]["trial"]["dataset"].update(name="cifar10"),
                             o["spec"]["trial"]["training"].update(epochs="ten"),
                             o["spec"]["trial"]["template"].update(image=5)))
    del obj["spec"]["objective"]["target"]
    assert [i.path for i in validate_experiment(obj)] == [
        "spec.trial.template.image", "spec.trial.training.epochs",  # schema
        "spec.objective.goal", "spec.trial.dataset.path"]  # semantic


def test_semantic_checks_of_a_malformed_part_are_skipped_not_crashed():
    obj = mutated(lambda o: (o["spec"].update(budget="lots"), o["spec"]["objective"].update(goal="minimize")))
    # budget is malformed: the strategy and budget checks (which read it) are skipped; the
    # objective check still runs.
    assert [i.path for i in validate_experiment(obj)] == ["spec.budget", "spec.objective.goal"]


def test_cross_field_budget_rule_alongside_a_schema_error():
    obj = mutated(lambda o: (o["spec"]["budget"].update(parallelTrials=50),
                             o["spec"]["trial"]["template"].update(image="x" * 513)))
    assert [i.path for i in validate_experiment(obj)] == ["spec.trial.template.image", "spec.budget.parallelTrials"]


@pytest.mark.parametrize("quantity", [1, 0, "1", "500m", "1.5", "4Gi", "512Mi", "1e3", "2E", "+1", ".5", "100k"])
def test_valid_quantities_pass(quantity):
    obj = mutated(_set("spec.trial.template.resources", {"limits": {"cpu": quantity}}))
    assert validate_experiment(obj) == []


@pytest.mark.parametrize("quantity", ["lots", "2GB", "1.5.2", "Gi", "", " 1", "1 ", "2Gi\n", "1e", "0x10", 1.5, True])
def test_invalid_quantities_fail(quantity):
    obj = mutated(_set("spec.trial.template.resources.requests.memory", quantity))
    issues = validate_experiment(obj)
    assert [i.path for i in issues] == ["spec.trial.template.resources.requests.memory"]
    assert "Kubernetes quantity" in issues[0].message


def test_file_larger_than_the_cap(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("a: " + "x" * MAX_FILE_BYTES + "\n")
    assert main(["validate", str(path)]) == 2
    assert f"  {path}: is larger than 1024 KiB" in capsys.readouterr().err


def test_not_utf8(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    assert main(["validate", str(path)]) == 2
    assert f"  {path}: is not UTF-8 text (byte 9)" in capsys.readouterr().err


def test_directory_and_missing_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path), str(tmp_path / "nope.yaml")]) == 2
    err = capsys.readouterr().err
    assert f"  {tmp_path}: is a directory; pass the NASExperiment YAML file" in err
    assert f"  {tmp_path / 'nope.yaml'}: cannot read the file: No such file or directory" in err


def test_many_issues_are_capped_in_the_output(tmp_path, capsys):
    obj = mutated(lambda o: o["spec"].update({f"unknown{i}": 1 for i in range(80)}))
    path = _write(tmp_path, "many", obj)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count(": unknown field") == 50
    assert "  ... and 30 more; fix these first" in err


# ------------------------------------------------------------------------------- --run-dir


@pytest.fixture
def small_experiment(tmp_path) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(BASE_TEXT)
    return path


@pytest.mark.timeout(30)
@pytest.mark.parametrize("where, fragment", [
    ("file", "--run-dir {run_dir} is a file, not a directory"),
    ("under-file", "--run-dir {run_dir} is under {file}, which is a file, not a directory"),
    ("proc", "--run-dir {run_dir} cannot be written ("),
])
def test_run_dir_problems_are_named(tmp_path, capsys, small_experiment, where, fragment):
    regular = tmp_path / "regular"
    regular.write_text("not a directory")
    run_dir = {"file": regular, "under-file": regular / "sub" / "run", "proc": Path("/proc/kubenas-test/run")}[where]
    assert main(["run", str(small_experiment), "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: " + fragment.format(run_dir=run_dir, file=regular))
    assert "pass --run-dir a directory you can write to" in err
    assert "Traceback" not in err
    assert regular.read_text() == "not a directory"


def test_bad_metrics_port_is_named(tmp_path, capsys, small_experiment):
    rc = main(["run", str(small_experiment), "--run-dir", str(tmp_path / "run"), "--no-progress",
               "--metrics-port", "70000"])
    assert rc == 2
    assert capsys.readouterr().err.startswith("error: --metrics-port 70000: cannot serve metrics there")


# ------------------------------------------------------------------------- as a user would


def _kubenas(*args, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "300", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "kubenas.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_the_command_on_the_whole_corpus(tmp_path):
    """One `kubenas validate` over every bad file: each is reported, none crashes or hangs."""
    paths = [_write(tmp_path, case_id, content) for case_id, content, _, _ in CORPUS]
    result = _kubenas("validate", *map(str, paths))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr
    for path, (_, _, field, fragment) in zip(paths, CORPUS):
        block = result.stderr.split(f"error: {path} is not a valid NASExperiment:\n", 1)[1].split("\nerror: ", 1)[0]
        assert f"  {field.format(file=path)}" in block and fragment in block, (path, block)


def test_run_refuses_a_markup_file_without_a_traceback(tmp_path):
    path = _write(tmp_path, "markup", CORPUS[0][1])
    result = _kubenas("run", str(path), "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert result.returncode == 2
    assert f"  {path}:29:25: is not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_run_names_a_run_dir_under_a_file(tmp_path):
    (tmp_path / "f").write_text("")
    result = _kubenas("run", str(ROOT / "deploy/examples/digits-evolution.yaml"),
                      "--run-dir", str(tmp_path / "f" / "run"), "--no-progress")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --run-dir {tmp_path / 'f' / 'run'} is under {tmp_path / 'f'}, "
                                    "which is a file, not a directory; pass --run-dir a directory")


# ------------------------------------------------------------ run output is plain text too


def test_run_summary_prints_markup_like_text_literally():
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from kubenas.cli import _print_summary

    record = {"name": "exp-0", "index": 0, "status": "Succeeded", "reward": 0.5,
              "hyperparameters": {"optimizer": "[/sgd]"}, "metrics": {},
              "architecture": {"type": "chain", "layers": [{"op": "conv", "filters": 8, "kernel": 3, "stride": 1}]}}
    summary = SimpleNamespace(records=[record], trials_run=1, counts={"Succeeded": 1}, phase="Succeeded", reason="MaxTrialsReached",
                              message="done [/bold] :smile:", best=record)
    runner = SimpleNamespace(name="exp", metric="accuracy", goal="maximize", pareto=[])
    out = io.StringIO()
    _print_summary(Console(file=out, width=300), summary, runner, "runs/[red]x")
    text = out.getvalue()
    assert "optimizer=[/sgd]" in text
    assert "Succeeded (MaxTrialsReached): done [/bold] :smile:; 1 succeeded" in text
    assert "results in runs/[red]x/" in text


def test_progress_prints_a_trial_error_literally():
    import io

    from rich.console import Console

    from kubenas.local.progress import RichProgress

    out = io.StringIO()
    progress = RichProgress(Console(file=out, width=300))
    progress.start(total=2, done=0)
    progress.trial_finished({"name": "exp-0", "status": "Failed", "reason": "DataError",
                             "message": "dataset.path: [/data/x.npz} does not exist"}, 1, 0, 1, None)
    progress.trial_finished({"name": "exp-1", "status": "Failed", "reason": "InternalError", "message": None},
                            2, 0, 2, None)
    progress.stop()
    assert "DataError: dataset.path: [/data/x.npz} does not exist" in out.getvalue()
    assert "exp-1" in out.getvalue()


@pytest.mark.parametrize("resources, field, fragment", [
    ({"limits": {"nvidia.com/gpu": "0.5"}}, "spec.trial.template.resources.limits[nvidia.com/gpu]",
     "0.5: an extended resource is counted in whole units"),
    ({"limits": {"nvidia.com/gpu": "500m"}}, "spec.trial.template.resources.limits[nvidia.com/gpu]",
     "whole units"),
    ({"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}, "spec.trial.template.resources.requests.memory",
     "4Gi is more than its limit 2Gi (spec.trial.template.resources.limits.memory)"),
    ({"requests": {"cpu": "1500m"}, "limits": {"cpu": 1}}, "spec.trial.template.resources.requests.cpu",
     "1500m is more than its limit 1"),
    ({"limits": {"gpu": 1}}, "spec.trial.template.resources.limits.gpu", "'gpu' is not a resource name"),
    ({"limits": {"cpu": "-1"}}, "spec.trial.template.resources.limits.cpu", "-1 is negative"),
])
def test_resources_the_api_server_would_refuse_at_pod_creation(resources, field, fragment):
    obj = mutated(_set("spec.trial.template.resources", resources))
    issues = validate_experiment(obj)
    assert [i.path for i in issues] == [field]
    assert fragment in issues[0].message


@pytest.mark.parametrize("resources", [
    {"limits": {"nvidia.com/gpu": 2, "memory": "2Gi", "hugepages-2Mi": "1Gi"}, "requests": {"memory": "2048Mi"}},
    {"requests": {"cpu": "500m", "ephemeral-storage": "1G"}, "limits": {"cpu": "0.5"}},
    {"limits": {"amd.com/gpu": "1", "memory": "1e9"}, "requests": {"memory": "1G"}},
])
def test_real_resource_blocks_pass(resources):
    assert validate_experiment(mutated(_set("spec.trial.template.resources", resources))) == []
