"""A trial that asks for several processes: the trial Job's command (kubenas.operator.distributed)
and the rule behind it (kubenas.contract.distributed)."""
from __future__ import annotations

import copy

from kubernetes import client as k8s

from kubenas.contract.distributed import Distributed, distributed_for, gpus_asked, torchrun_command
from kubenas.operator.distributed import launch_command
from kubenas.operator.manifests import TRAINER_COMMAND, USER_COMMAND_WRAPPER, job_for_trial


def _command(job: dict) -> list[str]:
    return job["spec"]["template"]["spec"]["containers"][0]["command"]


def test_one_process_keeps_the_plain_trainer(trial, spec):
    assert _command(job_for_trial(trial, spec)) == TRAINER_COMMAND


def test_gpus_in_the_template_run_one_process_per_gpu_with_nccl(trial, spec):
    spec = copy.deepcopy(spec)
    spec["trial"]["template"]["resources"] = {"limits": {"nvidia.com/gpu": 4}}
    job = job_for_trial(trial, spec)
    k8s.V1Job.from_dict(job)
    assert _command(job) == [*TRAINER_COMMAND, "--nproc-per-node", "4", "--backend", "nccl"]
    # One GPU is one process, as before.
    spec["trial"]["template"]["resources"] = {"limits": {"nvidia.com/gpu": "1"}}
    assert _command(job_for_trial(trial, spec)) == TRAINER_COMMAND


def test_an_explicit_block_picks_processes_and_backend(trial, spec):
    spec = copy.deepcopy(spec)
    spec["trial"]["distributed"] = {"nprocPerNode": 2, "backend": "gloo"}
    assert _command(job_for_trial(trial, spec)) == [*TRAINER_COMMAND, "--nproc-per-node", "2", "--backend", "gloo"]
    spec["trial"]["distributed"] = {"nprocPerNode": 1}
    assert _command(job_for_trial(trial, spec)) == TRAINER_COMMAND


def test_a_user_program_runs_under_torchrun_inside_the_wrapper(trial, spec):
    spec = copy.deepcopy(spec)
    spec["trial"]["distributed"] = {"nprocPerNode": 2}
    spec["trial"]["command"] = ["python", "-m", "mypkg.train", "--lr", "${learningRate}"]
    assert _command(job_for_trial(trial, spec)) == [
        *USER_COMMAND_WRAPPER, "python", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
        "--nproc-per-node", "2", "-m", "mypkg.train", "--lr", "${learningRate}"]


def test_torchrun_takes_scripts_modules_and_other_programs():
    two = Distributed(2, "gloo")
    head = ["python", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    assert torchrun_command(two, ["python3", "train.py", "-x"]) == [*head, "train.py", "-x"]
    assert torchrun_command(two, ["python", "-m", "pkg"]) == [*head, "-m", "pkg"]
    assert torchrun_command(two, ["python", "-u", "train.py"]) == [*head, "--no-python", "python", "-u", "train.py"]
    assert torchrun_command(two, ["./train.sh", "a"]) == [*head, "--no-python", "./train.sh", "a"]


def test_the_rule():
    assert gpus_asked({"resources": {"requests": {"nvidia.com/gpu": "2"}}}) == 2
    assert gpus_asked({"resources": {"limits": {"cpu": "2"}}}) == 0
    assert distributed_for({"template": {"resources": {"limits": {"nvidia.com/gpu": 8}}}}) == Distributed(8, "nccl")
    assert distributed_for({"distributed": {"nprocPerNode": 3}}) == Distributed(3, "gloo")
    assert distributed_for({"template": {}}) is None
    assert launch_command({"trial": {}}, ["a"], ["w"]) == ["a"]
