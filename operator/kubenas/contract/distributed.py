"""Multi-process trials: how many processes one trial runs, with which torch.distributed
backend, and the command lines that start them (docs/distributed.md).

One rule, read by validation (kubenas.api), the operator's trial Job
(kubenas.operator.distributed), the local runner and the trainer's launcher
(kubenas_trainer.training.launch):

* ``spec.trial.distributed: {nprocPerNode: N, backend: nccl|gloo}`` runs N processes in
  the trial's pod (or on the local machine) under torchrun, one rank each;
* without it, a template whose ``resources`` ask for ``nvidia.com/gpu: N`` with N >= 2
  runs N processes with ``nccl``, one per GPU;
* otherwise (and with ``nprocPerNode: 1``) the trial is one plain process, as always.

Torch-free and pure: the functions map a spec to values and never look at the machine.
"""
from __future__ import annotations

from dataclasses import dataclass

GPU_RESOURCE = "nvidia.com/gpu"
BACKENDS = ("nccl", "gloo")
MAX_PROCESSES = 64
WHERE = "spec.trial.distributed"

# The trainer's launcher flags (kubenas-train and python -m kubenas_trainer).
NPROC_FLAG = "--nproc-per-node"
BACKEND_FLAG = "--backend"
# torchrun, as a module of the Python that runs kubenas: no console script on PATH needed.
TORCHRUN = ["python", "-m", "torch.distributed.run"]
PYTHON_NAMES = ("python", "python3")
# What torchrun gives each process (docs/byo.md, "Multi-process trials").
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Distributed:
    """One trial as ``nproc_per_node`` processes on one node, talking over ``backend``."""

    nproc_per_node: int
    backend: str

    def launch_args(self) -> list[str]:
        """The flags that make the built-in trainer start itself under torchrun."""
        return [NPROC_FLAG, str(self.nproc_per_node), BACKEND_FLAG, self.backend]

    def torchrun_args(self) -> list[str]:
        """torchrun's options for one node: a rendezvous of its own on a free local port."""
        return ["--standalone", "--nnodes", "1", "--nproc-per-node", str(self.nproc_per_node)]


def gpus_asked(template: dict | None) -> int:
    """The ``nvidia.com/gpu`` count of a pod template's limits (else requests); 0 for none
    or for a value that is not a whole number (the schema and validation refuse those)."""
    resources = (template or {}).get("resources") or {}
    for key in ("limits", "requests"):
        value = (resources.get(key) or {}).get(GPU_RESOURCE)
        if value is not None:
            try:
                return int(str(value))
            except ValueError:
                return 0
    return 0


def issues(trial: dict) -> list[tuple[str, str]]:
    """What is wrong with ``spec.trial``'s distributed settings, as (field path, message).

    ``trial`` is the experiment's ``spec.trial`` after the schema (nprocPerNode an int of
    1..64, backend one of BACKENDS)."""
    block = trial.get("distributed")
    gpus = gpus_asked(trial.get("template"))
    if block is None:
        return []
    n = block.get("nprocPerNode")
    backend = block.get("backend") or ("nccl" if gpus else "gloo")
    if backend == "nccl" and gpus == 0:
        return [(f"{WHERE}.backend", "nccl needs one GPU per process, and spec.trial.template.resources asks for "
                                     f"none: add {GPU_RESOURCE}: {n} to its limits, or use backend gloo (CPU)")]
    if gpus and n != gpus:
        return [(f"{WHERE}.nprocPerNode", f"is {n}, and spec.trial.template.resources asks for {gpus} "
                                          f"{GPU_RESOURCE}: each process trains on one GPU; set nprocPerNode: {gpus} "
                                          "(or ask for as many GPUs as processes)")]
    return []


def distributed_for(trial: dict) -> Distributed | None:
    """How ``spec.trial`` runs: a ``Distributed`` for two processes or more, else None (one
    plain process). ``trial`` passed ``issues``."""
    block = trial.get("distributed")
    gpus = gpus_asked(trial.get("template"))
    if block is None:
        return Distributed(gpus, "nccl") if gpus >= 2 else None
    n = int(block["nprocPerNode"])
    if n < 2:
        return None
    return Distributed(n, block.get("backend") or ("nccl" if gpus else "gloo"))


def batch_size_issue(batch_size, processes: int) -> str | None:
    """Why ``batch_size`` cannot be the global batch of ``processes`` ranks, or None.

    ``training.batchSize`` stays the global batch (the same hyperparameter whatever the
    number of GPUs): each rank trains on ``batchSize / processes`` examples a step, so it
    must divide evenly, at least 2 a rank (batch norm cannot train on one)."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool):
        return None  # the settings' own checks name a wrong type
    if batch_size % processes or batch_size // processes < 2:
        return (f"{batch_size} is the global batch, split between the trial's {processes} processes: it must be a "
                f"multiple of {processes} with at least 2 examples a process; use e.g. "
                f"{max(2, -(-batch_size // processes)) * processes}")
    return None


def torchrun_command(dist: Distributed, command: list[str]) -> list[str]:
    """A user program (``spec.trial.command``) under torchrun: ``python -m pkg ...`` and
    ``python script.py ...`` become torchrun's ``-m pkg ...`` / ``script.py ...`` (run by
    torchrun's own Python, the one that runs kubenas); any other program runs as it is
    (``--no-python``). The leading ``python`` is the wrapper's, which it resolves to
    its own interpreter as for any command (docs/byo.md)."""
    head = [*TORCHRUN, *dist.torchrun_args()]
    if command and command[0] in PYTHON_NAMES and len(command) > 1:
        if command[1] == "-m" and len(command) > 2:
            return [*head, "-m", *command[2:]]
        if not command[1].startswith("-"):
            return [*head, *command[1:]]
    return [*head, "--no-python", *command]
