"""The `kubenas` command: run and validate experiments locally; read the results of a
local run or of an experiment on a cluster (get, top, watch, export, logs, plot); start
the operator and the per-experiment controller inside a cluster."""
from __future__ import annotations

# One module per command group, each with ``add_commands(subparsers)`` listed in
# ``command_groups``: this one (run, validate, controller, operator), ``results`` (get,
# top, watch, export, logs), ``plots`` (plot). ``sources`` reads a run directory or a
# cluster experiment; ``serve`` (serve: the V2 inference server, kubenas.serving); a new
# group adds a module and a line in ``command_groups``.

import argparse
import os
import signal
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubenas.contract import FAILED, NO_TRIAL_SUCCEEDED, SUCCEEDED, TOO_MANY_FAILED_TRIALS

EXIT_INVALID = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
MAX_SHOWN_ISSUES = 50


# Everything printed goes through rich.Text: file names, field paths, values and YAML
# snippets are user text, never rich markup (a "[/" in a value must not crash the CLI).


def _say(console: Console, label: str, style: str, *parts: str) -> None:
    console.print(Text.assemble((label, style), ": ", *parts), highlight=False)


def _print_issues(console: Console, path: str, issues) -> None:
    _say(console, "error", "red", f"{path} is not a valid NASExperiment:")
    for issue in issues[:MAX_SHOWN_ISSUES]:
        lines = str(issue.message).split("\n")
        console.print(Text.assemble("  ", (str(issue.path), "bold"), ": ", lines[0]), highlight=False)
        for line in lines[1:]:
            console.print(Text("  " + line), highlight=False)
    if len(issues) > MAX_SHOWN_ISSUES:
        console.print(Text(f"  ... and {len(issues) - MAX_SHOWN_ISSUES} more; fix these first"), highlight=False)


def cmd_validate(args) -> int:
    from kubenas.api.loading import load_experiment_file
    from kubenas.api.validation import ExperimentInvalid

    console = Console(stderr=True, soft_wrap=True)
    status = 0
    for path in args.files:
        try:
            obj = load_experiment_file(path)
        except ExperimentInvalid as err:
            _print_issues(console, path, err.issues)
            status = EXIT_INVALID
            continue
        issues = dataset_issues(obj, here=False)
        if issues:
            _print_issues(console, path, issues)
            status = EXIT_INVALID
            continue
        _say(console, "ok", "green", f"{path} ({obj['metadata']['name']})")
        dataset = obj["spec"]["trial"].get("dataset") or {}
        if _reads_dataset_files(obj) and not Path(str(dataset["path"])).expanduser().exists():
            _say(console, "note", "yellow", f"spec.trial.dataset.path {dataset['path']} is not on this machine: "
                 "its files are checked when a trial reads them")
    return status


def _reads_dataset_files(experiment: dict) -> bool:
    """Whether the trials read ``dataset.path`` with a built-in reader (not a user's
    ``trial.command`` or ``dataset.loader``)."""
    trial = experiment["spec"].get("trial") or {}
    dataset = trial.get("dataset") or {}
    return not trial.get("command") and not dataset.get("loader") and bool(dataset.get("name")) \
        and bool(dataset.get("path"))


def dataset_issues(experiment: dict, *, here: bool) -> list:
    """The dataset's files on this machine against the layout its reader expects
    (kubenas.contract.datasets): an issue on ``spec.trial.dataset.path``, else none.
    ``here``: the trials run on this machine (``kubenas run``), so a missing path is an
    error too; else (``kubenas validate``, maybe for a cluster) only files present here
    are checked. A relative path is taken from the current directory, as the trials do."""
    from kubenas.api.validation import Issue
    from kubenas.contract.datasets import layout_problem

    if not _reads_dataset_files(experiment):
        return []
    dataset = experiment["spec"]["trial"]["dataset"]
    if not here and not Path(str(dataset["path"])).expanduser().exists():
        return []
    problem = layout_problem(dataset["name"], str(dataset["path"]))
    if problem is None:
        return []
    return [Issue("spec.trial.dataset.path", f"{problem}; every trial would fail with DataError")]


