"""The plots of a search beside progress.png (summary.write_plot), from trials.jsonl rows
of a local run or of a cluster experiment's NASTrials alike:

    tradeoff.png   reward against cost (parameters, MACs, latency), the Pareto front marked
    curves.png     per-epoch validation metric of the top trials
    ops.png        how often the search picked each operation, over the trials (what the
                   strategy learned); for a ``parameters`` space, each decision's value
                   over the trials, coloured by reward (``decision_values``)
    pareto.png     with objective.pareto: each pair of objectives (reward and the listed
                   costs) against each other, the trials of the Pareto front over all of
                   them highlighted (``pareto_panels``)

The numbers behind each plot are pure functions (``pareto_front``, ``tradeoff_points``,
``top_curves``, ``op_frequencies``, ``decision_values``), tested without matplotlib.
"""
from __future__ import annotations

from pathlib import Path

from kubenas.contract import SUCCEEDED, finite_number
from kubenas.contract.genotype import genotype_ops
from kubenas.contract.parameters import PARAMETERS_TYPE, flatten

from .summary import front_rows, ranked

# metric name -> axis label; the costs the trainer measures (docs/formats.md)
COSTS = {"parameters": "parameters", "macs": "MACs", "latencyMs": "latency (ms)"}
TRADEOFF_FILE, CURVES_FILE, OPS_FILE, PARETO_FILE = "tradeoff.png", "curves.png", "ops.png", "pareto.png"
MAX_DECISION_PANELS = 12  # ops.png of a parameters space: the first decisions, in the assignments' order


def tradeoff_points(rows: list[dict], cost: str) -> list[tuple[float, float, str]]:
    """(cost, reward, name) of each succeeded trial that measured ``cost``."""
    points = []
    for r in rows:
        if r.get("status") != SUCCEEDED:
            continue
        x, y = finite_number((r.get("metrics") or {}).get(cost)), finite_number(r.get("reward"))
        if x is not None and y is not None:
            points.append((x, y, r.get("name", "")))
    return points


def pareto_front(points: list[tuple], goal: str) -> list[tuple]:
    """The points no other point beats on both cost (lower) and reward (``goal``), by
    increasing cost. Ties on cost keep the better reward."""
    better = (lambda a, b: a > b) if goal == "maximize" else (lambda a, b: a < b)
    order = sorted(points, key=lambda p: (p[0], -p[1] if goal == "maximize" else p[1]))
    front, best = [], None
    for p in order:
        if best is None or better(p[1], best):
            front.append(p)
            best = p[1]
    return front


def pareto_panels(rows: list[dict], goal: str, pareto) -> list[tuple[str, str, list, list]]:
    """For a Pareto search: one panel per pair of objectives (reward, then each cost of
    ``pareto``), as (x objective, y objective, all points, front points); a point is
    (x, y, name), every trial that measured all the costs, the front the one over all
    objectives (kubenas.local.summary.front_rows), by increasing x."""
    front = {r["name"] for r in front_rows(rows, goal, pareto)}
    objectives = ["reward", *pareto]

    def value(row, objective):
        return finite_number(row.get("reward") if objective == "reward" else (row.get("metrics") or {}).get(objective))

    placed = [r for r in rows if r.get("status") == SUCCEEDED and all(value(r, o) is not None for o in objectives)]
    panels = []
    for i, y in enumerate(objectives):
        for x in objectives[i + 1:]:
            points = sorted((value(r, x), value(r, y), r.get("name", "")) for r in placed)
            panels.append((x, y, points, [p for p in points if p[2] in front]))
    return panels


def top_curves(rows: list[dict], goal: str, metric: str, top: int = 5) -> list[tuple[str, list, list]]:
    """(name, epochs, values) of the ``top`` ranked trials' per-epoch ``metric``."""
    curves = []
    for r in ranked(rows, goal)[:top]:
        points = [(h.get("epoch"), finite_number(h.get(metric))) for h in r.get("history") or []
                  if isinstance(h, dict)]
        points = [(e, v) for e, v in points if isinstance(e, (int, float)) and v is not None]
        if points:
            curves.append((r["name"], [e for e, _ in points], [v for _, v in points]))
    return curves


