"""The trial container's command when a trial runs several processes (docs/distributed.md).

Pure: ``spec`` (the accepted spec) and the single-process command in, the command out.
The rule for how many processes and which backend is kubenas.contract.distributed.

* The built-in trainer: ``kubenas-train --from-cluster --nproc-per-node N --backend B``.
  kubenas-train then runs itself under torchrun (``python -m torch.distributed.run
  --standalone --nnodes 1 --nproc-per-node N``) and exits with rank 0's exit code, so the
  Job's podFailurePolicy reads the same codes as for one process (torchrun alone exits 1
  for any failing worker, which would turn a retriable 75 into a final 1).
* A user program (``spec.trial.command``): the ``kubenas-trial`` wrapper runs torchrun
  around it, and every rank gets torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK,
  MASTER_ADDR, MASTER_PORT; docs/byo.md).
"""
from __future__ import annotations

from kubenas.contract.distributed import distributed_for, torchrun_command


def launch_command(spec: dict, command: list[str], wrapper: list[str]) -> list[str]:
    """``command`` (the trial container's single-process command: the trainer's, or
    ``wrapper`` followed by the user's program) for the processes ``spec.trial`` asks for."""
    dist = distributed_for(spec.get("trial") or {})
    if dist is None:
        return list(command)
    if command[:len(wrapper)] == list(wrapper):
        return [*wrapper, *torchrun_command(dist, command[len(wrapper):])]
    return [*command, *dist.launch_args()]
