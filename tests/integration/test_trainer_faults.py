"""What a trial pod's process does to its trial and experiment on the emulated cluster, when
things go wrong: a user program's own exit codes and NaNs (under the real wrapper), an API
server that answers 503 (injected), failures every trial would repeat, and no success at all."""
from __future__ import annotations

import asyncio
import json
import sys

from kubenas.contract import EXIT_TABLE, FINAL_EXIT_CODES
from kubenas.api.defaults import with_defaults
from kubenas.operator.manifests import job_for_trial
from kubenas.operator.trial_state import pod_failure
from kubenas_trainer.reporting.cluster import RETRIES, main_from_cluster

from .cluster import (NS, TRAINER_RETRY_DELAY, FakeCluster, Script, client,
                       default_script, digits_experiment, running, wait_for)

NO_CUDA = "training.device: cuda requested but no CUDA device is available here; set training.device: auto (or cpu)"


def complete(cluster, name):
    return next(c for c in cluster.status(name)["conditions"] if c["type"] == "Complete")


def program(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def test_a_program_exiting_7_counts_against_max_failed_trials(emulator):
    async with running(emulator, script=lambda i: Script(command=program("raise SystemExit(7)"))) as cluster:
        await cluster.create_experiment(digits_experiment("seven", maxTrials=4, parallelTrials=1, maxFailedTrials=1))
        await wait_for(lambda: cluster.status("seven").get("phase") in ("Failed", "Succeeded"), 60, "the end")
        assert (cluster.status("seven")["phase"], complete(cluster, "seven")["reason"]) == \
            ("Failed", "TooManyFailedTrials")
        trials = cluster.trials("seven")
        assert len(trials) == 2 and all(t["status"]["reason"] == "InternalError" for t in trials)
        assert "exited with code 7" in trials[0]["status"]["message"]
        # The container exited with the wrapper's code for InternalError, never the program's 7.
        codes = {cs["state"]["terminated"]["exitCode"] for p in cluster.objects("pods")
                 for cs in p["status"]["containerStatuses"]}
        assert codes == {1}


async def test_a_nan_reported_mid_run_ends_the_trial_diverged(emulator):
    code = ("from kubenas import report\nreport.report(epoch=1, accuracy=0.5)\n"
            "report.report(epoch=2, accuracy=float('nan'))\nreport.report(epoch=3, accuracy=0.9)")
    cluster = FakeCluster(emulator, emulator.conf,
                          script=lambda i: Script(command=program(code)) if i == 0 else default_script(i))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("nan", maxTrials=2, parallelTrials=1))
        await wait_for(lambda: cluster.status("nan").get("phase") == "Succeeded", 60, "Succeeded")
        first = next(t for t in cluster.trials("nan") if t["spec"]["index"] == 0)["status"]
        assert (first["phase"], first["reason"]) == ("Failed", "Diverged"), first
        assert "accuracy=nan at epoch 2" in first["message"]
        assert cluster.status("nan")["bestTrial"]["name"] == "nan-1"
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors


async def test_the_result_reaches_the_trial_through_an_api_outage_at_the_trainers_start(emulator):
    """Every status write of the trainer answers 503 for longer than it retries, from its
    start: it trains on, and the result still reaches the trial (f1501ca: the start raised,
    the pod exited 1, a final code, with no result and no termination message)."""
    refused = []

    def outage(agent, method, path):
        if agent.startswith("kubenas-trainer") and method == "PATCH" and path.endswith("/status") \
                and len(refused) < RETRIES + 2:
            refused.append(path)
            return 503
        return None

    emulator.faults.append(outage)
    async with running(emulator, script=lambda i: Script(values=[0.4, 0.6, 0.8])) as cluster:
        await cluster.create_experiment(digits_experiment("outage", maxTrials=1, parallelTrials=1))
        await wait_for(lambda: cluster.status("outage").get("phase") == "Succeeded", 60, "Succeeded")
        trial = cluster.trials("outage")[0]["status"]
        assert (trial["phase"], trial["reward"]) == ("Succeeded", 0.8), trial
        assert [h["epoch"] for h in trial["history"]] == [1, 2, 3] and not trial.get("reason")
        assert len(refused) == RETRIES + 2  # the start's write and its retries, and the first epoch's once


