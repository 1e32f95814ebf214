"""An in-process cluster for integration tests: the emulated API server, the real
operator (kopf) and controller, and fakes for what kube-controller-manager and the
kubelet would do (run a controller pod per Deployment, run a trainer per Job).

The fake trainer goes through the real ``kubenas-train --from-cluster`` code path
(``kubenas_trainer.reporting.cluster.main_from_cluster``) with a scripted ``run_trial``, so trial status is
patched through the API exactly as in a cluster.
"""
from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import kmock
from kubernetes import client as k8s

from kubenas.contract import FINAL_EXIT_CODES
from kubenas.controller.main import Controller
from kubenas.cluster import kube
from kubenas.operator.handlers import Options
from kubenas.operator.main import operator as run_operator
from kubenas.operator.manifests import Settings

from tests.waiting import wait_for  # noqa: F401 - the tests here import it from this module

from .emulator import RealisticEmulator

NS = "research"
TRAINER_RETRY_DELAY = 0.01  # the trainers' first backoff on a transient API error (1 s in a pod)


@dataclass
class Script:
    """What one fake trainer does."""

    values: list = field(default_factory=lambda: [0.5, 0.7, 0.8])  # per-epoch accuracy
    status: str = "Succeeded"     # result status
    reason: str | None = None
    report: bool = True           # False: exit 0 without touching the trial (NoReward)
    oom: bool = False             # killed by the kernel, no report (OOMKilled)
    epoch_seconds: float = 0.0
    evictions: int = 0            # pods evicted (spot reclaim, drain) before one runs the trainer
    curve: Callable[[dict], list] | None = None  # per-epoch accuracy from the trial spec (instead of values)
    message: str | None = None    # the failure's message (status Failed)
    command: list | None = None   # run this user program under the real wrapper (spec.trial.command) instead
    extra: Callable[[dict], dict] | None = None  # more result fields from the trial (a one-shot score trial's scores)


def default_script(index: int) -> Script:
    return Script(values=[0.3 + 0.01 * index, 0.5 + 0.02 * index, 0.6 + 0.03 * index])


def final_rewards(rewards: dict[int, float]) -> Callable[[int], Script]:
    """The default script, but trials ``rewards`` names end at the reward given."""
    def script(index: int) -> Script:
        if index in rewards:
            return Script(values=[0.3, 0.4, rewards[index]])
        return default_script(index)
    return script


def client(conf: k8s.Configuration, agent: str) -> k8s.ApiClient:
    api = k8s.ApiClient(conf)
    api.user_agent = agent
    return api


@contextlib.asynccontextmanager
async def running(emulator: RealisticEmulator, **options):
    """A started FakeCluster on ``emulator`` (``options`` as FakeCluster takes them), closed
    afterwards; errors its threads or the operator kept fail the test."""
    cluster = FakeCluster(emulator, emulator.conf, **options)
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors


class FakeCluster:
    def __init__(self, emulator: RealisticEmulator, conf: k8s.Configuration, *,
                 script: Callable[[int], Script] = default_script, poll: float = 0.1,
                 operator_options: Options | None = None):
        self.emulator = emulator
        self.conf = conf
        self.script = script
        self.poll = poll
        self.admin = client(conf, "kubenas-tests")
        self.custom = k8s.CustomObjectsApi(self.admin)
        self.core = k8s.CoreV1Api(self.admin)
        self.batch = k8s.BatchV1Api(self.admin)
        self.apps = k8s.AppsV1Api(self.admin)
        self.stop = threading.Event()
        self.controllers: dict[tuple, tuple[threading.Thread, threading.Event, Controller]] = {}
        self.controller_incarnations: list[Controller] = []
        self.pods: dict[str, threading.Thread] = {}
        self.kubelet_paused = threading.Event()
        self.errors: list[BaseException] = []
        self.options = operator_options or Options(
            settings=Settings(controller_poll_seconds=0.2), resync_seconds=2.0, debounce_seconds=0.1)
        self._op_task: asyncio.Task | None = None
        self._op_stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop, name="fake-kcm", daemon=True)

    # ------------------------------------------------------------------- lifecycle

    async def start(self, operator: bool = True) -> None:
        self._thread.start()
        if operator:
            await self.start_operator()

    async def close(self) -> None:
        await self.stop_operator()
        self.stop.set()
        for _, (thread, stop, _) in list(self.controllers.items()):
            stop.set()
            thread.join(5)
        for thread in list(self.pods.values()):
            thread.join(5)
        self._thread.join(5)

    async def start_operator(self) -> None:
        self._op_stop = asyncio.Event()
        ready = asyncio.Event()
        self._op_task = asyncio.create_task(run_operator(self.options, stop_flag=self._op_stop, ready_flag=ready,
                                                         foreign_task=_server_task))
        await asyncio.wait_for(ready.wait(), 20)

    async def stop_operator(self) -> None:
        """Stop the operator abruptly-enough: its in-memory state is lost."""
        if self._op_task is None:
            return
        self._op_stop.set()
        try:
            await asyncio.wait_for(self._op_task, 20)
        except asyncio.TimeoutError:
            self._op_task.cancel()
        except asyncio.CancelledError:
            pass  # kopf finishes by cancelling its own tasks
        self._op_task = None

    # ---------------------------------------------------------------- API helpers

    # Called from the test's event loop, which also serves the emulated API: every
    # blocking API call goes to a thread.

    async def create_experiment(self, body: dict) -> dict:
        return await asyncio.to_thread(self.custom.create_namespaced_custom_object,
                                       "kubenas.io", "v1alpha1", NS, "nasexperiments", body)

    async def patch_experiment(self, name: str, patch: dict) -> dict:
        return await asyncio.to_thread(self.custom.patch_namespaced_custom_object,
                                       "kubenas.io", "v1alpha1", NS, "nasexperiments", name, patch)

    async def delete_experiment(self, name: str) -> None:
        await asyncio.to_thread(self.custom.delete_namespaced_custom_object,
                                "kubenas.io", "v1alpha1", NS, "nasexperiments", name)

    def experiment(self, name: str) -> dict | None:
        """In-memory read (no HTTP): safe from the event loop."""
        found = [o for o in self.objects("nasexperiments") if o["metadata"]["name"] == name]
        return found[0] if found else None

    def status(self, name: str) -> dict:
        """Experiment ``name``'s status ({} while it has none, or no such experiment)."""
        return (self.experiment(name) or {}).get("status") or {}

    def trials(self, experiment: str | None = None) -> list[dict]:
        return [t for t in self.objects("nastrials") if experiment is None or t["spec"]["experiment"] == experiment]

    def objects(self, plural: str) -> list[dict]:
        return [copy.deepcopy(o.raw) for (res, _ns, _n), o in list(self.emulator.objects.items())
                if res.plural == plural and not o.deleted]

    def events(self) -> list[dict]:
        return self.objects("events")

    # ------------------------------------------------------- fake kube-controller-manager

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self._sync_controllers()
                if not self.kubelet_paused.is_set():
                    self._sync_jobs()
            except Exception as err:  # noqa: BLE001
                self.errors.append(err)
            self.stop.wait(self.poll)

    def _sync_controllers(self) -> None:
        deployments = self.apps.list_namespaced_deployment(NS, _preload_content=False)
        present = set()
        for dep in json.loads(deployments.data)["items"]:
            cmd = dep["spec"]["template"]["spec"]["containers"][0]["command"]
            key = (cmd[cmd.index("--namespace") + 1], cmd[cmd.index("--experiment") + 1])
            present.add(key)
            if key not in self.controllers:
                self._start_controller(key)
        for key in list(self.controllers):
            if key not in present:
                self.kill_controller(*key, restart=False)

    def _start_controller(self, key) -> None:
        stop = threading.Event()
        ctl = Controller(key[0], key[1], kube=kube.Kube("controller", client(self.conf, "kubenas-controller/test")),
                         poll_seconds=0.2)
        thread = threading.Thread(target=ctl.run, args=(stop,), name=f"controller-{key[1]}", daemon=True)
        self.controllers[key] = (thread, stop, ctl)
        self.controller_incarnations.append(ctl)
        thread.start()

    def kill_controller(self, namespace: str, name: str, restart: bool = True) -> None:
        entry = self.controllers.pop((namespace, name), None)
        if entry:
            entry[1].set()
            entry[0].join(10)

    def _sync_jobs(self) -> None:
        jobs = json.loads(self.batch.list_namespaced_job(NS, _preload_content=False).data)["items"]
        for job in jobs:
            name = job["metadata"]["name"]
            if name in self.pods or job["spec"].get("suspend"):
                continue
            thread = threading.Thread(target=self._run_pod, args=(job,), name=f"pod-{name}", daemon=True)
            self.pods[name] = thread
            thread.start()

    def _job_exists(self, name: str) -> bool:
        try:
            self.batch.read_namespaced_job(name, NS, _preload_content=False)
            return True
        except k8s.ApiException as err:
            if err.status == 404:
                return False
            raise

    def _run_pod(self, job: dict) -> None:
        try:
            self._run_pod_inner(job)
        except Exception as err:  # noqa: BLE001
            self.errors.append(err)

    def _run_pod_inner(self, job: dict) -> None:
        from kubenas_trainer import errors as trainer_errors
        from kubenas_trainer.reporting.cluster import main_from_cluster

        name = job["metadata"]["name"]
        env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        index = int(job["metadata"]["labels"]["kubenas.io/trial-index"])
        script = self.script(index)
        self.batch.patch_namespaced_job_status(name, NS, {"status": {"active": 1, "startTime": _now()}})
        for attempt in range(script.evictions):
            if not self._evict_pod(job, attempt):
                return
        killed = threading.Event()

        def fake_run(trial, on_epoch=None, model_path=None, checkpoint_path=None):
            history = []
            values = script.curve(trial) if script.curve else script.values
            for epoch, value in enumerate(values, start=1):
                if not self._job_exists(name):
                    killed.set()
                    raise SystemExit  # the pod was deleted with its Job
                record = {"epoch": epoch, "accuracy": value, "loss": 1 - value, "seconds": 0.01}
                history.append(record)
                if on_epoch and on_epoch(record) == "stop":
                    return {"status": "EarlyStopped", "reward": value, "reason": None, "message": "stopped",
                            "metrics": {"accuracy": value}, "history": history, "device": "cpu"}
                time.sleep(script.epoch_seconds)
            if script.status != "Succeeded":
                return {"status": "Failed", "reward": None, "reason": script.reason or "InternalError",
                        "message": script.message or f"scripted failure ({script.reason})", "metrics": {},
                        "history": history, "device": "cpu"}
            reward = values[-1]
            return {"status": "Succeeded", "reward": reward, "reason": None, "message": "",
                    "metrics": {"accuracy": reward, "loss": 1 - reward, "parameters": 1000 + index},
                    "history": history, "device": "cpu", **(script.extra(trial) if script.extra else {})}

        termination = ""
        terminated_reason = None
        if script.oom:
            code, terminated_reason = 137, "OOMKilled"
        elif not script.report:
            code = 0
        else:
            log_path = f"/tmp/kubenas-termination-{threading.get_ident()}-{name}"
            pod_env = {"POD_NAMESPACE": NS, "KUBENAS_TRIAL": env["KUBENAS_TRIAL"],
                       "KUBENAS_REPORT_INTERVAL_SECONDS": "0"}
            run = fake_run
            if script.command:
                from kubenas_trainer.reporting.wrapper import run_command

                def run(trial, on_epoch=None, model_path=None, checkpoint_path=None):
                    return run_command(script.command, trial, on_epoch=on_epoch,
                                       workdir=Path(tempfile.mkdtemp(prefix=f"kubenas-{name}-")))
            try:
                code = main_from_cluster(env=pod_env, api_client=client(self.conf, "kubenas-trainer/test"),
                                         termination_log=log_path, run=run, retry_delay=TRAINER_RETRY_DELAY)
            except SystemExit:
                return
            try:
                with open(log_path) as f:
                    termination = f.read()
            except OSError:
                pass
        if killed.is_set() or not self._job_exists(name):
            return
        self._finish_job(job, code, termination, terminated_reason)

    def _evict_pod(self, job: dict, attempt: int) -> bool:
        """What the Job controller does when its pod is evicted (pod condition
        DisruptionTarget, counted against backoffLimit): replace it, or fail the Job.
        Returns whether the Job goes on."""
        name = job["metadata"]["name"]
        now = _now()
        self.core.create_namespaced_pod(NS, _job_pod(job, f"ev{attempt}", {
            "phase": "Failed", "reason": "Evicted", "message": "The node was low on resource: memory.",
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                            "lastTransitionTime": now}]}))
        failed = attempt + 1
        if failed > int(job["spec"].get("backoffLimit", 6)):
            status = {"active": 0, "failed": failed, "conditions": [{
                "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit", "lastTransitionTime": now}]}
            self.batch.patch_namespaced_job_status(name, NS, {"status": status})
            return False
        self.batch.patch_namespaced_job_status(name, NS, {"status": {"active": 1, "failed": failed}})
        time.sleep(0.5)  # the replacement pod starts a moment later
        return True

    def _finish_job(self, job: dict, code: int, termination: str, terminated_reason: str | None) -> None:
        name = job["metadata"]["name"]
        pod = _job_pod(job, "abcde", {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": [{
            "name": "trainer", "ready": False, "restartCount": 0, "image": "x", "imageID": "x",
            "state": {"terminated": {"exitCode": code, "reason": terminated_reason or ("Completed" if code == 0 else "Error"),
                                     "message": termination}}}]})
        self.core.create_namespaced_pod(NS, pod)
        now = _now()
        if code == 0:
            status = {"active": 0, "succeeded": 1, "completionTime": now,
                      "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": now}]}
        else:
            reason = "PodFailurePolicy" if code in FINAL_EXIT_CODES else "BackoffLimitExceeded"
            status = {"active": 0, "failed": 1,
                      "conditions": [{"type": "Failed", "status": "True", "reason": reason,
                                      "message": f"pod failed with exit code {code}", "lastTransitionTime": now}]}
        try:
            self.batch.patch_namespaced_job_status(name, NS, {"status": status})
        except k8s.ApiException as err:
            if err.status != 404:
                raise