def op_frequencies(rows: list[dict], windows: int = 10) -> tuple[list[float], dict[str, list[float]]]:
    """Share of each operation among all decisions of the trials, in ``windows``
    consecutive groups of trials by index: (mean index of each group, op -> shares)."""
    ordered = sorted((r for r in rows if isinstance(r.get("index"), int)), key=lambda r: r["index"])
    if not ordered:
        return [], {}
    windows = max(1, min(windows, len(ordered)))
    size = len(ordered) / windows
    groups = [ordered[round(i * size):round((i + 1) * size)] for i in range(windows)]
    groups = [g for g in groups if g]
    ops = sorted({op for r in ordered for op in genotype_ops(r.get("architecture") or {})})
    centers, shares = [], {op: [] for op in ops}
    for group in groups:
        counted = [op for r in group for op in genotype_ops(r.get("architecture") or {})]
        centers.append(sum(r["index"] for r in group) / len(group))
        for op in ops:
            shares[op].append(counted.count(op) / len(counted) if counted else 0.0)
    return centers, shares


def decision_values(rows: list[dict]) -> dict[str, list[tuple[int, object, float | None]]]:
    """A ``parameters`` space's decisions over the search: flat decision name (as
    kubenas.contract.parameters.flatten names it: ``lr``, ``norm``, ``layers[1].width``)
    -> ``(trial index, value, reward or None)`` of each finished trial that has it, by
    index; decisions in the order the assignments list them. Empty for chain/cell spaces."""
    out: dict[str, list] = {}
    for r in sorted((r for r in rows if isinstance(r.get("index"), int)), key=lambda r: r["index"]):
        architecture = r.get("architecture") if isinstance(r.get("architecture"), dict) else {}
        if architecture.get("type") != PARAMETERS_TYPE or not isinstance(architecture.get("parameters"), dict):
            continue
        reward = finite_number(r.get("reward")) if r.get("status") != "Failed" else None
        for name, value in flatten(architecture["parameters"]).items():
            if value is not None:
                out.setdefault(name, []).append((r["index"], value, reward))
    return out


