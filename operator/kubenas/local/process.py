"""One trial as a local process running the trainer (`python -m kubenas_trainer`), or the
user's own program under the ``kubenas-trial`` wrapper (`python -m kubenas_trainer.reporting.wrapper`)
when the experiment sets ``trial.command`` (docs/byo.md).

The trainer writes history.jsonl as it goes and result.json at the end; its exit code
tells success from failure. A process that dies without a result (killed, segfault)
still ends as a Failed trial with the tail of its log as the message.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kubenas.contract import INTERNAL_ERROR, TIMEOUT
from kubenas.contract.result import MESSAGE_LIMIT, failed_result, read_result
from kubenas.contract.distributed import Distributed, torchrun_command

LOG_TAIL_CHARS = 2000
KILL_GRACE_SECONDS = 5.0


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: be killed if the runner dies, so a killed runner leaves no orphan
    trainer writing into a trial folder that the resumed run reuses (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class TrialProcess:
    def __init__(self, name: str, index: int, directory: Path, timeout_seconds: float, threads: int,
                 extra_env: dict | None = None, command: list[str] | None = None,
                 python_path: list[str] | None = None, distributed: Distributed | None = None):
        self.name = name
        self.index = index
        self.directory = directory
        self.started_at = time.time()
        self.deadline = time.monotonic() + timeout_seconds + KILL_GRACE_SECONDS
        self.stop_reason: str | None = None  # set when we kill it: contract.TIMEOUT or STOPPED_BY_RUNNER
        self.early_stop_requested = False
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), **(extra_env or {}))
        if python_path:  # the experiment file's folder: where a local trial finds the user's modules
            env["PYTHONPATH"] = os.pathsep.join(python_path + [p for p in [env.get("PYTHONPATH")] if p])
        io = ["--trial", str(directory / "trial.json"), "--out", str(directory), "--export-model"]
        if command and distributed:  # several processes (docs/distributed.md): torchrun inside the wrapper
            command = torchrun_command(distributed, command)
        argv = ([sys.executable, "-m", "kubenas_trainer.reporting.wrapper", *io, "--", *command] if command
                else [sys.executable, "-m", "kubenas_trainer", *io, *(distributed.launch_args() if distributed else [])])
        self._log = open(directory / "log.txt", "ab")
        # Own session: a Ctrl-C in the terminal reaches the runner only, which then
        # stops its trials deliberately instead of having them die mid-write.
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            preexec_fn=_die_with_parent)

    def poll(self) -> int | None:
        if self.popen.poll() is None and time.monotonic() > self.deadline:
            self.stop(TIMEOUT)
        return self.popen.poll()

    def request_early_stop(self) -> None:
        """Ask the trainer to stop after the current epoch (it then reports EarlyStopped
        with its metrics so far); the trial timeout still bounds how long that takes."""
        if not self.early_stop_requested:
            self.early_stop_requested = True
            (self.directory / "stop").touch()

    def stop(self, reason: str) -> None:
        """Terminate the trial (SIGTERM, then SIGKILL after a grace period)."""
        if self.popen.poll() is not None:
            return
        self.stop_reason = self.stop_reason or reason
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass

    def history(self) -> list[dict]:
        path = self.directory / "history.jsonl"
        records = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # the line being written right now
        return records

    def result(self) -> dict:
        """The trial's result once the process has ended."""
        self._log.close()
        code = self.popen.returncode
        result = None
        path = self.directory / "result.json"
        if path.exists():
            try:
                result = read_result(json.loads(path.read_text()))
            except json.JSONDecodeError:
                result = None
        if result is None and self.stop_reason:
            result = failed_result(self.stop_reason, f"trial process ended by the runner ({self.stop_reason})",
                                   history=self.history())
        elif result is None:
            said = f"trainer exited with code {code} without a result: "
            result = failed_result(INTERNAL_ERROR, said + self.log_tail()[len(said) - MESSAGE_LIMIT:],
                                   history=self.history())
        result.setdefault("exitCode", code)
        return result

    def log_tail(self) -> str:
        try:
            text = (self.directory / "log.txt").read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:].strip()