def _server_task(task: asyncio.Task) -> bool:
    """Tasks of the in-process API server (aiohttp/kmock) or of the test itself."""
    code = getattr(task.get_coro(), "cr_code", None)
    filename = code.co_filename if code else ""
    return any(part in filename for part in ("aiohttp", "kmock", "/tests/", "pytest_asyncio", "asyncio/"))


def _job_pod(job: dict, suffix: str, status: dict) -> dict:
    """A pod of ``job`` (named <job>-<suffix>, labelled and owned as the Job controller
    makes it) in ``status``."""
    name = job["metadata"]["name"]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-{suffix}", "namespace": NS,
                     "labels": {"job-name": name, **job["spec"]["template"]["metadata"]["labels"]},
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                                          "uid": job["metadata"]["uid"], "controller": True}]},
        "spec": copy.deepcopy(job["spec"]["template"]["spec"]),
        "status": status,
    }


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def digits_experiment(name: str = "digits", **budget) -> dict:
    spec_budget = {"maxTrials": 6, "parallelTrials": 2, "maxFailedTrials": 2, "trialTimeoutSeconds": 300}
    spec_budget.update(budget)
    return {
        "apiVersion": "kubenas.io/v1alpha1",
        "kind": "NASExperiment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "objective": {"metric": "accuracy", "goal": "maximize"},
            "searchSpace": {"type": "chain",
                            "chain": {"layers": 3, "filters": [8, 16], "kernelSizes": [3], "strides": [1, 2]},
                            "hyperparameters": [{"name": "learningRate", "type": "logUniform",
                                                 "min": 0.01, "max": 0.1, "grid": 4}]},
            "strategy": {"type": "random", "seed": 3},
            "budget": spec_budget,
            "trial": {"dataset": {"name": "digits"}, "training": {"epochs": 3, "batchSize": 64},
                      "template": {"image": "ghcr.io/kubenas/kubenas-trainer:test",
                                   "resources": {"limits": {"nvidia.com/gpu": 1}}}},
        },
    }