def write_plots(directory: str | Path, rows: list[dict], goal: str, metric: str, title: str,
                pareto=()) -> list[Path]:
    """Write the three plots into ``directory`` (four for a Pareto search: ``pareto``
    lists objective.pareto's costs); the files written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []

    costs = [c for c in COSTS if tradeoff_points(rows, c)]
    fig, axes = plt.subplots(1, max(1, len(costs)), figsize=(5 * max(1, len(costs)), 4), dpi=100, squeeze=False)
    for ax, cost in zip(axes[0], costs):
        points = tradeoff_points(rows, cost)
        front = pareto_front(points, goal)
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, color="tab:blue", alpha=0.6,
                   label="trial")
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:orange")
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=30, color="tab:orange", label="Pareto front")
        if cost in ("parameters", "macs"):
            ax.set_xscale("log")
        ax.set_xlabel(COSTS[cost])
        ax.set_ylabel(f"reward (validation {metric})")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    if not costs:
        axes[0][0].text(0.5, 0.5, "no succeeded trial measured a cost", ha="center", va="center")
    fig.suptitle(f"{title}: reward against cost")
    fig.tight_layout()
    written.append(_save(fig, plt, directory / TRADEOFF_FILE))

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, epochs, values in top_curves(rows, goal, metric):
        ax.plot(epochs, values, marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"{title}: top trials by epoch")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    written.append(_save(fig, plt, directory / CURVES_FILE))

    centers, shares = op_frequencies(rows)
    decisions = decision_values(rows)
    if decisions and not shares:  # a parameters space: its decisions, not operations
        written.append(_decisions_plot(plt, directory / OPS_FILE, decisions, metric, title))
    else:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        if centers and shares:
            ax.stackplot(centers, *shares.values(), labels=list(shares), alpha=0.85)
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
            ax.set_ylim(0, 1)
        else:
            ax.text(0.5, 0.5, "no finished trial yet", ha="center", va="center")
        ax.set_xlabel("trial index (groups of trials)")
        ax.set_ylabel("share of decisions")
        ax.set_title(f"{title}: operations chosen over the search")
        fig.tight_layout()
        written.append(_save(fig, plt, directory / OPS_FILE))
    if pareto:
        written.append(_pareto_plot(plt, directory / PARETO_FILE, pareto_panels(rows, goal, pareto), metric, title))
    return written


def _decisions_plot(plt, path: Path, decisions: dict, metric: str, title: str) -> Path:
    """One panel per decision: its value in each trial over the trial index, coloured by
    the trial's reward (failed trials: grey crosses); numbers on their axis (log where
    positive and spanning more than 20x), options as named rows."""
    names = list(decisions)[:MAX_DECISION_PANELS]
    cols = min(3, len(names))
    rows_n = -(-len(names) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 2.6 * rows_n + 0.6), dpi=100, squeeze=False)
    rewards = [w for name in names for _, _, w in decisions[name] if w is not None]
    low, high = (min(rewards), max(rewards)) if rewards else (0.0, 1.0)
    shown = None
    for ax, name in zip(axes.ravel(), names):
        points = decisions[name]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for _, v, _ in points)
        if numeric:
            ys = [float(v) for _, v, _ in points]
            if min(ys) > 0 and max(ys) / min(ys) > 20:
                ax.set_yscale("log")
            elif all(isinstance(v, int) for _, v, _ in points):
                ax.yaxis.get_major_locator().set_params(integer=True)
        else:
            options = sorted({str(v) for _, v, _ in points})
            ys = [options.index(str(v)) for _, v, _ in points]
            ax.set_yticks(range(len(options)), options, fontsize="small")
        done = [(i, y, w) for (i, _, w), y in zip(points, ys) if w is not None]
        failed = [(i, y) for (i, _, w), y in zip(points, ys) if w is None]
        if done:
            shown = ax.scatter([p[0] for p in done], [p[1] for p in done], c=[p[2] for p in done], cmap="viridis",
                               vmin=low, vmax=high if high > low else low + 1e-9, s=18)
        if failed:
            ax.scatter([p[0] for p in failed], [p[1] for p in failed], marker="x", color="grey", s=18)
        ax.set_title(name, fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("trial index")
    fig.subplots_adjust(hspace=0.5)
    if shown is not None:
        fig.colorbar(shown, ax=axes.ravel().tolist(), label=f"reward (validation {metric})")
    more = len(decisions) - len(names)
    fig.suptitle(f"{title}: decisions over the search" + (f" (first {len(names)}; {more} more)" if more else ""))
    return _save(fig, plt, path)


def _pareto_plot(plt, path: Path, panels: list, metric: str, title: str) -> Path:
    label = {"reward": f"reward (validation {metric})", **COSTS}
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), dpi=100, squeeze=False)
    for ax, (x, y, points, front) in zip(axes[0], panels):
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, color="tab:blue", alpha=0.5, label="trial")
        ax.scatter([p[0] for p in front], [p[1] for p in front], s=36, color="tab:orange",
                   label=f"Pareto front ({len(front)})")
        if len(panels) == 1:  # two objectives: the front is a staircase, name its members
            ax.plot([p[0] for p in front], [p[1] for p in front], color="tab:orange", alpha=0.6)
            for px, py, name in front:
                ax.annotate(name.rsplit("-", 1)[-1], (px, py), textcoords="offset points", xytext=(4, 4),
                            fontsize="x-small")
        if x in ("parameters", "macs"):
            ax.set_xscale("log")
        ax.set_xlabel(label[x])
        ax.set_ylabel(label[y])
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    if not any(points for _, _, points, _ in panels):
        axes[0][0].text(0.5, 0.5, "no succeeded trial measured every objective", ha="center", va="center")
    fig.suptitle(f"{title}: Pareto front")
    fig.tight_layout()
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