async def test_a_trial_the_trainer_cannot_read_for_an_outage_is_retried_not_failed(emulator, tmp_path):
    """Past its retries, an unreadable trial exits ApiUnavailable (75): not a final code,
    so the Job starts another pod (budget.maxRetries); a trial that is not there is final."""
    emulator.faults.append(lambda agent, method, path: 503 if agent.startswith("kubenas-trainer") else None)
    log = tmp_path / "termination-log"
    api = client(emulator.conf, "kubenas-trainer/test")
    env = {"POD_NAMESPACE": NS, "KUBENAS_TRIAL": "gone-0"}
    code = await asyncio.to_thread(main_from_cluster, env=env, api_client=api, termination_log=str(log),
                                   retry_delay=TRAINER_RETRY_DELAY)
    assert (code, json.loads(log.read_text())["reason"]) == (75, "ApiUnavailable")
    assert code not in FINAL_EXIT_CODES
    job = job_for_trial({"metadata": {"name": "gone-0", "namespace": NS, "uid": "u"},
                         "spec": {"experiment": "gone", "index": 0}}, with_defaults({"budget": {"maxRetries": 2}}))
    fail_job = job["spec"]["podFailurePolicy"]["rules"][0]
    assert fail_job["action"] == "FailJob" and 75 not in fail_job["onExitCodes"]["values"]
    assert fail_job["onExitCodes"]["values"] == [e.code for e in EXIT_TABLE if e.final]
    # When the Job gives up, the operator names the reason from the last pod's code.
    pod = {"status": {"phase": "Failed", "containerStatuses": [
        {"state": {"terminated": {"exitCode": 75, "message": log.read_text()}}}]}}
    assert pod_failure([pod])[0] == "ApiUnavailable"

    emulator.faults.clear()
    code = await asyncio.to_thread(main_from_cluster, env=env, api_client=api, termination_log=str(log),
                                   retry_delay=TRAINER_RETRY_DELAY)
    assert (code, json.loads(log.read_text())["reason"]) == (2, "InvalidTrial")  # 404: no such trial


async def test_a_failure_every_trial_would_repeat_ends_the_experiment_at_once(emulator):
    cluster = FakeCluster(emulator, emulator.conf,
                          script=lambda i: Script(status="Failed", reason="Unsatisfiable", message=NO_CUDA))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("nogpu", maxTrials=20, parallelTrials=2, maxFailedTrials=10))
        await wait_for(lambda: cluster.status("nogpu").get("phase") in ("Failed", "Succeeded"), 60, "the end")
        assert (cluster.status("nogpu")["phase"], complete(cluster, "nogpu")["reason"]) == ("Failed", "Unsatisfiable")
        assert "training.device: cuda requested" in complete(cluster, "nogpu")["message"]
        assert len(cluster.trials("nogpu")) <= 2  # no trial started after the first such failure
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors


async def test_an_experiment_without_a_succeeded_trial_ends_failed(emulator):
    cluster = FakeCluster(emulator, emulator.conf,
                          script=lambda i: Script(status="Failed", reason="DataError", message="dataset: no such file"))
    await cluster.start()
    try:
        await cluster.create_experiment(digits_experiment("none", maxTrials=2, parallelTrials=2, maxFailedTrials=4))
        await wait_for(lambda: cluster.status("none").get("phase") in ("Failed", "Succeeded"), 60, "the end")
        assert (cluster.status("none")["phase"], complete(cluster, "none")["reason"]) == ("Failed", "NoTrialSucceeded")
        assert "none succeeded" in complete(cluster, "none")["message"]
        assert "DataError: dataset: no such file" in complete(cluster, "none")["message"]
    finally:
        await cluster.close()
    assert not cluster.errors, cluster.errors
