#!/usr/bin/env python
"""kubenas' control plane at the size of a busy cluster, on the real-API-server tier.

Two shapes, on etcd + kube-apiserver + kube-controller-manager v1.36 and the node
stand-in of tests/realtier (kubenas installed from deploy/, the operator and every
experiment's controller running as pods under their own ServiceAccount tokens):

* ``--shape one``: one experiment of N trials (``--trials``, ``--parallel``);
* ``--shape tenants``: E experiments of T trials in K namespaces, all created at once
  (one ``kubectl apply`` of a List).

Trainer pods use the node's *instant trainer* image (tests/realtier/node.py): no
process; the node reads the trial with the pod's own trainer token, patches its status
to Succeeded (a reward hashed from the architecture) and reports the pod Succeeded; the
real Job controller completes the Job. Nothing trains: what is measured is kubenas'
control plane and the API server's work for it.

kube-controller-manager runs with ``--kube-api-qps`` raised (``--kcm-qps``, default
300; its own default is 20): at 20 requests/s the Job controller completes at most ~3.4
Jobs/s (about 6 requests per Job), which is what held the tier's earlier runs at 3.7
trials/s (bench/RESULTS.md, "Scale"). ``--kcm-qps 0`` keeps the controller manager's
defaults.

Everything timed is read from the API server's audit log (one line per request, with
the caller's identity): experiment created -> its first Job (first-Job latency), a
trial's Succeeded patch by the trainer -> the Job the operator creates next in the same
experiment (finish -> next Job, the k-th finish paired with the (parallel+k)-th Job),
trials/s per experiment (finished trials / first Job -> last finish), the longest wait
between two finishes of an experiment while it ran (starvation). Invariants, checked
from the audit log and the objects at the end: every experiment Succeeded, with exactly
``T`` NASTrials (indexes 0..T-1) all Succeeded; each trial, its Job and its pod created
exactly once and reported by its trainer exactly once. Also: the peak RSS (VmHWM) of the
operator and of the controllers (the largest one), each experiment's status size
(compact JSON), and etcd's in-use bytes per trial.

    .venv/bin/python bench/scale.py --shape one --trials 1000
    .venv/bin/python bench/scale.py --shape one --trials 10000 --timeout 2400
    .venv/bin/python bench/scale.py --shape tenants --experiments 20 --namespaces 10 --trials 200
    .venv/bin/python bench/scale.py --table

Raw results: bench/results/scale.json (merged by shape, trials, experiments, label).
tests/e2e/test_scale.py runs the tenants shape at CI size and asserts the invariants.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.control_plane import _machine, _ms, _percentile, experiment_body  # noqa: E402
from bench.control_plane_real import Sampler, etcd_db_bytes, identity, parse_time  # noqa: E402
from tests.realtier.node import INSTANT_TRAINER_IMAGE  # noqa: E402

RESULTS = HERE / "results" / "scale.json"
ADMISSION_POLICY = ("kubenas-system", "kubenas-admission-policy")
BENCH_IMAGE_PREFIX = "bench.kubenas.io/"


# =========================================================================== the layout

@dataclass(frozen=True)
class Experiment:
    namespace: str
    name: str
    trials: int
    parallel: int


def layout(experiments: int, namespaces: int, trials: int, parallel: int, prefix: str = "scale") -> list[Experiment]:
    """``experiments`` experiments spread round-robin over ``namespaces`` namespaces."""
    if experiments < 1 or namespaces < 1 or namespaces > experiments:
        raise ValueError(f"need 1 <= namespaces ({namespaces}) <= experiments ({experiments})")
    return [Experiment(f"{prefix}-tenant-{i % namespaces}", f"{prefix}-{i}", trials, parallel)
            for i in range(experiments)]


def manifest(exps: list[Experiment], strategy: str = "random") -> dict:
    """One List of NASExperiments (instant-trainer image), applied in one call."""
    items = []
    for e in exps:
        body = experiment_body(e.name, e.trials, e.parallel, strategy)
        body["metadata"]["namespace"] = e.namespace
        body["spec"]["trial"]["template"]["image"] = INSTANT_TRAINER_IMAGE
        items.append(body)
    return {"apiVersion": "v1", "kind": "List", "items": items}


# ====================================================================== the audit log

@dataclass
class AuditFacts:
    """What the audit log says about the experiments' trials, by (namespace, name)."""

    experiment_created: dict = field(default_factory=dict)                  # (ns, exp) -> t
    trial_creates: Counter = field(default_factory=Counter)                 # (ns, trial) -> 201s
    job_creates: dict = field(default_factory=lambda: defaultdict(list))    # (ns, trial) -> [t]
    pod_binds: Counter = field(default_factory=Counter)                     # (ns, trial) -> bound pods
    finishes: dict = field(default_factory=lambda: defaultdict(list))       # (ns, trial) -> [t]
    requests: dict = field(default_factory=lambda: defaultdict(Counter))    # who -> read/write


WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def _split_trial(name: str) -> tuple[str, int] | None:
    experiment, _, index = name.rpartition("-")
    return (experiment, int(index)) if experiment and index.isdigit() else None


def audit_lines(path: Path):
    """Every line of the API server's audit log, oldest first: its rotated backups
    (``audit-<time>.log``, one per ``--audit-log-maxsize``, 100 MB by default: a
    10,000-trial run writes ~280 MB) before the current file."""
    for part in sorted(path.parent.glob(f"{path.stem}-*{path.suffix}")) + [path]:
        with open(part) as f:
            yield from f


def read_audit(lines, namespaces: set[str]) -> AuditFacts:
    """Fold audit log lines (JSON text) into :class:`AuditFacts`, for ``namespaces`` only."""
    facts = AuditFacts()
    needles = [f'"namespace":"{ns}"' for ns in namespaces]  # most lines are other namespaces': skip unparsed
    for line in lines:
        if not any(n in line for n in needles):
            continue
        e = json.loads(line)
        ref = e.get("objectRef") or {}
        ns = ref.get("namespace")
        if ns not in namespaces:
            continue
        verb, code = e.get("verb"), (e.get("responseStatus") or {}).get("code")
        resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
        who = identity((e.get("user") or {}).get("username", ""))
        if who:
            facts.requests[who]["write" if verb in WRITES else "read"] += 1
        if verb != "create" and not (verb == "patch" and who == "trainer"):
            continue
        if code not in (200, 201):
            continue
        t, name = parse_time(e["stageTimestamp"]), ref.get("name") or ""
        if resource == "nasexperiments":
            facts.experiment_created.setdefault((ns, name), t)
        elif resource == "nastrials" and who == "controller":
            facts.trial_creates[(ns, name)] += 1
        elif resource == "jobs" and who == "operator":
            facts.job_creates[(ns, name)].append(t)
        elif resource == "pods/binding":
            trial = name.rsplit("-", 1)[0]
            facts.pod_binds[(ns, trial)] += 1
        elif resource == "nastrials/status" and who == "trainer":
            facts.finishes[(ns, name)].append(t)
    return facts


# ========================================================================== analysis

