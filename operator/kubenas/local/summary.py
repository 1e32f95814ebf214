"""The summary at the end of a local run: leaderboard, best.json, best_model.pt,
progress.png, and with objective.pareto the Pareto front (pareto.json, marked in the
leaderboard)."""
from __future__ import annotations

import json
import shutil

from kubenas import experiment
from kubenas.experiment import final as final_phase
from kubenas.contract import FAILED, SUCCEEDED
from kubenas.contract.genotype import describe_genotype
from kubenas.contract.settings import EXPORT_SUFFIX

from .rundir import RunDir, _atomic_write


def ranked(rows: list[dict], goal: str) -> list[dict]:
    """The rows of ranked trials (kubenas.experiment.ranked), best first."""
    by_name = {row["name"]: row for row in rows}
    return [by_name[r.name] for r in experiment.ranked([experiment.from_row(row, details=False) for row in rows],
                                                        goal)]


def best_trial(rows: list[dict], goal: str) -> dict | None:
    top = ranked(rows, goal)
    return top[0] if top else None


def front_rows(rows: list[dict], goal: str, pareto) -> list[dict]:
    """With ``objective.pareto``, the rows of the trials on the Pareto front
    (kubenas.experiment.pareto_front), best reward first; [] without it."""
    if not pareto:
        return []
    by_name = {row["name"]: row for row in rows}
    front = experiment.pareto_front([experiment.from_row(row) for row in rows], goal, pareto)
    return [by_name[r.name] for r in front]


def write_pareto(run_dir: RunDir, records: list[dict], goal: str, pareto) -> list[dict]:
    """pareto.json: the objectives and the front's trials (name, index, reward, costs,
    architecture, hyperparameters), best reward first; nothing without objective.pareto."""
    if not pareto:
        return []
    front = front_rows(records, goal, pareto)
    body = {"objectives": [{"metric": "reward", "goal": goal}] + [{"metric": m, "goal": "minimize"} for m in pareto],
            "front": [{"name": r["name"], "index": r["index"], "reward": r["reward"],
                       "metrics": {m: (r.get("metrics") or {}).get(m) for m in pareto},
                       "architecture": r["architecture"], "hyperparameters": r.get("hyperparameters") or {}}
                      for r in front]}
    _atomic_write(run_dir.pareto_file, json.dumps(body, indent=2, sort_keys=True))
    return front


def write_final(run_dir: RunDir, records: list[dict], spec: dict) -> list[dict]:
    """With ``spec.final``, final.json: each re-evaluated candidate's rewards over its seeds
    with their mean, sample std and count, best mean first (kubenas.experiment.final)."""
    if not spec.get("final"):
        return []
    candidates = [a.as_dict() for a in final_phase.aggregates(spec, records)]
    body = {"topK": spec["final"]["topK"], "seeds": spec["final"]["seeds"], "goal": spec["objective"]["goal"],
            "candidates": candidates}
    _atomic_write(run_dir.final_file, json.dumps(body, indent=2, sort_keys=True))
    return candidates


def write_best(run_dir: RunDir, records: list[dict], goal: str, spec: dict | None = None) -> dict | None:
    """best.json and best_model.*: the best trial; with ``spec.final`` the original trial
    of the candidate with the best mean reward, its ``final`` block holding mean, std, n."""
    best = best_trial(records, goal)
    candidates = write_final(run_dir, records, spec) if spec else []
    if candidates:
        top = candidates[0]
        best = {**next(r for r in records if r["name"] == top["name"]),
                "final": {k: top[k] for k in ("mean", "std", "n", "trials", "rewards")}}
    if best is None:
        return None
    _atomic_write(run_dir.best_file, json.dumps(best, indent=2, sort_keys=True))
    for suffix in EXPORT_SUFFIX.values():  # model.pt -> best_model.pt, model.onnx -> best_model.onnx
        model = run_dir.trial_dir(best["name"]) / f"model{suffix}"
        target = run_dir.best_model_file.with_suffix(suffix)
        if model.exists():
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(model, tmp)
            tmp.replace(target)
    return best


def write_plot(run_dir: RunDir, records: list[dict], goal: str, metric: str, title: str) -> bool:
    """Reward of each trial and the best so far, over trial index."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    points = sorted((r["index"], r["reward"]) for r in records
                    if r.get("status") == SUCCEEDED and r.get("reward") is not None)
    failed = sorted(r["index"] for r in records if r.get("status") == FAILED)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if points:
        xs, ys = zip(*points)
        best, best_so_far = None, []
        for y in ys:
            best = y if experiment.is_better(y, best, goal) else best
            best_so_far.append(best)
        ax.scatter(xs, ys, s=14, label="trial reward", color="tab:blue")
        ax.step(xs, best_so_far, where="post", label="best so far", color="tab:orange")
    if failed:
        low = min((p[1] for p in points), default=0.0)
        ax.scatter(failed, [low] * len(failed), marker="x", color="tab:red", label="failed")
    ax.set_xlabel("trial index")
    ax.set_ylabel(f"reward (validation {metric})")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right" if goal == "maximize" else "upper right")
    fig.tight_layout()
    fig.savefig(run_dir.plot_file)
    plt.close(fig)
    return True


def leaderboard_rows(records: list[dict], goal: str, top: int = 10, pareto=()) -> list[tuple]:
    """The top ranked trials; with ``objective.pareto`` each row ends with the costs it
    lists and whether the trial is on the Pareto front (``leaderboard_columns(pareto)``)."""
    front = {r["name"] for r in front_rows(records, goal, pareto)}
    rows = []
    for rank, r in enumerate(ranked(records, goal)[:top], start=1):
        m = r.get("metrics") or {}
        row = (rank, r["name"], f"{r['reward']:.4f}", _fmt(test_metric(m), ".4f"),
               _fmt(m.get("parameters"), ",.0f"), _fmt(m.get("wallSeconds"), ".1f"),
               describe_hyperparameters(r.get("hyperparameters") or {}),
               describe_genotype(r["architecture"]))
        if pareto:
            row += (*(_fmt(m.get(cost), ".4g") for cost in pareto), "yes" if r["name"] in front else "")
        rows.append(row)
    return rows


# The test split's metric a row shows ("test"), the first a trial reports: classification's
# accuracy, object detection's COCO mAP.
TEST_METRICS = ("testAccuracy", "testMAP")


def test_metric(metrics: dict):
    return next((metrics[k] for k in TEST_METRICS if metrics.get(k) is not None), None)


LEADERBOARD_COLUMNS = ("#", "trial", "reward", "test", "params", "train s", "hyperparameters", "architecture")


def leaderboard_columns(pareto=()) -> tuple:
    return LEADERBOARD_COLUMNS + ((*pareto, "front") if pareto else ())


def describe_hyperparameters(values: dict) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in sorted(values.items())) or "-"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)
