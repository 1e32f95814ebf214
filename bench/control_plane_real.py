#!/usr/bin/env python
"""Control-plane cost of kubenas on a real API server (not part of CI).

The twin of bench/control_plane.py (emulated API server) on the real-API-server tier of
tests/realtier: etcd, kube-apiserver and kube-controller-manager v1.36 on loopback, and
the node stand-in. kubenas is installed with ``kubectl apply -k deploy/``; the operator
and each experiment's controller run as pods (processes in their own namespaces, under
their own ServiceAccount tokens, with the production settings of deploy/). Trainer pods
use the node's *instant trainer* image: no process, the node reads the trial with the
pod's own trainer token and patches its status to Succeeded with a reward hashed from
the architecture, then reports the pod Succeeded, and the real Job controller completes
the Job. Nothing trains; what is measured is kubenas' control plane.

Everything counted comes from the API server's own audit log (one line per request, with
the caller's identity): requests and writes per trial for the operator, the controllers
and the trainers, 409 answers, the finish -> next Job latency (a trainer's Succeeded
patch to the next Job the operator creates). Also trials/s, the peak RSS (VmHWM) of the
operator and controller processes, and etcd's database size growth per trial.

    .venv/bin/python bench/control_plane_real.py --trials 100 1000
    .venv/bin/python bench/control_plane_real.py --table

Raw results: bench/results/control_plane_real.json (merged by trials, strategy, parallel, label).
"""
from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.control_plane import _machine, _merge, _ms, _percentile, _vm, experiment_body  # noqa: E402
from tests.realtier.cluster import LocalCluster  # noqa: E402
from tests.waiting import wait_until  # noqa: E402
from tests.realtier.node import INSTANT_TRAINER_IMAGE  # noqa: E402

NS = "research"
RESULTS = HERE / "results" / "control_plane_real.json"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


def identity(user: str) -> str | None:
    m = re.match(r"system:serviceaccount:[^:]+:kubenas-(operator|controller|trainer)$", user)
    return m.group(1) if m else None


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def audit(path: Path, namespace: str) -> dict:
    requests: dict = defaultdict(Counter)
    conflicts: Counter = Counter()
    finished, jobs = [], []
    by_call: dict = defaultdict(Counter)
    with open(path) as f:
        for line in f:
            e = json.loads(line)
            who = identity((e.get("user") or {}).get("username", ""))
            if who is None:
                continue
            verb = e.get("verb")
            ref = e.get("objectRef") or {}
            code = (e.get("responseStatus") or {}).get("code")
            requests[who]["write" if verb in WRITES else "read"] += 1
            resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
            by_call[who][f"{verb} {resource} {code}"] += 1
            if code == 409:
                conflicts[who] += 1
            t = parse_time(e["stageTimestamp"])
            if who == "trainer" and verb == "patch" and resource == "nastrials/status" and code == 200:
                finished.append(t)
            if who == "operator" and verb == "create" and resource == "jobs" and code == 201 \
                    and ref.get("namespace") == namespace:
                jobs.append(t)
    return {"requests": {k: dict(v) for k, v in requests.items()}, "conflicts": dict(conflicts),
            "finished": sorted(finished), "jobs": sorted(jobs),
            "by_call": {k: dict(v.most_common(12)) for k, v in by_call.items()}}


def etcd_db_bytes(url: str) -> int | None:
    try:
        text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    except OSError:
        return None
    for name in ("etcd_mvcc_db_total_size_in_use_in_bytes", "etcd_mvcc_db_total_size_in_bytes"):
        m = re.search(rf"^{name} (\S+)$", text, re.M)
        if m:
            return int(float(m.group(1)))
    return None


