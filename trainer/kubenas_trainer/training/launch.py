"""A trial of several processes: the trainer starts itself under torchrun (docs/distributed.md).

``kubenas-train ... --nproc-per-node N --backend B`` (what the operator's Job and the
local runner run for a distributed trial, kubenas.contract.distributed) is the
*launcher*: it runs ``python -m torch.distributed.run --standalone --nnodes 1
--nproc-per-node N -m kubenas_trainer ...`` (the same arguments without the launch
flags), one worker per rank, and exits with **rank 0's** exit code. torchrun itself
exits 1 whenever a worker fails, which would turn every reason into InternalError and
a retriable ApiUnavailable (75) into a final answer; the launcher keeps the contract's
codes (kubenas.contract.EXIT_TABLE) for the Job's podFailurePolicy.

The ranks share a folder (``$KUBENAS_DISTRIBUTED_DIR``, made by the launcher):

* rank 0 reports, exactly as a single-process trainer does, and writes its exit code
  there (``exit-code``) before it exits;
* a rank other than 0 reports nothing; when its run fails it writes its result there
  (``rank-R.json``), gives rank 0 ``PEER_GRACE_SECONDS`` to end (a failure every rank
  meets, a bad setting or missing data, is then rank 0's report, as for one process)
  and exits with its code, which makes torchrun stop the others. A failure of that rank
  alone (out of memory, a loss that became NaN on its shard, its deadline a batch
  before rank 0's) thus ends the trial at once; if rank 0 noticed first (its collective
  failed) it reports the peer's recorded result instead of that symptom (``settle``);
* if rank 0 ends without an exit code (killed), the launcher reports a peer's result,
  or an InternalError naming torchrun's exit status, through ``on_no_result`` (the
  result file locally, the termination message in a pod).

torch-free: the launcher never imports torch (the workers do).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from kubenas.contract import FAILED, INTERNAL_ERROR
from kubenas.contract.artifacts import CHECKPOINT_FILE
from kubenas.contract.distributed import BACKEND_FLAG, NPROC_FLAG, Distributed
from kubenas.contract.result import TrialResult, failed_result, read_result

DIR_ENV = "KUBENAS_DISTRIBUTED_DIR"
BACKEND_ENV = "KUBENAS_DISTRIBUTED_BACKEND"
EXIT_FILE = "exit-code"
# How long a failed rank other than 0 waits for rank 0 to end before it exits (and torchrun
# stops the others): a failure every rank meets (a bad setting, no data) is rank 0's to report.
PEER_GRACE_SECONDS = 10.0


def in_worker(env=os.environ) -> bool:
    """Whether this process is one rank of a launched trial."""
    return bool(env.get(DIR_ENV)) and "RANK" in env


def rank(env=os.environ) -> int:
    return int(env.get("RANK", "0"))


def strip_launch_flags(argv: list[str]) -> list[str]:
    """``argv`` without ``--nproc-per-node N`` and ``--backend B`` (either spelling)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in (NPROC_FLAG, BACKEND_FLAG):
            skip = True
            continue
        if arg.startswith((NPROC_FLAG + "=", BACKEND_FLAG + "=")):
            continue
        out.append(arg)
    return out


def worker_command(dist: Distributed, argv: list[str], python: str = sys.executable) -> list[str]:
    """torchrun running ``python -m kubenas_trainer`` with ``argv`` (launch flags removed), once per rank."""
    return [python, "-m", "torch.distributed.run", *dist.torchrun_args(), "-m", "kubenas_trainer",
            *strip_launch_flags(argv)]


def launch(dist: Distributed, argv: list[str], on_no_result: Callable[[TrialResult], None], *,
           env=None, python: str = sys.executable) -> int:
    """Run the workers under torchrun and return rank 0's exit code (see the module's doc).
    SIGTERM and SIGINT are passed on to torchrun, which stops the workers."""
    from kubenas_trainer import errors

    folder = tempfile.mkdtemp(prefix="kubenas-ranks-")
    env = dict(os.environ if env is None else env, **{DIR_ENV: folder})
    if dist.backend:
        env[BACKEND_ENV] = dist.backend
    popen = subprocess.Popen(worker_command(dist, argv, python), env=env)

    def forward(signum, _frame):
        if popen.poll() is None:
            popen.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = popen.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    exit_file = Path(folder) / EXIT_FILE
    if exit_file.exists():
        return int(exit_file.read_text().strip() or 1)
    result = peer_failure(folder) or failed_result(
        INTERNAL_ERROR, f"the {dist.nproc_per_node} trainer processes under torchrun ended (exit status {code}) "
                        "before rank 0 reported a result; the trial's log has each rank's output")
    on_no_result(result)
    return errors.exit_code(result)


