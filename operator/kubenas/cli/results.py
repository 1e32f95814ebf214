"""Reading results: ``kubenas get``, ``top``, ``watch``, ``export``, ``logs``.

Each reads a local run directory or a NASExperiment on the cluster (``sources.py``) as
trials.jsonl rows and prints them with the local run's own report code
(``kubenas.local.summary``: ranking through ``kubenas.experiment``, the leaderboard's
columns) and progress display (``kubenas.local.progress``).
"""
from __future__ import annotations

import csv
import io
import json
import sys

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubenas.contract import FAILED, SUCCEEDED, TRIAL_ACTIVE, TRIAL_TERMINAL

from .arguments import cluster_command
from .sources import CliError, connect, list_experiments, open_source

EXPORT_FORMATS = ("csv", "jsonl")


def stdout_console() -> Console:
    out = Console(soft_wrap=True)
    return out if out.is_terminal else Console(soft_wrap=True, width=200)  # pipes: no folding


def print_table(console: Console, title: str | None, columns, rows) -> None:
    """Cells are Text, never markup: names, messages and genotypes are user text."""
    table = Table(title=Text(title) if title else None)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text("-" if cell is None else str(cell)) for cell in row))
    console.print(table)


# ------------------------------------------------------------------------------ get

GET_COLUMNS = ("name", "phase", "strategy", "succeeded", "running", "failed", "max", "best", "best trial")


def cmd_get(args) -> int:
    if args.target:
        summaries = open_source(args.target, args).experiments()
    else:
        kube, namespace = connect(args.kubeconfig, args.context)
        ns = None if args.all_namespaces else (args.namespace or namespace or "default")
        summaries = list_experiments(kube, ns)
        if not summaries:
            where = "any namespace" if ns is None else f"namespace {ns}"
            Console(stderr=True).print(Text(f"no nasexperiments in {where}"), highlight=False)
            return 0
    columns = (("namespace",) if args.all_namespaces else ()) + GET_COLUMNS
    rows = [((s["namespace"],) if args.all_namespaces else ())
            + (s["name"], s["phase"], s["strategy"], s["succeeded"], s["running"], s["failed"], s["max"],
               None if s["best"] is None else f"{s['best']:.4f}", s["bestTrial"])
            for s in summaries]
    print_table(stdout_console(), None, columns, rows)
    return 0


# ------------------------------------------------------------------------------ top


def cmd_top(args) -> int:
    from kubenas.local.summary import leaderboard_columns, leaderboard_rows

    source = open_source(args.target, args)
    rows = source.rows()
    console = stdout_console()
    print_table(console, f"{source.name}: top trials by validation {source.metric}",
                leaderboard_columns(source.pareto), leaderboard_rows(rows, source.goal, top=args.limit,
                                                                     pareto=source.pareto))
    console.print(Text(counts_line(rows)), highlight=False)
    return 0


def counts_line(rows: list[dict]) -> str:
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status")] = counts.get(row.get("status"), 0) + 1
    return ", ".join(f"{n} {str(phase).lower()}" for phase, n in sorted(counts.items())) or "no trials yet"


# ---------------------------------------------------------------------------- watch


def cmd_watch(args) -> int:
    """Live progress like ``kubenas run``'s: a line per finished trial and a bar, until
    the experiment ends; then its phase and the leaderboard."""
    from kubenas.contract import RANKED_PHASES
    from kubenas.experiment import is_better
    from kubenas.local.progress import RichProgress

    source = open_source(args.target, args)
    console = stdout_console()
    total = (source.spec.get("budget") or {}).get("maxTrials") or 0
    progress = RichProgress(console)
    shown: set[str] = set()
    best = None  # the best reward shown so far (ranked trials only, as the leaderboard)
    started = False
    snap = None
    try:
        for snap in source.follow():
            finished = [r for r in snap.rows if r.get("status") in TRIAL_TERMINAL]
            if not started:
                console.print(Text(f"kubenas: watching {source.where} ({snap.phase or 'not started'})"),
                              highlight=False)
                progress.start(total, 0)
                started = True
            running = sum(r.get("status") in TRIAL_ACTIVE for r in snap.rows)
            failed = sum(r.get("status") == FAILED for r in finished)
            for row in sorted((r for r in finished if r["name"] not in shown), key=_finish_order):
                shown.add(row["name"])
                if row.get("status") in RANKED_PHASES and row.get("reward") is not None \
                        and is_better(row["reward"], best, source.goal):
                    best = row["reward"]
                progress.trial_finished(row, len(shown), running, failed, best)
    except KeyboardInterrupt:
        if started:
            progress.stop()
        return 130
    if started:
        progress.stop()
    if snap is None:
        return 1
    colour = "green" if snap.phase == SUCCEEDED else "red" if snap.phase == FAILED else "yellow"
    console.print(Text.assemble((str(snap.phase or "not running"), colour),
                                f": {snap.message}; {counts_line(snap.rows)}"), highlight=False)
    from kubenas.local.summary import leaderboard_columns, leaderboard_rows

    print_table(console, f"{source.name}: top trials by validation {source.metric}",
                leaderboard_columns(source.pareto), leaderboard_rows(snap.rows, source.goal, top=args.limit,
                                                                     pareto=source.pareto))
    return 0 if snap.phase == SUCCEEDED else 1


def _finish_order(row: dict):
    return (row.get("completionTime") or "", row.get("index") or 0)


# --------------------------------------------------------------------------- export

EXPORT_FIRST = ("name", "index", "status", "reward", "reason", "message", "architecture", "genotype")