def cmd_run(args) -> int:
    from kubenas.api.loading import load_experiment_file
    from kubenas.api.validation import ExperimentInvalid
    from kubenas.local.rundir import RunDirMismatch
    from kubenas.local.runner import LocalRunner

    console = Console(stderr=True, soft_wrap=True)
    try:
        experiment = load_experiment_file(args.file)
    except ExperimentInvalid as err:
        _print_issues(console, args.file, err.issues)
        return EXIT_INVALID
    issues = dataset_issues(experiment, here=True)
    if issues:
        _print_issues(console, args.file, issues)
        return EXIT_INVALID
    run_dir = args.run_dir or f"runs/{experiment['metadata']['name']}"
    problem = run_dir_problem(run_dir)
    if problem:
        _say(console, "error", "red", problem)
        return EXIT_INVALID
    metrics = None
    if args.metrics_port is not None:
        from kubenas.local.metrics import LocalMetrics

        try:
            metrics = LocalMetrics.serve(args.metrics_port, experiment)
        except (OSError, OverflowError) as err:
            _say(console, "error", "red", f"--metrics-port {args.metrics_port}: cannot serve metrics there "
                 f"({getattr(err, 'strerror', None) or err}); pick a free port from 1 to 65535, or leave "
                 "--metrics-port out")
            return EXIT_INVALID
    if args.no_progress:
        from kubenas.local.runner import NullProgress
        progress = NullProgress()
    else:
        from kubenas.local.progress import RichProgress
        progress = RichProgress(console)
    console.print(Text(f"kubenas: running {experiment['metadata']['name']} in {run_dir}"), highlight=False)
    runner = LocalRunner(experiment, run_dir, progress=progress, metrics=metrics,
                         python_path=[Path(args.file).resolve().parent])
    artifacts = experiment["spec"].get("artifacts") or {}
    if artifacts.get("persistentVolumeClaim"):
        _say(console, "note", "yellow", "spec.artifacts.persistentVolumeClaim is a cluster volume: this local run "
             f"keeps its outputs in {run_dir} only")
    elif artifacts.get("url"):
        console.print(Text(f"kubenas: trial outputs also go to {artifacts['url']}"), highlight=False)
    # SIGTERM (kill, a closing terminal) stops as cleanly as Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        summary = runner.run()
    except RunDirMismatch as err:
        _say(console, "error", "red", str(err))
        return EXIT_INVALID
    except KeyboardInterrupt:
        console.print()
        _say(console, "interrupted", "yellow", "finished trials are kept; rerun the same command to resume.")
        return EXIT_INTERRUPTED
    except OSError as err:
        if not _is_under(err.filename, run_dir):
            raise
        _say(console, "error", "red", f"{err.filename}: {err.strerror or err} while writing the run directory "
             f"{run_dir}; free some space or fix its permissions, or pass another --run-dir, then rerun "
             "to resume")
        return EXIT_FAILED
    out = Console(soft_wrap=True)
    if not out.is_terminal:
        out = Console(soft_wrap=True, width=200)  # logs and pipes: no folding of long names
    _print_summary(out, summary, runner, run_dir)
    return 0 if summary.phase == SUCCEEDED else EXIT_FAILED


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _is_under(filename, run_dir: str) -> bool:
    """Whether an OSError's filename lies in the run directory."""
    if not isinstance(filename, (str, bytes)) or not filename:
        return False
    try:
        where, root = Path(os.fsdecode(filename)).resolve(), Path(run_dir).resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return where == root or root in where.parents


def run_dir_problem(run_dir: str) -> str | None:
    """Why results cannot be written under ``run_dir`` (with the fix), or None.

    The directory is created if missing, and a probe file written and removed, so an
    unwritable place is named before any trial runs."""
    path = Path(run_dir)
    fix = "pass --run-dir a directory you can write to (it is created if missing)"
    if path.exists() and not path.is_dir():
        return f"--run-dir {run_dir} is a file, not a directory; {fix}"
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            return f"--run-dir {run_dir} is under {parent}, which is a file, not a directory; {fix}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".kubenas-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        return f"--run-dir {run_dir} cannot be written ({err.strerror or err}); {fix}"
    return None