def entry(args, argv: list[str], train: Callable[[dict, Path], TrialResult]) -> int | None:
    """What ``kubenas-train`` does before anything else: launch the ranks under torchrun
    (``--nproc-per-node`` of 2 or more, not yet in a worker), or run a rank other than 0
    (``train(trial, checkpoint_path)``: the entry's training, without reporting); None:
    this process is the trial's only one, or its rank 0, and goes on as always."""
    if (args.nproc_per_node or 1) > 1 and not in_worker():
        return launch(Distributed(args.nproc_per_node, args.backend or ""), argv, _no_result_reporter(args))
    if in_worker() and rank() != 0:
        return run_peer(args, train)
    return None


def _no_result_reporter(args) -> Callable[[TrialResult], None]:
    """Where the launcher leaves a result rank 0 did not report: the result file, or the
    pod's termination message (which the operator reads when the status has no result)."""
    if args.from_cluster:
        from kubenas_trainer.reporting.cluster import write_termination_log

        return write_termination_log
    from kubenas_trainer.reporting.files import FileReporter

    return FileReporter(args.out).final


# --------------------------------------------------------------------------- in a worker


def run_peer(args, train: Callable[[dict, Path], TrialResult], env=os.environ) -> int:
    """A rank other than 0: read the same trial, train its shard with no reporter and no
    outputs (rank 0 writes them), then exit 0. A failure is recorded for rank 0 and the
    launcher; the rank then waits up to PEER_GRACE_SECONDS for rank 0 to end (a failure
    every rank meets is rank 0's to report) and exits with its code, which makes torchrun
    stop the others."""
    from kubenas_trainer import errors

    try:
        trial = _peer_trial(args, env)
        if trial is None:  # the trial was stopped before it started: rank 0 does not start either
            return 0
        result = train(trial, Path(tempfile.mkdtemp(prefix=f"kubenas-rank{rank(env)}-")) / CHECKPOINT_FILE)
    except errors.TrialFailure as exc:
        result = failed_result(exc.reason, exc.message)
    except Exception as exc:  # noqa: BLE001 - reported by rank 0 or the launcher, as any failure
        result = failed_result(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
    if result.get("status") == FAILED:
        record_failure(result, env)
        _wait_for_rank_0(env)
        return errors.exit_code(result)
    return 0


def _wait_for_rank_0(env, seconds: float = PEER_GRACE_SECONDS) -> None:
    import time

    exit_file = Path(env.get(DIR_ENV, "")) / EXIT_FILE
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not exit_file.exists():
        time.sleep(0.1)


def _peer_trial(args, env) -> dict | None:
    if not args.from_cluster:
        from kubenas_trainer.cli import load_trial

        return load_trial(args.trial)
    from kubenas.contract import API_UNAVAILABLE

    from kubenas_trainer.errors import INVALID_TRIAL, TrialFailure
    from kubenas_trainer.reporting.cluster import KubernetesReporter, cluster_namespace, transient

    namespace, name = cluster_namespace(env), env.get("KUBENAS_TRIAL")
    reader = KubernetesReporter(namespace, name)  # reads the trial; never writes
    try:
        trial = reader.load_trial()
    except Exception as err:  # noqa: BLE001 - as rank 0 says it (cluster.main_from_cluster): 75 is retried
        raise TrialFailure(f"cannot read NASTrial {namespace}/{name}: {err}",
                           API_UNAVAILABLE if transient(err) else INVALID_TRIAL) from None
    return None if reader.stop_requested else trial



def record_exit(code: int, env=os.environ) -> int:
    """Rank 0: leave its exit code for the launcher; returns ``code``."""
    folder = env.get(DIR_ENV)
    if folder and rank(env) == 0:
        _atomic_write(Path(folder) / EXIT_FILE, str(int(code)))
    return code


def record_failure(result: TrialResult, env=os.environ) -> None:
    """A rank other than 0: leave its Failed result where rank 0 and the launcher look."""
    folder = env.get(DIR_ENV)
    if folder and result.get("status") == FAILED:
        _atomic_write(Path(folder) / f"rank-{rank(env)}.json", json.dumps(result, default=str))


def peer_failure(folder: str | None = None, env=os.environ) -> TrialResult | None:
    """The first failure another rank recorded (the earliest written), its message naming
    the rank; None when none did."""
    folder = folder or env.get(DIR_ENV)
    if not folder:
        return None
    files = sorted(Path(folder).glob("rank-*.json"), key=lambda p: p.stat().st_mtime_ns)
    for path in files:
        result = read_result(json.loads(path.read_text()))
        if result is not None:
            peer = path.stem.split("-", 1)[1]
            result["message"] = f"rank {peer} of the trial's processes: {result.get('message') or ''}".rstrip(": ")
            return result
    return None


def settle(result: TrialResult, env=os.environ) -> TrialResult:
    """Rank 0's result, or, when rank 0 failed and another rank had failed first (rank 0's
    failure is then the lost peer), that rank's result."""
    if not in_worker(env) or result.get("status") != FAILED:
        return result
    return peer_failure(env=env) or result


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