def experiment_report(e: Experiment, facts: AuditFacts, final: dict, trials: list[dict]) -> dict:
    """Timings and invariants of one experiment, from the audit facts, its final object
    and its NASTrials. ``violations`` lists each broken invariant in words."""
    mine = lambda d: {name: v for (ns, name), v in d.items()  # noqa: E731
                      if ns == e.namespace and (_split_trial(name) or ("",))[0] == e.name}
    jobs = sorted(t for ts in mine(facts.job_creates).values() for t in ts)
    finishes = sorted(t for ts in mine(facts.finishes).values() for t in ts)
    created = facts.experiment_created.get((e.namespace, e.name))
    violations = []
    status = final.get("status") or {}
    if status.get("phase") != "Succeeded":
        violations.append(f"phase {status.get('phase')!r}, not Succeeded")
    indexes = sorted((t.get("spec") or {}).get("index", -1) for t in trials)
    if indexes != list(range(e.trials)):
        missing = sorted(set(range(e.trials)) - set(indexes))[:10]
        extra = [i for i, n in Counter(indexes).items() if n > 1 or not 0 <= i < e.trials][:10]
        violations.append(f"{len(indexes)} NASTrials for {e.trials}: missing indexes {missing}, repeated or "
                          f"out of range {extra}")
    not_ok = [t["metadata"]["name"] for t in trials if (t.get("status") or {}).get("phase") != "Succeeded"]
    if not_ok:
        violations.append(f"{len(not_ok)} trials not Succeeded: {not_ok[:10]}")
    for what, counts in (("created", {k: v for k, v in mine(facts.trial_creates).items()}),
                         ("given a Job", {k: len(v) for k, v in mine(facts.job_creates).items()}),
                         ("given a pod", mine(facts.pod_binds)),
                         ("reported by a trainer", {k: len(v) for k, v in mine(facts.finishes).items()})):
        twice = sorted(k for k, n in counts.items() if n != 1)
        if len(counts) != e.trials or twice:
            violations.append(f"{len(counts)} trials {what} (of {e.trials}); more than once: {twice[:10]}")
    p = e.parallel
    latency = [jobs[p + k] - finishes[k] for k in range(len(finishes)) if p + k < len(jobs)]
    span = finishes[-1] - jobs[0] if finishes and jobs else None
    gaps = [b - a for a, b in zip([jobs[0]] + finishes if jobs else finishes, finishes)]
    return {
        "namespace": e.namespace, "name": e.name, "trials": e.trials, "parallel": p,
        "phase": status.get("phase"),
        "first_job_seconds": round(jobs[0] - created, 3) if jobs and created else None,
        "trials_per_second": round(len(finishes) / span, 2) if span else None,
        "created_to_last_finish_seconds": round(finishes[-1] - created, 1) if finishes and created else None,
        "longest_wait_between_finishes_seconds": round(max(gaps), 2) if gaps else None,
        "finish_to_next_job_ms": {"p50": _ms(_percentile(latency, 0.5)), "p95": _ms(_percentile(latency, 0.95)),
                                  "max": _ms(max(latency) if latency else None), "n": len(latency)},
        "status_bytes": len(json.dumps(status, separators=(",", ":"))),
        "experiment_bytes": len(json.dumps(final, separators=(",", ":"))),
        "violations": violations,
    }


def summarise(reports: list[dict]) -> dict:
    """Across experiments: the slowest first Job, throughput spread, starvation."""
    tps = sorted(r["trials_per_second"] or 0 for r in reports)
    first = [r["first_job_seconds"] for r in reports if r["first_job_seconds"] is not None]
    median = _percentile(tps, 0.5) or 0
    return {
        "experiments": len(reports),
        "slowest_first_job_seconds": max(first) if len(first) == len(reports) else None,
        "trials_per_second_per_experiment": {"min": tps[0] if tps else None, "median": median,
                                             "max": tps[-1] if tps else None},
        # starved: an experiment whose rate is under a quarter of the median one
        "starved": [r["name"] for r in reports if (r["trials_per_second"] or 0) < median / 4],
        "longest_wait_between_finishes_seconds": max((r["longest_wait_between_finishes_seconds"] or 0)
                                                     for r in reports) if reports else None,
        "violations": [f"{r['namespace']}/{r['name']}: {v}" for r in reports for v in r["violations"]],
    }


# ============================================================================ running

def prepare(cluster, operator_env: dict[str, str] | None = None) -> None:
    """kubenas installed, and the bench's instant-trainer image allowed (as a cluster
    admin allows a new trainer image's prefix); ``operator_env`` set on the operator's
    Deployment (rolled out before this returns)."""
    if operator_env:
        cluster.kubectl("-n", "kubenas-system", "set", "env", "deployment/kubenas-operator",
                        *(f"{k}={v}" for k, v in operator_env.items()))
        cluster.kubectl("-n", "kubenas-system", "rollout", "status", "deployment/kubenas-operator",
                        "--timeout=300s", timeout=320)
    policy = cluster.get_json("configmap", ADMISSION_POLICY[1], "-n", ADMISSION_POLICY[0])
    prefixes = (policy.get("data") or {}).get("trainerImagePrefixes", "")
    if BENCH_IMAGE_PREFIX not in prefixes:
        allowed = ", ".join(p for p in (prefixes.strip(), BENCH_IMAGE_PREFIX) if p)
        cluster.kubectl("-n", ADMISSION_POLICY[0], "patch", "configmap", ADMISSION_POLICY[1], "--type=merge",
                        "-p", json.dumps({"data": {"trainerImagePrefixes": allowed}}))


def _list(cluster, kind: str, namespace: str | None) -> list[dict]:
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    done = subprocess.run(["kubectl", "--kubeconfig", cluster.kubeconfig, "get", kind, *where,
                           "-o", "json", "--chunk-size=500"], capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"kubectl get {kind} {' '.join(where)}: {done.stderr[-2000:]}")
    return json.loads(done.stdout)["items"]