def export_table(rows: list[dict]) -> tuple[list[str], list[dict]]:
    """Flat columns of every trial: the fixed ones, ``param.<decision>`` per decision of a
    ``parameters`` space (flattened as the command line names them: ``norm``,
    ``norm.momentum``, ``layers``, ``layers[1].width``), ``hp.<name>`` per
    hyperparameter, ``metric.<name>`` per final metric, the epochs trained and the times."""
    from kubenas.contract.genotype import describe_genotype

    ordered = sorted(rows, key=lambda r: r.get("index") if isinstance(r.get("index"), int) else -1)
    decided = [_decisions(r) for r in ordered]
    params = list(dict.fromkeys(k for values in decided for k in values))  # in the assignments' order
    hps = sorted({k for r in rows for k in (r.get("hyperparameters") or {})})
    metrics = sorted({k for r in rows for k in (r.get("metrics") or {})})
    # a multi-fidelity experiment's trials: which candidate, trained to which rung
    ladder = ["candidate", "rung"] if any(isinstance(r.get("fidelity"), dict) for r in rows) else []
    columns = [*EXPORT_FIRST[:2], *ladder, *EXPORT_FIRST[2:], *(f"param.{k}" for k in params),
               *(f"hp.{k}" for k in hps), *(f"metric.{k}" for k in metrics), "epochs", "startTime",
               "completionTime"]
    flat = []
    for r, values in zip(ordered, decided):
        try:
            summary = describe_genotype(r.get("architecture") or {})
        except Exception:  # noqa: BLE001 - an odd genotype still exports, as JSON
            summary = ""
        line = {"name": r.get("name"), "index": r.get("index"), "status": r.get("status"),
                "reward": r.get("reward"), "reason": r.get("reason"), "message": r.get("message"),
                "architecture": summary, "genotype": json.dumps(r.get("architecture") or {}, sort_keys=True),
                "epochs": len(r.get("history") or []), "startTime": r.get("startTime"),
                "completionTime": r.get("completionTime")}
        if ladder:
            field = r.get("fidelity") if isinstance(r.get("fidelity"), dict) else {}
            line.update(candidate=field.get("candidate"), rung=field.get("rung"))
        line.update({f"param.{k}": v for k, v in values.items()})
        line.update({f"hp.{k}": v for k, v in (r.get("hyperparameters") or {}).items()})
        line.update({f"metric.{k}": v for k, v in (r.get("metrics") or {}).items()})
        flat.append(line)
    return columns, flat


def _decisions(row: dict) -> dict:
    """A ``parameters`` candidate's decisions, flat (kubenas.contract.parameters.flatten); else none."""
    from kubenas.contract.parameters import PARAMETERS_TYPE, flatten

    architecture = row.get("architecture") if isinstance(row.get("architecture"), dict) else {}
    if architecture.get("type") != PARAMETERS_TYPE or not isinstance(architecture.get("parameters"), dict):
        return {}
    try:
        return flatten(architecture["parameters"])
    except (AttributeError, TypeError):  # an odd assignment still exports, in the genotype column
        return {}


def export_text(rows: list[dict], fmt: str) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, sort_keys=True) + "\n"
                       for r in sorted(rows, key=lambda r: r.get("index") if isinstance(r.get("index"), int) else -1))
    columns, flat = export_table(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for line in flat:
        writer.writerow({k: "" if v is None else v for k, v in line.items()})
    return buffer.getvalue()


def cmd_export(args) -> int:
    source = open_source(args.target, args)
    text = export_text(source.rows(), args.format)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        try:
            with open(args.output, "w", newline="") as f:
                f.write(text)
        except OSError as err:
            raise CliError(f"-o {args.output}: {err.strerror or err}; pass a file you can write") from None
        Console(stderr=True).print(Text(f"wrote {args.output}"), highlight=False)
    return 0


# ----------------------------------------------------------------------------- logs


def cmd_logs(args) -> int:
    if args.run_dir:
        from .sources import LocalRun

        text = LocalRun(args.run_dir).log(args.trial)
    else:
        from .sources import trial_log

        kube, namespace = connect(args.kubeconfig, args.context)
        text = trial_log(kube, args.namespace or namespace or "default", args.trial)
    sys.stdout.write(text)
    return 0


# ---------------------------------------------------------------------------- parser


TARGET_HELP = "an experiment on the cluster, or a local run directory (e.g. runs/demo)"


def add_commands(sub) -> None:
    with cluster_command(sub, "get", cmd_get, help="list experiments: phase, trials, best reward") as get:
        get.add_argument("target", nargs="?", help="one experiment, or a local run directory")
        get.add_argument("-A", "--all-namespaces", action="store_true", help="experiments of every namespace")

    with cluster_command(sub, "top", cmd_top, help="leaderboard of an experiment's best trials") as top:
        top.add_argument("target", help=TARGET_HELP)
        top.add_argument("-k", "--limit", type=_positive, default=10, help="how many trials (default 10)")

    with cluster_command(sub, "watch", cmd_watch, help="live progress of an experiment until it ends") as watch:
        watch.add_argument("target", help=TARGET_HELP)
        watch.add_argument("-k", "--limit", type=_positive, default=10, help="trials in the final leaderboard")

    with cluster_command(sub, "export", cmd_export,
                         help="every trial (architecture, hyperparameters, metrics) as CSV or JSON lines") as export:
        export.add_argument("target", help=TARGET_HELP)
        export.add_argument("--format", choices=EXPORT_FORMATS, default="csv")
        export.add_argument("-o", "--output", help="file to write (default standard output)")

    with cluster_command(sub, "logs", cmd_logs,
                         help="the log of a trial (its Job's pod, or its log.txt in a run directory)") as logs:
        logs.add_argument("trial", help="trial name, e.g. digits-3")
        logs.add_argument("--run-dir", help="read the trial of this local run directory instead of the cluster")


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
