"""The end of a local run: leaderboard, best.json, best_model.pt, progress.png."""
from __future__ import annotations

import json
import shutil

from kubenas.contract.genotype import describe_genotype

from .budget import is_better
from .rundir import RunDir, _atomic_write

RANKED_PHASES = ("Succeeded",)


def ranked(records: list[dict], goal: str) -> list[dict]:
    """Succeeded trials, best first (ties: earlier index first)."""
    done = [r for r in records if r.get("status") in RANKED_PHASES and r.get("reward") is not None]
    sign = -1 if goal == "maximize" else 1
    return sorted(done, key=lambda r: (sign * r["reward"], r["index"]))


def best_trial(records: list[dict], goal: str) -> dict | None:
    best = None
    for record in records:
        if record.get("status") in RANKED_PHASES and record.get("reward") is not None:
            if best is None or is_better(record["reward"], best["reward"], goal):
                best = record
    return best


def write_best(run_dir: RunDir, records: list[dict], goal: str) -> dict | None:
    best = best_trial(records, goal)
    if best is None:
        return None
    _atomic_write(run_dir.best_file, json.dumps(best, indent=2, sort_keys=True))
    model = run_dir.trial_dir(best["name"]) / "model.pt"
    if model.exists():
        tmp = run_dir.best_model_file.with_suffix(".tmp")
        shutil.copyfile(model, tmp)
        tmp.replace(run_dir.best_model_file)
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
                    if r.get("status") == "Succeeded" and r.get("reward") is not None)
    failed = sorted(r["index"] for r in records if r.get("status") == "Failed")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if points:
        xs, ys = zip(*points)
        best, best_so_far = None, []
        for y in ys:
            best = y if is_better(y, best, goal) else best
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


def leaderboard_rows(records: list[dict], goal: str, top: int = 10) -> list[tuple]:
    rows = []
    for rank, r in enumerate(ranked(records, goal)[:top], start=1):
        m = r.get("metrics") or {}
        rows.append((rank, r["name"], f"{r['reward']:.4f}", _fmt(m.get("testAccuracy"), ".4f"),
                     _fmt(m.get("parameters"), ",.0f"), _fmt(m.get("wallSeconds"), ".1f"),
                     describe_hyperparameters(r.get("hyperparameters") or {}),
                     describe_genotype(r["architecture"])))
    return rows


LEADERBOARD_COLUMNS = ("#", "trial", "reward", "test acc", "params", "train s", "hyperparameters", "architecture")


def describe_hyperparameters(values: dict) -> str:
    return " ".join(f"{k}={_short(v)}" for k, v in sorted(values.items())) or "-"


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)
