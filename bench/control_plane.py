#!/usr/bin/env python
"""Control-plane cost of kubenas at scale (not part of CI).

Runs whole experiments of N trials through the real operator (kopf, in its own process)
and the real controller (its own process, started when the operator's controller
Deployment appears, with the Deployment's environment) against the emulated API server
of tests/integration (its own process), with an *instant trainer* (its own process): when
a trainer Job appears it reads the trial, patches the trial's status to Succeeded with a
reward (a hash of the architecture, so evolution has something to learn) and marks the
Job Complete. Nothing trains; what is measured is kubenas' own control plane.

Reported per run: trials per second, the latency from a trial finishing (the trainer's
Succeeded status patch reaching the API server) to the next trial's Job existing (p50,
p95), API requests per trial by component (from the emulator's request log, told apart
by User-Agent), the peak RSS (VmHWM) of the operator and of the controller processes,
and the size of the NASExperiment object (and of its status) at the end.

    .venv/bin/python bench/control_plane.py --trials 100 1000 10000
    .venv/bin/python bench/control_plane.py --trials 1000 --strategy evolution

Raw results go to bench/results/control_plane.json (one entry per run, merged by
(trials, strategy, parallel)); print the markdown table with --table.

The emulator here is tests/integration/emulator.py's RealisticEmulator with bench-only
speed-ups (BenchEmulator below): kmock looks objects up by scanning all of them and keeps
every version of every object, which at 10,000 trials (~50,000 objects) would make the
emulator, not kubenas, the bottleneck.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

NS = "research"
PYTHON = sys.executable
RESULTS = HERE / "results" / "control_plane.json"


# ============================================================================ emulator

def _component(agent: str) -> str:
    if agent.startswith("kubenas-operator") or agent.startswith("kopf"):
        return "operator"
    if agent.startswith("kubenas-controller"):
        return "controller"
    if agent.startswith("bench-trainer"):
        return "trainer"
    if agent.startswith("bench-harness"):
        return "harness"
    return "other:" + agent.split("/")[0][:40]


class _CallCounter:
    """Stands in for RealisticEmulator.calls: counts instead of keeping every request."""

    def __init__(self):
        self.counts: dict = {}

    def append(self, call) -> None:
        agent, method, path, params = call
        watch = str(params.get("watch", "")).lower() in ("true", "1")
        key = (_component(agent), "WATCH" if watch else method)
        self.counts[key] = self.counts.get(key, 0) + 1


def _fast_dispatch() -> None:
    """kmock matches every request against every reaction's filters (most of the
    emulator's time). For API resource requests the match depends only on the method and
    the action (the path filters are discovery URLs), so remember the reaction per
    (method, action). Patched in the emulator process only."""
    from kmock._internal import apps, rendering

    original = apps.RawHandler._handle
    if getattr(original, "bench_fast", False):
        return

    async def handle(self, request):
        if request.resource is None or not getattr(request.resource, "plural", None):
            return await original(self, request)  # discovery, /version, ...
        cache = self.__dict__.setdefault("_bench_dispatch", {})
        key = (request.method, request.action, request.subresource is None)
        payload = cache.get(key)
        if payload is None:
            priorities = [tuple(-p for p in payload.priorities) for payload in self._payloads]
            width = max((len(p) for p in priorities), default=0)
            order = sorted(range(len(priorities)), key=lambda i: priorities[i] + (0,) * (width - len(priorities[i])))
            for index in order:
                candidate = self._payloads[index]
                if request in candidate._source and not candidate._disabled.is_set():
                    payload = cache[key] = candidate
                    break
            else:
                return await original(self, request)
        try:
            return await payload(request)
        except (rendering.ReactionMismatchError, NotImplementedError):
            cache.pop(key, None)
            return await original(self, request)

    handle.bench_fast = True
    apps.RawHandler._handle = handle


def make_bench_emulator():
    from kmock._internal import enums
    from kmock._internal.k8s import KubernetesEmulator, KubernetesScaffold

    _fast_dispatch()

    from tests.integration.emulator import RealisticEmulator

    class BenchEmulator(RealisticEmulator):
        """RealisticEmulator with O(1) object lookups, per-resource lists, one version
        kept per object (kmock keeps them all), and timing probes."""

        def __attrs_post_init__(self) -> None:
            super().__attrs_post_init__()
            self.calls = _CallCounter()
            self.job_created: list[float] = []
            self.trial_finished: list[float] = []
            self._finished_names: set = set()
            self._index: dict = {}        # (group, version, plural, ns, name) -> kmock key
            self._by_ns: dict = {}        # (group, version, plural, ns) -> [key]
            self._by_res: dict = {}       # (group, version, plural) -> [key]
            self._resources_seen: dict = {}
            self._indexed = 0

        @staticmethod
        def _rk(res) -> tuple:
            return (res.group, res.version, res.plural)

        def _refresh(self) -> None:
            raw = self._objects._objects
            if len(raw) == self._indexed:
                return
            fresh = list(itertools.islice(reversed(raw), len(raw) - self._indexed))  # new keys are the last ones
            for key in reversed(fresh):
                res, ns, name = key
                rk = self._rk(res)
                self._index[rk + (ns, name)] = key
                self._by_ns.setdefault(rk + (ns,), []).append(key)
                self._by_res.setdefault(rk, []).append(key)
                self._resources_seen.setdefault(rk, res)
            self._indexed = len(raw)

        def _KubernetesEmulator__get_objs(self, request, strict):
            self._refresh()
            raw = self._objects._objects
            res = request.resource
            rk = self._rk(res)
            if request.name is not None and (strict or request.namespace is not None):
                key = self._index.get(rk + (request.namespace, request.name))
                return [raw[key]] if key is not None else []
            keys = self._by_res.get(rk, []) if request.namespace is None else self._by_ns.get(rk + (request.namespace,), [])
            return [raw[k] for k in keys if request.name is None or k[2] == request.name]

        def _get_resources(self):
            self._refresh()
            result = set(KubernetesScaffold._get_resources(self))
            result.update(self._resources_seen.values())
            return list(result)

        async def _collect_garbage(self) -> None:
            # The bench deletes nothing but the controller Deployment (which owns nothing
            # here); skip the full scans of the test emulator's collector.
            return

        async def _handle(self, request):
            res = request.resource
            plural = getattr(res, "plural", None)
            data = request.data if isinstance(request.data, dict) else None
            response = await super()._handle(request)
            now = time.monotonic()
            if res is None or plural is None:
                return response
            if request.action == enums.action.CREATE and data is not None and getattr(response, "status", 200) < 300:
                name = (data.get("metadata") or {}).get("name")
                if plural == "jobs":
                    self.job_created.append(now)
                self._refresh()
                key = self._index.get(self._rk(res) + (request.namespace or (data.get("metadata") or {}).get("namespace"), name))
                self._trim(key)
            elif request.action == enums.action.UPDATE and request.name and getattr(response, "status", 200) < 300:
                if (plural == "nastrials" and request.subresource == "status" and data is not None
                        and (data.get("status") or {}).get("phase") == "Succeeded"
                        and request.name not in self._finished_names):
                    self._finished_names.add(request.name)
                    self.trial_finished.append(now)
                self._refresh()
                self._trim(self._index.get(self._rk(res) + (request.namespace, request.name)))
            return response

        def _trim(self, key) -> None:
            if key is None:
                return
            obj = self._objects._objects.get(key)
            history = getattr(obj, "_Object__history", None)
            if history is not None and len(history) > 1:
                del history[:-1]

        def summary(self) -> dict:
            counts: dict = {}
            for (component, method), n in self.calls.counts.items():
                counts.setdefault(component, {})[method] = n
            experiments = [o.raw for (r, _ns, _n), o in self._objects._objects.items()
                           if r.plural == "nasexperiments" and not o.deleted]
            return {"requests": counts, "job_created": self.job_created, "trial_finished": self.trial_finished,
                    "experiments": experiments, "objects": len(self._objects._objects),
                    "vmhwm_kib": _vm("self", "VmHWM")}

    return BenchEmulator


async def _serve_emulator(workdir: Path) -> None:
    import kmock

    profile = None
    if os.environ.get("BENCH_PROFILE_EMULATOR"):  # where the emulator spends its time
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    emu = make_bench_emulator()()
    async with emu, kmock.Server(emu) as server:
        (workdir / "url.tmp").write_text(str(server.url).rstrip("/"))
        os.replace(workdir / "url.tmp", workdir / "url")
        while not (workdir / "stop").exists():
            if (workdir / "snapshot").exists():  # the harness asks for the request counts so far
                (workdir / "counts.tmp").write_text(json.dumps(emu.summary()["requests"]))
                os.replace(workdir / "counts.tmp", workdir / "counts.json")
                (workdir / "snapshot").unlink()
            await asyncio.sleep(0.2)
        if profile is not None:
            profile.disable()
            profile.dump_stats(str(workdir / "emulator.prof"))
        (workdir / "emulator.json").write_text(json.dumps(emu.summary()))
        os._exit(0)  # open watch streams would hold up a graceful shutdown


# ============================================================== operator, controller, trainer

def _use(url: str, agent: str | None = None):
    from kubernetes import client as k8s

    from kubenas.cluster import kube

    conf = k8s.Configuration(host=url)
    kube.use_config(conf)
    if agent:
        api = k8s.ApiClient(conf)
        api.user_agent = agent
        return api
    return None


def _quiet(verbose: bool = False) -> None:
    import logging

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("kopf", "aiohttp", "kubernetes", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _run_operator(url: str) -> None:
    from kubenas.operator.main import operator, options_from_env

    _quiet()
    _use(url)
    stop = asyncio.Event()
    trace = os.environ.get("BENCH_TRACEMALLOC")  # a file: where the operator's memory goes
    if trace:
        import tracemalloc

        tracemalloc.start(8)

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await operator(options_from_env(), stop_flag=stop)

    asyncio.run(main())
    if trace:
        _dump_allocations(Path(trace))


def _dump_allocations(path: Path) -> None:
    import gc
    import tracemalloc

    gc.collect()
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    lines = [f"traced now: {tracemalloc.get_traced_memory()[0] / 2**20:.1f} MiB, "
             f"peak {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB", "", "by line:"]
    lines += [str(s) for s in snapshot.statistics("lineno")[:40]]
    lines += ["", "by traceback:"]
    for stat in snapshot.statistics("traceback")[:15]:
        lines.append(f"{stat.size / 2**20:.2f} MiB in {stat.count} blocks")
        lines += ["    " + line for line in stat.traceback.format()]
    path.write_text("\n".join(lines) + "\n")


def _run_controller(url: str, namespace: str, experiment: str) -> None:
    from kubenas.controller.main import run

    _quiet()
    _use(url)
    sys.exit(run(namespace, experiment))


def reward_of(architecture: dict) -> float:
    """A deterministic pseudo-reward in [0.5, 1) from the architecture (no training)."""
    return 0.5 + (zlib.crc32(json.dumps(architecture, sort_keys=True).encode()) % 5000) / 10000


def _run_trainer(url: str) -> None:
    """Instant trainer: for each new trainer Job, report Succeeded and complete the Job."""
    from kubernetes import client as k8s
    from kubernetes import watch

    _quiet()
    api = _use(url, "bench-trainer/0")
    custom, batch = k8s.CustomObjectsApi(api), k8s.BatchV1Api(api)
    done: set = set()
    selector = "app.kubernetes.io/managed-by=kubenas-operator,app.kubernetes.io/component=trainer"
    while True:
        try:
            stream = watch.Watch().stream(batch.list_namespaced_job, NS, label_selector=selector)
            for event in stream:
                job = event["object"]
                name = job.metadata.name
                if event["type"] != "ADDED" or name in done:
                    continue
                done.add(name)
                _finish(custom, batch, name)
        except Exception as err:  # noqa: BLE001 - keep the fake kubelet alive
            print(f"trainer: {err!r}", file=sys.stderr)
            time.sleep(0.5)


def _finish(custom, batch, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        trial = custom.get_namespaced_custom_object("kubenas.io", "v1alpha1", NS, "nastrials", name)
    except ApiException as err:
        if err.status == 404:
            return
        raise
    reward = reward_of((trial.get("spec") or {}).get("architecture") or {})
    history = [{"epoch": e, "accuracy": round(reward * e / 3, 4), "loss": round(1 - reward * e / 3, 4), "seconds": 0.01}
               for e in (1, 2, 3)]
    status = {"phase": "Succeeded", "reward": reward, "startTime": now, "completionTime": now,
              "metrics": {"accuracy": reward, "loss": 1 - reward, "parameters": 56000},
              "history": history, "device": "cpu"}
    custom.patch_namespaced_custom_object_status("kubenas.io", "v1alpha1", NS, "nastrials", name, {"status": status})
    batch.patch_namespaced_job_status(name, NS, {"status": {
        "active": 0, "succeeded": 1, "startTime": now, "completionTime": now,
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}})


# ========================================================================== orchestrator

def _vm(pid, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _cpu_seconds(pid) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def experiment_body(name: str, trials: int, parallel: int, strategy: str) -> dict:
    strategy_spec = {"type": strategy, "seed": 7}
    return {
        "apiVersion": "kubenas.io/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "objective": {"metric": "accuracy", "goal": "maximize"},
            # 16^6 x 4 candidates: far more than 10,000, so no proposal has to hunt for an unseen one.
            "searchSpace": {"type": "chain",
                            "chain": {"layers": 6, "filters": [8, 16, 32, 64], "kernelSizes": [3, 5],
                                      "strides": [1, 2]},
                            "hyperparameters": [{"name": "learningRate", "type": "logUniform",
                                                 "min": 0.01, "max": 0.1, "grid": 4}]},
            "strategy": strategy_spec,
            "budget": {"maxTrials": trials, "parallelTrials": parallel, "maxFailedTrials": trials,
                       "trialTimeoutSeconds": 3600},
            "trial": {"dataset": {"name": "digits"}, "training": {"epochs": 3, "batchSize": 64},
                      "template": {"image": "ghcr.io/kubenas/kubenas-trainer:bench"}},
        },
    }


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


class Run:
    def __init__(self, trials: int, strategy: str, parallel: int, timeout: float, workdir: Path,
                 poll_seconds: float | None, watch_seconds: float = 120, restart_operator: bool = False):
        self.trials, self.strategy, self.parallel, self.timeout = trials, strategy, parallel, timeout
        self.watch_seconds = watch_seconds
        self.restart_operator = restart_operator
        self.restart: dict | None = None
        self.workdir = workdir
        self.poll_seconds = poll_seconds
        self.procs: dict[str, subprocess.Popen] = {}
        self.peak: dict[str, int] = {}
        self.cpu: dict[str, float] = {}

    def _spawn(self, role: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{role}.log", "w")
        proc = subprocess.Popen([PYTHON, str(Path(__file__).resolve()), "--role", role, *args],
                                stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
        self.procs[role] = proc
        return proc

    def _sample(self) -> None:
        for role, proc in self.procs.items():
            if proc.poll() is None:
                cpu = _cpu_seconds(proc.pid)
                if cpu is not None:
                    self.cpu[role] = cpu
        for role in ("operator", "controller"):
            proc = self.procs.get(role)
            if proc is not None and proc.poll() is None:
                hwm = _vm(proc.pid, "VmHWM")
                if hwm:
                    self.peak[role] = max(self.peak.get(role, 0), hwm)

    def execute(self) -> dict:
        from kubernetes import client as k8s

        self.workdir.mkdir(parents=True, exist_ok=True)
        for f in ("url", "stop", "emulator.json"):
            (self.workdir / f).unlink(missing_ok=True)
        self._spawn("emulator", "--workdir", str(self.workdir))
        deadline = time.monotonic() + 60
        while not (self.workdir / "url").exists():
            if time.monotonic() > deadline or self.procs["emulator"].poll() is not None:
                raise RuntimeError("the emulator did not start; see " + str(self.workdir / "emulator.log"))
            time.sleep(0.1)
        url = (self.workdir / "url").read_text()
        conf = k8s.Configuration(host=url)
        api = k8s.ApiClient(conf)
        api.user_agent = "bench-harness/0"
        custom, apps = k8s.CustomObjectsApi(api), k8s.AppsV1Api(api)
        env = {"KUBENAS_CONTROLLER_POLL_SECONDS": str(self.poll_seconds)} if self.poll_seconds else {}
        env["KUBENAS_WATCH_SECONDS"] = str(self.watch_seconds)
        self._spawn("trainer", "--url", url)
        self._spawn("operator", "--url", url, env=env)
        name = f"bench-{self.strategy}-{self.trials}"
        time.sleep(2.0)  # let kopf list and start watching
        start = time.monotonic()
        custom.create_namespaced_custom_object("kubenas.io", "v1alpha1", NS, "nasexperiments",
                                               experiment_body(name, self.trials, self.parallel, self.strategy))
        phase, last_print = None, 0.0
        controller_started = None
        while True:
            now = time.monotonic()
            if now - start > self.timeout:
                phase = "Timeout"
                break
            for role, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{role} exited ({proc.returncode}); see {self.workdir / (role + '.log')}")
            if "controller" not in self.procs:
                deps = apps.list_namespaced_deployment(NS, _preload_content=False)
                items = json.loads(deps.data).get("items") or []
                if items:  # the fake kubelet: run the controller pod with the Deployment's env
                    container = items[0]["spec"]["template"]["spec"]["containers"][0]
                    # Its own process is not its own pod: drop the metrics port (it would clash
                    # with the operator's on this one network namespace).
                    dep_env = {e["name"]: str(e.get("value", "")) for e in container.get("env") or []
                               if "value" in e and not e["name"].endswith("METRICS_PORT")}
                    cmd = container.get("command", []) + container.get("args", [])
                    assert cmd[cmd.index("--experiment") + 1] == name
                    self._spawn("controller", "--url", url, "--namespace", NS, "--experiment", name, env=dep_env)
                    controller_started = now
            self._sample()
            exp = custom.get_namespaced_custom_object("kubenas.io", "v1alpha1", NS, "nasexperiments", name)
            status = exp.get("status") or {}
            phase = status.get("phase")
            if now - last_print > 10:
                last_print = now
                print(f"  [{self.strategy} {self.trials}] {now - start:6.0f}s phase={phase} "
                      f"trials={status.get('trials')} peak={self.peak}", flush=True)
            if phase in ("Succeeded", "Failed", "Stopped"):
                break
            time.sleep(0.5)
        wall = time.monotonic() - start
        time.sleep(1.5)  # let the last status fold land
        self._sample()
        exp = custom.get_namespaced_custom_object("kubenas.io", "v1alpha1", NS, "nasexperiments", name)
        self.restart = self._restart_operator(url, env) if self.restart_operator else None
        (self.workdir / "stop").write_text("")
        deadline = time.monotonic() + 60
        while not (self.workdir / "emulator.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        emu = json.loads((self.workdir / "emulator.json").read_text())
        self.stop()
        return self._result(name, phase, wall, exp, emu, controller_started is not None)

    def _counts(self) -> dict:
        """The emulator's request counts so far, by component and method."""
        (self.workdir / "counts.json").unlink(missing_ok=True)
        (self.workdir / "snapshot").write_text("")
        deadline = time.monotonic() + 60
        while not (self.workdir / "counts.json").exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator did not report its request counts")
            time.sleep(0.1)
        return json.loads((self.workdir / "counts.json").read_text())

    def _restart_operator(self, url: str, env: dict) -> dict:
        """Restart the operator on the finished experiment: kopf lists every trial and Job
        again and runs the handlers on each. Reports the new operator's requests, peak
        RSS and how long until it is idle (no request and no CPU for 5 s)."""
        before = self._counts().get("operator", {})
        old = self.procs.pop("operator")
        old.terminate()
        old.wait(60)
        started = time.monotonic()
        proc = self._spawn("operator", "--url", url, env=env)
        peak, quiet_since, last = 0, None, None
        while time.monotonic() - started < 600:
            time.sleep(1.0)
            peak = max(peak, _vm(proc.pid, "VmHWM") or 0)
            now = (json.dumps(self._counts().get("operator", {}), sort_keys=True), _cpu_seconds(proc.pid))
            if last is not None and now[0] == last[0] and (now[1] or 0) - (last[1] or 0) < 0.05:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= 5:
                    break
            else:
                quiet_since = None
            last = now
        after = self._counts().get("operator", {})
        requests = {m: after.get(m, 0) - before.get(m, 0) for m in after if after.get(m, 0) != before.get(m, 0)}
        return {"requests": requests, "peak_rss_mib": round(peak / 1024, 1),
                "seconds_to_idle": round((quiet_since or time.monotonic()) - started, 1),
                "cpu_seconds": _cpu_seconds(proc.pid)}

    def stop(self) -> None:
        emulator = self.procs.get("emulator")
        if emulator is not None and (self.workdir / "stop").exists():
            try:
                emulator.wait(30)  # it exits by itself once it has written its summary
            except subprocess.TimeoutExpired:
                pass
        for role, proc in self.procs.items():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _result(self, name, phase, wall, exp, emu, controller_ran) -> dict:
        jobs, finished = sorted(emu["job_created"]), sorted(emu["trial_finished"])
        p = self.parallel
        latency = [jobs[p + k] - finished[k] for k in range(len(finished)) if p + k < len(jobs)]
        span = (finished[-1] - jobs[0]) if finished and jobs else None
        requests = emu["requests"]
        per_trial = {c: round(sum(m.values()) / self.trials, 2) for c, m in requests.items()}
        status = exp.get("status") or {}
        return {
            "trials": self.trials, "strategy": self.strategy, "parallel": self.parallel,
            "watch_seconds": self.watch_seconds,
            "phase": phase, "wall_seconds": round(wall, 1),
            "trials_finished": len(finished), "jobs_created": len(jobs),
            "trials_per_second": round(len(finished) / span, 2) if span else None,
            "finish_to_next_job_ms": {"p50": _ms(_percentile(latency, 0.5)), "p95": _ms(_percentile(latency, 0.95)),
                                      "max": _ms(max(latency) if latency else None), "n": len(latency)},
            "requests": requests, "requests_per_trial": per_trial,
            "peak_rss_mib": {k: round(v / 1024, 1) for k, v in self.peak.items()},
            "cpu_seconds": {k: round(v, 1) for k, v in self.cpu.items()},
            "emulator_peak_rss_mib": round((emu.get("vmhwm_kib") or 0) / 1024, 1),
            "experiment_bytes": len(json.dumps(exp, separators=(",", ":"))),
            "experiment_status_bytes": len(json.dumps(status, separators=(",", ":"))),
            "status_trials": status.get("trials"),
            "best_reward": (status.get("bestTrial") or {}).get("reward"),
            "emulator_objects": emu.get("objects"),
            "controller_ran": controller_ran,
            "operator_restart": self.restart,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _merge(results: list[dict], meta: dict, path: Path = RESULTS) -> dict:
    """Store runs in ``path``, replacing those of the same (trials, strategy, parallel, label)."""
    data = {"runs": []}
    if path.exists():
        try:
            data = json.loads(path.read_text())
        except ValueError:
            pass
    key = lambda r: (r["trials"], r["strategy"], r["parallel"], r.get("label", ""))  # noqa: E731
    fresh = {key(r) for r in results}
    data["runs"] = [r for r in data.get("runs", []) if key(r) not in fresh] + results
    data["runs"].sort(key=lambda r: (r.get("label", ""), r["strategy"], r["trials"]))
    data["meta"] = meta
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def table(runs: list[dict]) -> str:
    head = ("| trials | strategy | label | wall (s) | trials/s | finish→next Job p50 / p95 (ms) | requests/trial "
            "(operator / controller / trainer) | operator peak RSS (MiB) | controller peak RSS (MiB) | "
            "experiment object (bytes) | status (bytes) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in runs:
        rpt = r["requests_per_trial"]
        lat = r["finish_to_next_job_ms"]
        rows.append(f"| {r['trials']:,} | {r['strategy']} | {r.get('label', '')} | {r['wall_seconds']} | "
                    f"{r['trials_per_second']} | {lat['p50']} / {lat['p95']} | "
                    f"{rpt.get('operator')} / {rpt.get('controller')} / {rpt.get('trainer')} | "
                    f"{r['peak_rss_mib'].get('operator')} | {r['peak_rss_mib'].get('controller')} | "
                    f"{r['experiment_bytes']:,} | {r['experiment_status_bytes']:,} |")
    return head + "\n" + "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--strategy", nargs="+", default=["random"])
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=1800, help="per run (seconds)")
    parser.add_argument("--poll-seconds", type=float, default=None,
                        help="KUBENAS_CONTROLLER_POLL_SECONDS for the operator (default: the product default)")
    parser.add_argument("--watch-seconds", type=float, default=120,
                        help="KUBENAS_WATCH_SECONDS for the operator: kopf lists every object again after each "
                             "watch ends, so a short one makes long runs go through several re-lists")
    parser.add_argument("--restart-operator", action="store_true",
                        help="after each run, restart the operator on the finished experiment and measure its "
                             "re-list (requests, peak RSS, time until idle)")
    parser.add_argument("--label", default="", help="tag stored with the runs (e.g. 'before')")
    parser.add_argument("--workdir", default="/tmp/kubenas-bench-cp")
    parser.add_argument("--table", action="store_true", help="print the table of stored results and exit")
    parser.add_argument("--role", choices=["emulator", "operator", "controller", "trainer"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.role == "emulator":
        asyncio.run(_serve_emulator(Path(args.workdir)))
        return 0
    if args.role == "operator":
        _run_operator(args.url)
        return 0
    if args.role == "controller":
        _run_controller(args.url, args.namespace, args.experiment)
        return 0
    if args.role == "trainer":
        _run_trainer(args.url)
        return 0
    if args.table:
        print(table(json.loads(RESULTS.read_text())["runs"]))
        return 0

    results = []
    for strategy in args.strategy:
        for n in args.trials:
            print(f"run: {n} trials, {strategy}, parallel {args.parallel}", flush=True)
            run = Run(n, strategy, args.parallel, args.timeout, Path(args.workdir) / f"{strategy}-{n}",
                      args.poll_seconds, args.watch_seconds, args.restart_operator)
            try:
                result = run.execute()
            finally:
                run.stop()
            result["label"] = args.label
            print(json.dumps(result, indent=1), flush=True)
            results.append(result)
            meta = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": _machine(),
                    "python": platform.python_version(), "command": " ".join(["python"] + sys.argv)}
            _merge([result], meta)
    print(table(results))
    return 0


def _machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPU {cpu}, {platform.system()} {platform.release()}"


if __name__ == "__main__":
    sys.exit(main())