def run_experiments(cluster, exps: list[Experiment], timeout: float, audit_log: Path,
                    progress=print, etcd_url: str | None = None, node_pid: int | None = None) -> dict:
    """Create ``exps`` at once on an installed cluster, wait until each has ended, and
    report (timings, invariants, sizes). The audit log is read for ``exps``' namespaces."""
    namespaces = sorted({e.namespace for e in exps})
    for ns in namespaces:
        if cluster.kubectl("get", "namespace", ns, check=False).returncode != 0:
            cluster.kubectl("create", "namespace", ns)
    sampler = Sampler(under=node_pid)
    sampler.start()
    db_before = etcd_db_bytes(etcd_url) if etcd_url else None
    start = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest(exps)))
    wanted = {(e.namespace, e.name) for e in exps}
    last_print, timed_out = 0.0, False
    trajectory = []  # (seconds, trials succeeded by the experiments' status, peak RSS KiB by role)
    try:
        while True:
            found = {}
            for obj in _list(cluster, "nasexperiments", None):
                key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                if key in wanted:
                    found[key] = obj
            phases = Counter((o.get("status") or {}).get("phase") for o in found.values())
            done = sum(n for ph, n in phases.items() if ph in ("Succeeded", "Failed", "Stopped"))
            elapsed = time.monotonic() - start
            if elapsed - last_print >= 15:
                last_print = elapsed
                finished = sum(((o.get("status") or {}).get("trials") or {}).get("succeeded", 0)
                               for o in found.values())
                trajectory.append((round(elapsed), finished, dict(sampler.peak)))
                progress(f"  {elapsed:6.0f}s {dict(phases)} trials succeeded {finished} "
                         f"peak RSS KiB {sampler.peak}")
            if done == len(wanted):
                break
            if elapsed > timeout:  # report what happened so far; the invariants name what did not finish
                progress(f"  timed out after {timeout:.0f} s: {dict(phases)}")
                timed_out = True
                break
            time.sleep(3.0)
        wall = time.monotonic() - start
        time.sleep(2.5)  # the audit log is written in batches of at most 1 s
        db_after = etcd_db_bytes(etcd_url) if etcd_url else None
    finally:
        sampler.stop.set()
    trials_by_exp = defaultdict(list)
    for ns in namespaces:
        for t in _list(cluster, "nastrials", ns):
            trials_by_exp[(ns, (t.get("spec") or {}).get("experiment"))].append(t)
    facts = read_audit(audit_lines(audit_log), set(namespaces))
    reports = [experiment_report(e, facts, found[(e.namespace, e.name)], trials_by_exp[(e.namespace, e.name)])
               for e in exps]
    all_jobs = sorted(t for ts in facts.job_creates.values() for t in ts)
    all_finishes = sorted(t for ts in facts.finishes.values() for t in ts)
    return {
        "wall_seconds": round(wall, 1),
        "timed_out": timed_out,
        "trials_finished": len(all_finishes),
        "rss_trajectory": trajectory,
        "trials_per_second": round(len(all_finishes) / (all_finishes[-1] - all_jobs[0]), 2)
        if all_finishes and all_jobs else None,
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in sampler.peak.items()},
        # per trial that finished (a run stopped by its timeout finished fewer than planned)
        "etcd_bytes_per_trial": round((db_after - db_before) / max(len(all_finishes), 1))
        if db_after and db_before else None,
        "requests_per_trial": {who: {k: round(n / max(len(all_finishes), 1), 2) for k, n in c.items()}
                               for who, c in facts.requests.items()},
        "summary": summarise(reports),
        "per_experiment": reports,
    }