def _parents() -> dict[int, int]:
    out = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                out[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def _descends(pid: int, root: int, parents: dict[int, int]) -> bool:
    while pid > 1:
        if pid == root:
            return True
        pid = parents.get(pid, 0)
    return False


def kubenas_pids(under: int | None = None) -> dict[str, list[int]]:
    """The ``kubenas operator`` and ``kubenas controller`` processes, by role; with
    ``under``, only those descending from that process (one node stand-in's pods: other
    test sessions on the machine run kubenas too)."""
    out: dict[str, list[int]] = defaultdict(list)
    parents = _parents() if under else {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        for i, w in enumerate(words[:-1]):
            if w.endswith("kubenas") and words[i + 1] in ("operator", "controller"):
                if under is None or _descends(int(proc.name), under, parents):
                    out[words[i + 1]].append(int(proc.name))
    return out


class Sampler(threading.Thread):
    """Peak RSS (VmHWM, KiB) by role, sampled every 0.5 s (see :func:`kubenas_pids`)."""

    def __init__(self, under: int | None = None):
        super().__init__(daemon=True)
        self.under = under
        self.peak: dict[str, int] = {}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            for role, pids in kubenas_pids(self.under).items():
                for pid in pids:
                    hwm = _vm(pid, "VmHWM")
                    if hwm:
                        self.peak[role] = max(self.peak.get(role, 0), hwm)


def run_once(trials: int, strategy: str, parallel: int, timeout: float, workdir: Path) -> dict:
    cluster = LocalCluster(workdir)
    cluster.start()
    sampler = Sampler(under=cluster.node.pid)
    try:
        cluster.install()
        cluster.kubectl("create", "namespace", NS)
        # As a cluster admin would for a new trainer image: allow its prefix.
        cluster.kubectl("-n", "kubenas-system", "patch", "configmap", "kubenas-admission-policy", "--type=merge",
                        "-p", json.dumps({"data": {"trainerImagePrefixes": "ghcr.io/kubenas/, bench.kubenas.io/"}}))
        body = experiment_body("bench", trials, parallel, strategy)
        body["spec"]["trial"]["template"]["image"] = INSTANT_TRAINER_IMAGE
        db_before = etcd_db_bytes(cluster.plane.etcd_url)
        sampler.start()
        start = time.monotonic()
        cluster.kubectl("apply", "-n", NS, "-f", "-", input=json.dumps(body))

        def phase():
            exp = cluster.get_json("nasexperiment", "bench", "-n", NS)
            return (exp.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Stopped") and exp
        exp = wait_until(phase, timeout, f"{trials} trials", interval=1.0)
        wall = time.monotonic() - start
        time.sleep(2)  # the audit log is written in batches of at most 1 s
        db_after = etcd_db_bytes(cluster.plane.etcd_url)
    finally:
        sampler.stop.set()
        cluster.stop()
    a = audit(cluster.plane.audit_log, NS)
    finished, jobs = a["finished"], a["jobs"]
    latency = [jobs[parallel + k] - finished[k] for k in range(len(finished)) if parallel + k < len(jobs)]
    span = (finished[-1] - jobs[0]) if finished and jobs else None
    status = exp.get("status") or {}
    per_trial = {who: {kind: round(n / trials, 2) for kind, n in counts.items()}
                 for who, counts in a["requests"].items()}
    return {
        "trials": trials, "strategy": strategy, "parallel": parallel, "phase": status.get("phase"),
        "wall_seconds": round(wall, 1), "trials_finished": len(finished), "jobs_created": len(jobs),
        "trials_per_second": round(len(finished) / span, 2) if span else None,
        "finish_to_next_job_ms": {"p50": _ms(_percentile(latency, 0.5)), "p95": _ms(_percentile(latency, 0.95)),
                                  "max": _ms(max(latency) if latency else None), "n": len(latency)},
        "requests_per_trial": per_trial,
        "writes_per_trial_total": round(sum(c.get("write", 0) for c in a["requests"].values()) / trials, 2),
        "requests_per_trial_total": round(sum(sum(c.values()) for c in a["requests"].values()) / trials, 2),
        "conflicts_per_trial": {k: round(v / trials, 2) for k, v in a["conflicts"].items()},
        "top_calls": a["by_call"],
        "peak_rss_mib": {k: round(v / 1024, 1) for k, v in sampler.peak.items()},
        "etcd_bytes_per_trial": round((db_after - db_before) / trials) if db_after and db_before else None,
        "experiment_bytes": len(json.dumps(exp, separators=(",", ":"))),
        "status_trials": status.get("trials"),
    }


def table(runs: list[dict]) -> str:
    head = ("| trials | strategy | wall (s) | trials/s | finish→next Job p50 / p95 (ms) | writes/trial (all) | "
            "requests/trial (all) | operator reads / writes | controller reads / writes | trainer reads / writes "
            "| 409s/trial (operator) | operator / controller peak RSS (MiB) | etcd bytes/trial |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in runs:
        rpt = r["requests_per_trial"]
        lat = r["finish_to_next_job_ms"]

        def rw(who):
            c = rpt.get(who) or {}
            return f"{c.get('read', 0)} / {c.get('write', 0)}"
        rows.append(f"| {r['trials']:,} | {r['strategy']} | {r['wall_seconds']} | {r['trials_per_second']} | "
                    f"{lat['p50']} / {lat['p95']} | {r['writes_per_trial_total']} | {r['requests_per_trial_total']} | "
                    f"{rw('operator')} | {rw('controller')} | {rw('trainer')} | "
                    f"{r['conflicts_per_trial'].get('operator', 0)} | "
                    f"{r['peak_rss_mib'].get('operator')} / {r['peak_rss_mib'].get('controller')} | "
                    f"{r['etcd_bytes_per_trial']} |")
    return head + "\n" + "\n".join(rows)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--strategy", nargs="+", default=["random"])
    p.add_argument("--parallel", type=int, default=10)
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--label", default="")
    p.add_argument("--workdir", default="/tmp/kubenas-bench-real")
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    if args.table:
        print(table(json.loads(RESULTS.read_text())["runs"]))
        return 0
    results = []
    for strategy in args.strategy:
        for n in args.trials:
            print(f"run: {n} trials, {strategy}, parallel {args.parallel}", flush=True)
            import shutil

            workdir = Path(args.workdir) / f"{strategy}-{n}"
            shutil.rmtree(workdir, ignore_errors=True)
            result = run_once(n, strategy, args.parallel, args.timeout, workdir)
            result["label"] = args.label
            print(json.dumps(result, indent=1), flush=True)
            results.append(result)
            _merge([result], {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": _machine(),
                             "python": platform.python_version(), "kubernetes": "v1.36.3 (hack/kube)",
                             "command": " ".join(["python"] + sys.argv)}, RESULTS)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
