#!/usr/bin/env python
"""Search efficiency of the kubenas strategies against a known optimum (tabular benchmark).

Every strategy runs many seeds against the exhaustive table of ``bench/generate_table.py``
through ``bench/tabular.py`` (the real strategy objects, driven as the controller drives
them, rewards looked up instead of trained). Reported at budgets of 25, 50, 100 and 200
finished trials: regret (optimum - best validation accuracy found, in percentage points)
and the rank of the best found (1 = the optimum; ties share a rank), as mean +- std and
median [IQR] over seeds; the paired difference to random search under the same seed
(mean and 95% bootstrap interval; under one seed evolution's random start proposes what
random search does); the test accuracy of the architecture each search would report; and
the strategy's own time per proposal and per observation.

    .venv/bin/python bench/search_efficiency.py                     # 3 strategies x 50 seeds, parallel 1 and 4
    .venv/bin/python bench/search_efficiency.py --sweep --seeds 100 --budget 100   # the settings sweep
    .venv/bin/python bench/search_efficiency.py --config 'evolution:populationSize=32,sampleSize=8' --seeds 100

A budget-200 run gives the 25/50/100 numbers by prefix (the first n finished trials);
with ``parallel: 1`` that is exactly a budget-n run, as a proposal depends only on
earlier results. Set torch to one thread (done here) and run on an idle core for the
timings.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from tabular import DEFAULT_TABLE, SearchRun, Table, run_search, summarize  # noqa: E402

CURVES_TABLE = HERE / "data" / "cell4x3_digits_curves.csv"

BUDGETS = (25, 50, 100, 200)
STRATEGIES = ("random", "evolution", "reinforce")
RESULTS = HERE / "results"


def parse_config(text: str) -> tuple[str, dict]:
    """'evolution:populationSize=32,sampleSize=8' -> (label, strategy spec without seed)."""
    kind, _, rest = text.partition(":")
    settings: dict = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        settings[key] = None if value == "null" else json.loads(value)
    spec = {"type": kind}
    if settings:
        spec[kind] = settings
    return text, spec


def sweep_configs() -> list[tuple[str, dict]]:
    """One-at-a-time variations around the defaults, plus a few combinations."""
    texts = ["random"]
    for p, s in [(8, 2), (8, 4), (16, 2), (16, 4), (16, 8), (32, 4), (32, 8), (32, 16), (64, 8), (64, 16)]:
        texts.append(f"evolution:populationSize={p},sampleSize={s}")
    texts += ["evolution:crossoverProbability=0.5"]
    texts += ["reinforce"]
    texts += [f"reinforce:learningRate={v}" for v in (0.01, 0.03, 0.1)]
    texts += ["reinforce:temperature=null", "reinforce:baselineDecay=0.8", "reinforce:entropyWeight=0.001"]
    texts += ["reinforce:learningRate=0.03,temperature=null"]
    return [parse_config(t) for t in texts]


def run_config(table: Table, spec: dict, seeds: range, budget: int, parallel: int) -> list[SearchRun]:
    runs = []
    for seed in seeds:
        runs.append(run_search(table, {**spec, "seed": seed}, budget, parallel))
    return runs


def bootstrap_interval(differences: list[float], rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    n = len(differences)
    means = sorted(sum(rng.choice(differences) for _ in range(n)) / n for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds) - 1]


def evaluate(table: Table, runs: list[SearchRun], budgets=BUDGETS) -> dict:
    """Per budget: regret and rank summaries, raw per-seed regrets (for pairing), test accuracy."""
    out: dict = {"budgets": {}}
    for budget in budgets:
        regrets, ranks, tests, found = [], [], [], 0
        for run in runs:
            best, test = run.best_after(budget)
            if best is None:  # every trial failed: count as the worst architecture
                best, test = table._sorted_rewards[0], None
            regrets.append(100.0 * table.regret(best))
            ranks.append(table.rank(best))
            found += best == table.optimum
            if test is not None:
                tests.append(100.0 * test)
        out["budgets"][budget] = {"regret": summarize(regrets), "rank": summarize(ranks),
                                  "test": summarize(tests) if tests else None,
                                  "foundOptimum": found / len(runs), "perSeedRegret": regrets}
    proposes = [s for run in runs for s in run.propose_seconds]
    observes = [s for run in runs for s in run.observe_seconds]
    out["msPerProposal"] = 1000.0 * sum(proposes) / len(proposes)
    out["msPerObservation"] = 1000.0 * sum(observes) / len(observes)
    out["failedFraction"] = sum(r is None for run in runs for r in run.rewards) / sum(len(run.rewards) for run in runs)
    worst = table._sorted_rewards[0]
    length = max(len(run.rewards) for run in runs)
    curve = [0.0] * length
    for run in runs:
        best = worst
        for n in range(length):
            reward = run.rewards[n] if n < len(run.rewards) else None
            if reward is not None and reward > best:
                best = reward
            curve[n] += 100.0 * table.regret(best) / len(runs)
    out["meanRegretCurve"] = curve
    return out


def fmt(s: dict, digits: int = 2) -> str:
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def fmt_iqr(s: dict, digits: int = 2) -> str:
    return f"{s['median']:.{digits}f} [{s['q25']:.{digits}f}, {s['q75']:.{digits}f}]"


def markdown(table: Table, results: dict[str, dict], parallel: int, seeds: int, budgets=BUDGETS,
             baseline: str = "random") -> str:
    lines = [f"parallel {parallel}, {seeds} seeds; regret in percentage points of validation accuracy "
             f"(optimum {100 * table.optimum:.2f} %); rank among {len(table.rows)} architectures (1 = optimum).",
             "",
             "| strategy | budget | regret mean ± std | regret median [IQR] | Δ regret vs random (95% CI) "
             "| rank mean ± std | rank median [IQR] | P(optimum) | test acc. of pick |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = results.get(baseline)
    for label, res in results.items():
        for budget in budgets:
            b = res["budgets"][budget]
            delta = "—"
            if base is not None and label != baseline:
                diffs = [x - y for x, y in zip(b["perSeedRegret"], base["budgets"][budget]["perSeedRegret"])]
                low, high = bootstrap_interval(diffs)
                delta = f"{sum(diffs) / len(diffs):+.2f} ({low:+.2f}, {high:+.2f})"
            test = f"{b['test']['mean']:.2f}" if b["test"] else "—"
            lines.append(f"| {label} | {budget} | {fmt(b['regret'])} | {fmt_iqr(b['regret'])} | {delta} | "
                         f"{fmt(b['rank'], 1)} | {fmt_iqr(b['rank'], 0)} | {b['foundOptimum']:.2f} | {test} |")
    lines += ["", "| strategy | ms per proposal | ms per observation | failed trials |", "|---|---:|---:|---:|"]
    for label, res in results.items():
        lines.append(f"| {label} | {res['msPerProposal']:.3f} | {res['msPerObservation']:.3f} | "
                     f"{100 * res['failedFraction']:.1f} % |")
    return "\n".join(lines) + "\n"


def plot(results_by_parallel: dict[int, dict[str, dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results_by_parallel), figsize=(6 * len(results_by_parallel), 4.2), squeeze=False)
    for ax, (parallel, results) in zip(axes[0], results_by_parallel.items()):
        for label, res in results.items():
            curve = res["meanRegretCurve"]
            ax.plot(range(1, len(curve) + 1), curve, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("finished trials")
        ax.set_ylabel("mean regret (percentage points, val. acc.)")
        ax.set_title(f"{title}, parallel {parallel}")
        for budget in BUDGETS:
            ax.axvline(budget, color="0.85", lw=0.8, zorder=0)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def describe_table(table: Table) -> str:
    """What the reward landscape looks like: spread, ties at the top, val/test agreement."""
    from scipy.stats import kendalltau, spearmanr

    rows = [r for r in table.rows.values() if r["valAccuracy"] is not None]
    val = [100 * r["valAccuracy"] for r in rows]
    test = [100 * r["testAccuracy"] for r in rows]
    top = sorted(set(val), reverse=True)[:5]
    ties = [sum(v == t for v in val) for t in top]
    chance = sum(v < 20 for v in val)
    tau = kendalltau(val, test).statistic
    rho = spearmanr(val, test).statistic
    n = len(val)
    best_val = sorted(range(n), key=lambda i: -val[i])[: max(1, n // 100)]
    return (f"{len(table.rows)} architectures ({len(table.rows) - n} failed), {len(set(val))} distinct rewards; "
            f"val. acc. mean {sum(val) / n:.2f} %, median {sorted(val)[n // 2]:.2f} %, {chance} at chance level "
            f"(< 20 %); top rewards {', '.join(f'{t:.2f} % (x{k})' for t, k in zip(top, ties))}; "
            f"val/test Kendall tau {tau:.3f}, Spearman {rho:.3f}; mean test acc. of the top 1 % by val. "
            f"{sum(test[i] for i in best_val) / len(best_val):.2f} %")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__} (1 thread)"


# -- peers and compute budgets (--peers) ------------------------------------------------------

PEER_BUDGETS = (25, 50, 100, 200)
COMPUTE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)
# kubenas strategies also run with repeats="observe" (bench/budgeted.py), as "<type>+observe-repeats".
OBSERVE_REPEATS = ("evolution", "tpe")
# The experiments' defaults (kubenas.contract.fidelity.FIDELITY_DEFAULTS) over the table's
# 9 epochs: rungs 1, 3, 9, eta 3.
FIDELITIES = {"asha": {"type": "asha"}, "hyperband": {"type": "hyperband"}}
# One-shot (issue 26, bench/budgeted.py run_oneshot): the product's plan with spec.oneShot's
# defaults (candidates 500, 100 to a score trial, topK 3) over kubenas' default strategy, and
# the same with topK 20 (the most spec.oneShot allows: more of the budget goes to retraining).
# Bench seed s uses the (s mod n)-th of the n supernets that scored the table (by supernet seed).
ONESHOT_STRATEGY = "evolution"  # regularized evolution: what SPOS searches its supernet with; the examples use it
ONESHOT = {f"oneshot+{ONESHOT_STRATEGY}": {}, f"oneshot+{ONESHOT_STRATEGY}+top20": {"topK": 20}}
ONESHOT_SCORES = sorted((HERE / "results").glob("oneshot_scores*.json"))
# Searchers whose trials are not each one whole training: no regret-after-n-trials columns.
NOT_WHOLE_TRIALS = tuple(FIDELITIES) + ("oneshot",)


def load_supernets(table: Table, paths: list[Path]) -> list:
    """The supernets' scores of ``table`` among ``paths`` (``bench/oneshot_rank.py
    --scores-out``; those of another table are left out), by supernet seed; [] when there
    are none (one-shot then is not run on it)."""
    from budgeted import SupernetScores

    dumps = [json.loads(p.read_text()) for p in paths]
    mine = sorted((d for d in dumps if set(d["scores"]) == set(table.rows)), key=lambda d: d["seed"])
    return [SupernetScores.from_dump(d, table) for d in mine]


def peer_searchers(table: Table, supernets: list = ()) -> list[tuple[str, object]]:
    """(label, run(seed, max_seconds) -> Trace) for every searcher of the comparison;
    one-shot with ``supernets`` (load_supernets) only."""
    from budgeted import run_asha, run_oneshot, run_peer, run_strategy
    from peers import PEERS

    out = []
    for kind in STRATEGIES + ("tpe",):
        out.append((kind, lambda seed, c, kind=kind: run_strategy(table, kind, {"type": kind, "seed": seed}, 200, c)))
    for kind in OBSERVE_REPEATS:  # issue 26 item 4: propose repeats, observe their twins' answers
        out.append((f"{kind}+observe-repeats", lambda seed, c, kind=kind: run_strategy(
            table, f"{kind}+observe-repeats", {"type": kind, "seed": seed}, 200, c, repeats="observe")))
    if all(row["curve"] for row in table.rows.values()):
        for name, fidelity in FIDELITIES.items():
            for kind in STRATEGIES + ("tpe",):
                out.append((f"{name}+{kind}", lambda seed, c, kind=kind, name=name, fidelity=fidelity: run_asha(
                    table, f"{name}+{kind}", {"type": kind, "seed": seed}, fidelity, c)))
    for name, settings in ONESHOT.items() if supernets else ():  # the one-shot run ignores the budget: it ends
        out.append((name, lambda seed, c, name=name, settings=settings: run_oneshot(
            table, name, {"type": ONESHOT_STRATEGY, "seed": seed}, supernets[seed % len(supernets)], settings)))
    for name, peer in PEERS.items():
        out.append((name, lambda seed, c, name=name, peer=peer: run_peer(table, name, peer, seed, False, 200, c)))
        if name == "optuna-tpe":
            out.append((f"{name}+cache", lambda seed, c, name=name, peer=peer: run_peer(
                table, f"{name}+cache", peer, seed, True, 200, c)))
    return out


def peers_section(table: Table, table_path: Path, seeds: range, reference: str,
                  only: list[str] | None = None, supernets: list = ()) -> tuple[str, dict]:
    """Run every searcher on ``seeds``; markdown of regret vs trials and vs training-seconds."""
    from budgeted import run_strategy

    randoms = [run_strategy(table, "random", {"type": "random", "seed": s}, 200, 0.0) for s in seeds]
    compute = sum(t.points[199][1] for t in randoms) / len(randoms)  # random's mean 200-trial seconds
    worst = table._sorted_rewards[0]
    traces: dict[str, list] = {}
    for label, run in peer_searchers(table, supernets):
        if only and label not in only and label != "random":
            continue
        started = time.monotonic()
        traces[label] = [run(seed, compute) for seed in seeds]
        print(f"  {table_path.stem} {label}: {time.monotonic() - started:.1f} s", flush=True)

    def regret(value):
        return 100.0 * table.regret(worst if value is None else value)

    per_seed: dict[str, dict[str, list]] = {}
    for label, runs in traces.items():
        cols = {}
        if not label.startswith(NOT_WHOLE_TRIALS):  # a multi-fidelity or one-shot trial is not a whole training
            for n in PEER_BUDGETS:
                cols[f"trials {n}"] = [regret(t.after_trials(n)) for t in runs]
        for f in COMPUTE_FRACTIONS:
            cols[f"{int(100 * f)} % compute"] = [regret(t.after_seconds(f * compute)) for t in runs]
        per_seed[label] = cols
    target = sum(per_seed["random"]["trials 200"]) / len(seeds)
    grid = [compute * k / 400 for k in range(1, 401)]
    reach = {}
    for label, runs in traces.items():
        curve = [sum(regret(t.after_seconds(x)) for t in runs) / len(runs) for x in grid]
        reach[label] = next((x / compute for x, r in zip(grid, curve) if r <= target + 1e-9), None)

    columns = [f"trials {n}" for n in PEER_BUDGETS] + [f"{int(100 * f)} % compute" for f in COMPUTE_FRACTIONS]
    lines = [f"**{table_path.name}**: {len(table.rows)} architectures, optimum {100 * table.optimum:.2f} %; "
             f"seeds {seeds.start}–{seeds.stop - 1}; compute = random search's mean training-seconds for 200 "
             f"trials = {compute:.0f} s. Regret in points, mean ± std over seeds; Δ = paired mean difference to "
             f"`{reference}` with a 95 % bootstrap CI (negative: better than it).", "",
             "| searcher | " + " | ".join(columns) + " | reaches random@200 at | repeats per 200 trials "
             "| answered by a twin per 200 trials |",
             "|---|" + "---:|" * (len(columns) + 3)]
    ref = per_seed.get(reference)
    for label, cols in per_seed.items():
        cells = []
        for c in columns:
            if c not in cols:
                cells.append("—")
                continue
            values = cols[c]
            s = summarize(values)
            cell = f"{s['mean']:.2f} ± {s['std']:.2f}"
            if ref is not None and label != reference and c in ref:
                diffs = [a - b for a, b in zip(values, ref[c])]
                low, high = bootstrap_interval(diffs)
                cell += f"<br>Δ {sum(diffs) / len(diffs):+.2f} ({low:+.2f}, {high:+.2f})"
            cells.append(cell)
        runs = traces[label]
        per_200 = 200 / max(1, sum(t.trials for t in runs) / len(runs))
        repeats = sum(t.repeats for t in runs) / len(runs) * per_200
        answered = sum(t.answered for t in runs) / len(runs) * per_200
        where = f"{100 * reach[label]:.0f} % compute" if reach[label] is not None else "not within 100 %"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {where} | {repeats:.1f} | {answered:.1f} |")
    summary = {"compute": compute, "target": target, "reach": reach,
               "perSeed": per_seed,
               "trialsRun": {label: [t.trials for t in runs] for label, runs in traces.items()},
               "answeredByTwin": {label: [t.answered for t in runs] for label, runs in traces.items()},
               "curves": {label: [sum(regret(t.after_seconds(x)) for t in runs) / len(runs)
                                                       for x in grid] for label, runs in traces.items()},
               "grid": grid,
               "supernets": [{"seed": s.seed, "supernetSeconds": s.supernet_seconds,
                              "secondsPerCandidate": s.seconds_per_candidate} for s in supernets]}
    return "\n".join(lines) + "\n", summary


def plot_compute(summaries: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(6.5 * len(summaries), 4.5), squeeze=False)
    for ax, (name, summary) in zip(axes[0], summaries.items()):
        for label, curve in summary["curves"].items():
            peer = label.startswith(("optuna", "regevo", "local", "rf"))
            ax.plot([x / summary["compute"] for x in summary["grid"]], curve, label=label,
                    lw=2 if label.startswith(tuple(FIDELITIES)) else 1, ls="--" if peer else "-")
        ax.axhline(summary["target"], color="0.6", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("training compute / random search's 200-trial compute")
        ax.set_ylabel("mean regret (points of val. acc.)")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_peers(tables: list[Path], seeds: range, reference: str, name: str, only: list[str] | None = None,
              oneshot_scores: list[Path] = ()) -> int:
    header = (f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
              f"command: {' '.join([Path(sys.executable).name] + sys.argv)}\n")
    print(header, flush=True)
    text, summaries = [header], {}
    for path in tables:
        table = Table.load(path)
        if not table.complete:  # a missing architecture would read as a failed trial: no fair comparison
            note = (f"{path.name}: skipped, partial table ({len(table.rows)} of {table.space.size()} "
                    f"architectures); finish it first (bench/generate_curves.py resumes)\n")
            print(note, flush=True)
            text.append(note)
            continue
        supernets = load_supernets(table, list(oneshot_scores))
        section, summary = peers_section(table, path, seeds, reference, only, supernets)
        print(section, flush=True)
        text.append(f"### {path.stem}\n\n{section}")
        summaries[path.stem] = summary
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(text))
    (RESULTS / f"{name}.json").write_text(json.dumps({"header": header, "tables": summaries}) + "\n")
    plot_compute(summaries, RESULTS / f"{name}.png")
    print(f"wrote {RESULTS / name}.md, .json, .png")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed .. first-seed + seeds - 1 (confirm a sweep on fresh seeds)")
    parser.add_argument("--budget", type=int, default=max(BUDGETS))
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--config", action="append", default=None,
                        help="'type[:key=value,...]' (repeatable); default: each strategy with its defaults")
    parser.add_argument("--sweep", action="store_true", help="run the settings sweep (parallel 1)")
    parser.add_argument("--name", default=None, help="output file stem under bench/results/")
    parser.add_argument("--peers", action="store_true",
                        help="kubenas' strategies, ASHA over each (tables with curves) and the PyPI/literature "
                             "peers, regret vs trials and vs training-seconds, on every --tables table")
    parser.add_argument("--tables", type=Path, nargs="+", default=[DEFAULT_TABLE, CURVES_TABLE])
    parser.add_argument("--reference", default="evolution", help="--peers: the searcher Δ columns compare to")
    parser.add_argument("--only", nargs="+", default=None,
                        help="--peers: run only these searchers (random always runs: it sets the compute budget)")
    parser.add_argument("--oneshot-scores", type=Path, nargs="*", default=ONESHOT_SCORES,
                        help="--peers: supernet score files (bench/oneshot_rank.py --scores-out) for the one-shot "
                             "searchers, on the table they were made for; bench seed s uses file s mod their number")
    args = parser.parse_args()
    if args.peers:
        return run_peers(args.tables, range(args.first_seed, args.first_seed + args.seeds), args.reference,
                         args.name or "peers", args.only, args.oneshot_scores)

    import torch

    torch.set_num_threads(1)
    table = Table.load(args.table)
    if not table.complete:
        print(f"WARNING: partial table ({len(table.rows)} of {table.space.size()} architectures); "
              "missing ones count as failed trials", file=sys.stderr)
    if args.sweep:
        configs, parallels, name = sweep_configs(), [1], args.name or "sweep"
    else:
        configs = [parse_config(c) for c in (args.config or STRATEGIES)]
        parallels, name = args.parallel, args.name or "search_efficiency"
    budgets = tuple(b for b in BUDGETS if b <= args.budget) or (args.budget,)

    header = (f"table {args.table.name}: {len(table.rows)} architectures, optimum val. acc. "
              f"{100 * table.optimum:.2f} % (test acc. of the best-validation architecture "
              f"{100 * table.test_of_optimum:.2f} %, best test acc. {100 * table.test_optimum:.2f} %)\n"
              f"landscape: {describe_table(table)}\n"
              f"machine: {machine()}\ndate: {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
              f"command: {' '.join([Path(sys.executable).name] + sys.argv)}\n")
    print(header, flush=True)
    all_results: dict[int, dict[str, dict]] = {}
    text = [header]
    for parallel in parallels:
        results: dict[str, dict] = {}
        for label, spec in configs:
            started = time.monotonic()
            runs = run_config(table, spec, range(args.first_seed, args.first_seed + args.seeds), args.budget, parallel)
            results[label] = evaluate(table, runs, budgets)
            b = results[label]["budgets"][100 if 100 in budgets else budgets[-1]]
            print(f"  parallel {parallel} {label}: {time.monotonic() - started:.1f} s; regret@"
                  f"{100 if 100 in budgets else budgets[-1]} {fmt(b['regret'])}, "
                  f"{results[label]['msPerProposal']:.2f} ms/proposal", flush=True)
        all_results[parallel] = results
        section = markdown(table, results, parallel, args.seeds, budgets)
        print(section, flush=True)
        text.append(f"### parallel {parallel}\n\n{section}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text("\n".join(text))
    slim = {str(p): {label: {k: v for k, v in res.items()} for label, res in results.items()}
            for p, results in all_results.items()}
    (RESULTS / f"{name}.json").write_text(json.dumps({"header": header, "results": slim}) + "\n")
    plot(all_results, RESULTS / f"{name}.png", title=args.table.stem)
    print(f"wrote {RESULTS / name}.md, .json, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