def bench(shape: str, trials: int, parallel: int, experiments: int, namespaces: int, timeout: float,
          workdir: Path, kcm_qps: int, operator_env: dict[str, str] | None = None) -> dict:
    from tests.realtier.cluster import LocalCluster

    shutil.rmtree(workdir, ignore_errors=True)
    cluster = LocalCluster(workdir, controller_manager_qps=kcm_qps or None)
    cluster.start()
    try:
        cluster.install()
        prepare(cluster, operator_env)
        exps = (layout(1, 1, trials, parallel, prefix="bench") if shape == "one"
                else layout(experiments, namespaces, trials, parallel))
        result = run_experiments(cluster, exps, timeout, cluster.plane.audit_log,
                                 progress=lambda s: print(s, flush=True), etcd_url=cluster.plane.etcd_url,
                                 node_pid=cluster.node.pid)
    finally:
        cluster.stop()
    return {"shape": shape, "trials": trials, "parallel": parallel,
            "experiments": 1 if shape == "one" else experiments, "namespaces": 1 if shape == "one" else namespaces,
            "kcm_qps": kcm_qps or 20, "operator_env": operator_env or {}, **result}


def table(runs: list[dict]) -> str:
    head = ("| shape | trials x experiments (namespaces) | parallel | kcm QPS | wall (s) | trials/s (all) | "
            "per-experiment trials/s min / median / max | slowest first Job (s) | finish→next Job p95 (ms, worst) | "
            "operator / largest controller peak RSS (MiB) | status bytes (largest) | etcd bytes/trial | "
            "invariants | load before → after |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in runs:
        s = r["summary"]
        tps = s["trials_per_second_per_experiment"]
        p95 = max((x["finish_to_next_job_ms"]["p95"] or 0) for x in r["per_experiment"])
        rss = r["peak_rss_mib"]
        rows.append(f"| {r['shape']} | {r['trials']:,} x {r['experiments']} ({r['namespaces']}) | {r['parallel']} | "
                    f"{r['kcm_qps']} | {r['wall_seconds']} | {r['trials_per_second']} | "
                    f"{tps['min']} / {tps['median']} / {tps['max']} | {s['slowest_first_job_seconds']} | {p95} | "
                    f"{rss.get('operator')} / {rss.get('controller')} | "
                    f"{max(x['status_bytes'] for x in r['per_experiment']):,} | {r['etcd_bytes_per_trial']} | "
                    f"{'all hold' if not s['violations'] else str(len(s['violations'])) + ' broken'} | "
                    f"{r.get('load_before', '')} → {r.get('load_after', '')} |")
    return head + "\n" + "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", choices=["one", "tenants"], default="one")
    p.add_argument("--trials", type=int, default=1000, help="trials per experiment")
    p.add_argument("--parallel", type=int, default=10, help="parallelTrials of each experiment")
    p.add_argument("--experiments", type=int, default=20, help="tenants shape: experiments")
    p.add_argument("--namespaces", type=int, default=10, help="tenants shape: namespaces")
    p.add_argument("--kcm-qps", type=int, default=300,
                   help="kube-controller-manager --kube-api-qps (burst twice that); 0: its default (20)")
    p.add_argument("--operator-env", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment variable for the operator (e.g. KUBENAS_OPERATOR_WORKERS=8 for the "
                        "earlier default); repeatable")
    p.add_argument("--timeout", type=float, default=2400)
    p.add_argument("--label", default="")
    p.add_argument("--workdir", default="/tmp/kubenas-bench-scale")
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text())["runs"]))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the tier on the way out
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    env = dict(item.split("=", 1) for item in args.operator_env)
    result = bench(args.shape, args.trials, args.parallel, args.experiments, args.namespaces, args.timeout,
                   Path(args.workdir), args.kcm_qps, env)
    result["label"] = args.label
    result["load_before"] = " ".join(load_before)
    result["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    result["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(json.dumps({k: v for k, v in result.items() if k != "per_experiment"}, indent=1), flush=True)
    _merge_scale(result, {"machine": _machine(), "python": platform.python_version(),
                          "kubernetes": "v1.36.3 (hack/kube)", "command": " ".join(["python"] + sys.argv)})
    print(table([result]))
    return 0 if not result["summary"]["violations"] else 1


def _merge_scale(result: dict, meta: dict) -> None:
    data = {"runs": []}
    if RESULTS.exists():
        data = json.loads(RESULTS.read_text())
    key = lambda r: (r["shape"], r["trials"], r["experiments"], r["parallel"], r["kcm_qps"],  # noqa: E731
                     json.dumps(r.get("operator_env") or {}, sort_keys=True), r.get("label", ""))
    data["runs"] = [r for r in data["runs"] if key(r) != key(result)] + [{**result, **meta}]
    data["runs"].sort(key=lambda r: (r["shape"], r["experiments"], r["trials"], r.get("label", "")))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