def _print_summary(console: Console, summary, runner, run_dir: str) -> None:
    from kubenas.local.summary import leaderboard_columns, leaderboard_rows

    pareto = runner.pareto
    table = Table(title=Text(f"{runner.name}: top trials by validation {runner.metric}"))
    for column in leaderboard_columns(pareto):
        table.add_column(column, overflow="fold")
    for row in leaderboard_rows(summary.records, runner.goal, pareto=pareto):
        table.add_row(*(Text(str(cell)) for cell in row))
    console.print(table)
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(summary.counts.items())) or "no trials"
    colour = "green" if summary.phase == SUCCEEDED else "red"
    console.print(Text.assemble((str(summary.phase), colour), f" ({summary.reason}): {summary.message}; {counts}"),
                  highlight=False)
    cause = failure_cause(summary.records) if summary.reason in (TOO_MANY_FAILED_TRIALS, NO_TRIAL_SUCCEEDED) else None
    if cause:
        console.print(Text.assemble(("cause", "red"), ": ", cause), highlight=False)
    if summary.trials_run == 0 and summary.records:
        console.print(Text.assemble(("note", "yellow"), ": ", (
            f"no trial ran: {run_dir} holds this experiment's finished run, shown above (a rerun resumes it). "
            f"To run it again, e.g. after fixing the data, pass another --run-dir or delete {run_dir}")),
            highlight=False)
    if summary.best:
        final = summary.best.get("final")  # spec.final: the best mean over seeds
        reward = (f"mean reward {final['mean']:.4f} ± {final['std']:.4f} over {final['n']} seeds" if final
                  else f"reward {summary.best['reward']:.4f}")
        console.print(Text(f"best: {summary.best['name']} {reward}; "
                           f"results in {run_dir}/ (trials.jsonl, best.json, best_model.pt, progress.png"
                           f"{', pareto.json, pareto.png' if pareto else ''}{', final.json' if final else ''})"),
                      highlight=False)


def failure_cause(records: list[dict]) -> str | None:
    """Why the trials failed, for a run that ended with too many failures: the commonest
    (reason, message) of the failed trials, with how many share it and the last trial's name."""
    from collections import Counter

    failed = [r for r in records if r.get("status") == FAILED]
    if not failed:
        return None
    counts = Counter((r.get("reason") or "Failed", (r.get("message") or "").strip()) for r in failed)
    (reason, message), n = counts.most_common(1)[0]
    last = next(r["name"] for r in reversed(failed) if (r.get("reason") or "Failed", (r.get("message") or "").strip())
                == (reason, message))
    share = f"{n} of {len(failed)} failed trials" if len(failed) > 1 else "the failed trial"
    return f"{share} ({last} the last): {reason}: {message or '(no message)'}"


def cmd_controller(args) -> int:
    from kubenas.controller.main import run

    return run(args.namespace, args.experiment) or 0


def cmd_operator(args) -> int:
    from kubenas.operator.main import run

    return run(namespaces=args.namespace, all_namespaces=args.all_namespaces,
               metrics_port=args.metrics_port) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubenas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an experiment on this machine (no cluster)")
    run.add_argument("file", help="a NASExperiment YAML file")
    run.add_argument("--run-dir", help="where results go (default runs/<experiment name>); "
                                       "rerunning with the same directory resumes")
    run.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="validate experiment files without running them")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=cmd_validate)

    controller = sub.add_parser("controller", help="(in cluster) the search controller of one experiment")
    controller.add_argument("--namespace", required=True)
    controller.add_argument("--experiment", required=True)
    controller.set_defaults(func=cmd_controller)

    operator = sub.add_parser("operator", help="(in cluster) the kubenas operator")
    operator.add_argument("--namespace", action="append", help="watch this namespace (repeatable)")
    operator.add_argument("--all-namespaces", action="store_true", help="watch every namespace")
    operator.add_argument("--metrics-port", type=int, default=9090,
                          help="Prometheus /metrics port, HTTPS to a bearer token allowed to get /metrics "
                               "(8080 serves the liveness probe)")
    operator.set_defaults(func=cmd_operator)

    for group in command_groups():
        group.add_commands(sub)

    return parser


def command_groups() -> tuple:
    """The modules that add commands (each has ``add_commands(subparsers)``)."""
    from . import deploy, model, plots, results, serve

    return (results, plots, model, serve, deploy)


def main(argv: list[str] | None = None) -> int:
    from .sources import CliError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as err:
        _say(Console(stderr=True, soft_wrap=True), "error", "red", str(err))
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
