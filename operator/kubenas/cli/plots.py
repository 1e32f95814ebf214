"""``kubenas plot``: the plots of a search, from a local run directory or a cluster experiment."""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.text import Text

from .arguments import cluster_command
from .sources import CliError, LocalRun, open_source


def cmd_plot(args) -> int:
    from kubenas.local.plots import write_plots
    from kubenas.local.summary import write_plot
    from kubenas.local.rundir import RunDir

    source = open_source(args.target, args)
    out = Path(args.out or (source.where if isinstance(source, LocalRun) else f"{source.name}-plots"))
    rows = source.rows()
    try:
        out.mkdir(parents=True, exist_ok=True)
        progress = RunDir(out)
        if not write_plot(progress, rows, source.goal, source.metric, source.name):
            raise CliError("matplotlib is not installed; pip install 'kubenas[train]' (or matplotlib) to plot")
        written = [progress.plot_file, *write_plots(out, rows, source.goal, source.metric, source.name,
                                                    source.pareto)]
    except OSError as err:
        raise CliError(f"--out {out}: {err.strerror or err}; pass a directory you can write") from None
    console = Console(soft_wrap=True)
    for path in written:
        console.print(Text(str(path)), highlight=False)
    return 0


def add_commands(sub) -> None:
    with cluster_command(sub, "plot", cmd_plot,
                         help="plot a search: progress, reward against cost (Pareto front), "
                              "per-epoch curves of the top trials, operations chosen over time; "
                              "for a Pareto search (objective.pareto) its front over every objective") as plot:
        plot.add_argument("target", help="an experiment on the cluster, or a local run directory (e.g. runs/demo)")
        plot.add_argument("--out", help="directory for the PNG files (default: the run directory, or "
                                        "<experiment>-plots for a cluster experiment)")
