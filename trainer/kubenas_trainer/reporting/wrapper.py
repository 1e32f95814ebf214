"""``kubenas-trial``: run the user's own training program as a trial (docs/byo.md).

    kubenas-trial --trial trial.json --out DIR [--export-model] -- python train.py --lr ${learningRate}
    kubenas-trial --from-cluster -- python train.py ...        # the trial pod's command

The same process, locally (the runner starts it) and in a trial pod (the operator makes
it the container's command): it writes the candidate to a JSON file
(``$KUBENAS_TRIAL_FILE``, kubenas.contract.byo), substitutes ``${name}`` in the command,
runs the program in its own process group, and collects its metric lines
(``kubenas: epoch=3 accuracy=0.912``) from its output and from ``$KUBENAS_REPORT_FILE``
(where :mod:`kubenas.report` writes), plus the JSON object in ``$KUBENAS_RESULT_FILE``
if the program writes one. Every epoch goes to the same reporters the built-in trainer
uses (reporting.files.FileReporter, or reporting.cluster.KubernetesReporter into NASTrial.status), so
the median rule, budgets and the leaderboard see no difference. It enforces the trial's
timeout, stops the program when the trial is stopped early (SIGTERM to its group, SIGKILL
after a grace period) or reports a non-finite objective value (Diverged), forwards its own
SIGTERM, and maps the program's exit code to the contract's reasons: only the codes a
program may use (``kubenas.contract.PROGRAM_EXIT_REASONS``) name a reason, any other is
InternalError, and the wrapper exits with its result's code, never the program's. The
result's ``exitCode`` is the program's (null when it never ran). torch is never imported.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kubenas.contract import (DIVERGED, EARLY_STOPPED, FAILED, INTERNAL_ERROR, INVALID_TRIAL, NO_REWARD,
                              PROGRAM_EXIT_REASONS, SUCCEEDED, TIMEOUT)
from kubenas.contract.artifacts import CHECKPOINT_FILE
from kubenas.contract.byo import ReportError, candidate_document, environment, parse_report, substitute
from kubenas.contract.result import MESSAGE_LIMIT, TrialResult, failed_result, trial_result
from kubenas.contract.reward import compute_reward

from kubenas_trainer import errors

GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1
LOG_TAIL_LINES = 20
CLUSTER_WORKDIR = "/tmp/kubenas-trial"
PYTHON_NAMES = ("python", "python3")


class Terminated(BaseException):
    """The wrapper got SIGTERM and stopped the program: whoever stopped the trial records why.
    Not an Exception: no handler of trial failures may turn it into a result."""


class _Collector:
    """Metric reports from the program's output (a reader thread) and the report file."""

    def __init__(self, report_file: Path):
        self.report_file = report_file
        self.lines: queue.Queue = queue.Queue()
        self.tail: list[str] = []
        self._offset = 0
        self._partial = b""

    def read_output(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode(errors="replace")
            sys.stdout.write(text)  # the pod's / trial's log keeps everything
            sys.stdout.flush()
            self.tail = (self.tail + [text.rstrip()])[-LOG_TAIL_LINES:]
            self.lines.put(text)
        stream.close()

    def pending(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.lines.get_nowait())
            except queue.Empty:
                break
        try:
            with open(self.report_file, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            data = b""
        if data:
            self._offset += len(data)
            data = self._partial + data
            *complete, self._partial = data.split(b"\n")
            out += [line.decode(errors="replace") for line in complete]
        return out


def terminate_group(popen: subprocess.Popen, grace: float) -> None:
    """SIGTERM to the process group that ``popen`` leads, SIGKILL after ``grace`` seconds
    (a kubelet's graceful deletion); returns once the leader has exited."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, signal.SIGTERM)
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        popen.wait()
    except ProcessLookupError:
        pass


def _in_child() -> None:
    os.setpgid(0, 0)  # its own group: stopping it stops what it started
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _failed(reason: str, message: str, history: list, metrics: dict | None = None) -> TrialResult:
    """A Failed result of the wrapper: ``exitCode`` null until the program has run."""
    return failed_result(reason, message, metrics=metrics, history=history, exitCode=None)


@dataclass(frozen=True)
class _Files:
    """The files the wrapper shares with the program in its work directory (docs/byo.md "Inputs")."""
    trial: Path      # $KUBENAS_TRIAL_FILE: the candidate document
    reports: Path    # $KUBENAS_REPORT_FILE: kubenas.report's lines
    result: Path     # $KUBENAS_RESULT_FILE: the program's JSON object of final metrics

    @classmethod
    def fresh(cls, workdir: Path) -> "_Files":
        workdir.mkdir(parents=True, exist_ok=True)
        files = cls(workdir / "candidate.json", workdir / "reports.txt", workdir / "result-from-program.json")
        for stale in (files.reports, files.result):
            stale.unlink(missing_ok=True)
        files.reports.touch()
        return files


def run_command(command: list[str], trial: dict, *, on_epoch, workdir: Path, model_path=None, checkpoint_path=None,
                grace_seconds: float = GRACE_SECONDS, terminated: threading.Event | None = None) -> TrialResult:
    """Run the user's program for ``trial`` and return its trial result (docs/formats.md).

    ``on_epoch(record)`` is the reporter's (``"stop"`` stops the program: EarlyStopped).
    ``terminated`` set from outside (SIGTERM) stops the program and raises Terminated:
    nothing is reported (the stopper decides the trial's fate, as for the built-in trainer).
    ``trial.checkpoint`` reaches the program as $KUBENAS_CHECKPOINT_FILE (``checkpoint_path``,
    with save) and $KUBENAS_RESUME_FROM; a checkpoint file it wrote is published like the
    built-in trainer's (the result's ``checkpoint``).
    """
    files = _Files.fresh(workdir)
    document = candidate_document(trial, trial_file=str(files.trial), output_dir=str(workdir))
    files.trial.write_text(json.dumps(document, indent=2, sort_keys=True))
    try:
        argv = _argv(command, document)
    except KeyError as err:
        return _failed(INVALID_TRIAL, f"spec.trial.command: ${{{err.args[0]}}} has no scalar value in this "
                                      f"candidate (known: {', '.join(sorted(document['values']))})", [])
    checkpoint_path = _checkpoint_file(trial, checkpoint_path)
    env = _environment(trial, document, files, model_path, checkpoint_path)
    started = time.monotonic()
    try:
        popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env=env, preexec_fn=_in_child)
    except OSError as err:
        return _failed(INVALID_TRIAL, f"spec.trial.command: cannot start {argv[0]!r}: {err}", [])
    watch = _Watch(popen, _Collector(files.reports), _metric(trial), on_epoch, grace_seconds)
    watch.until_exit(_deadline(trial), terminated)
    if watch.outcome == TERMINATED:
        raise Terminated()
    result = _verdict(popen.returncode, watch, trial, files.result)
    if checkpoint_path and checkpoint_path.exists() and result["status"] != FAILED:
        result["checkpoint"] = str(checkpoint_path)
    # The program's run time, as the built-in trainer's (the leaderboard's "train s"), unless it reported its own.
    result["metrics"].setdefault("wallSeconds", round(time.monotonic() - started, 3))
    result["exitCode"] = popen.returncode
    return result


def _argv(command: list[str], document: dict) -> list[str]:
    """The command with ``${name}`` substituted (KeyError: a name without a scalar value);
    ``python``/``python3`` is the Python that runs kubenas (and has torch), not whatever is
    first on PATH."""
    argv = substitute(command, document)
    if argv and argv[0] in PYTHON_NAMES:
        argv[0] = sys.executable
    return argv


def _metric(trial: dict) -> str:
    return (trial.get("objective") or {}).get("metric", "accuracy")


def _deadline(trial: dict) -> float | None:
    """The trial's timeout as a ``time.monotonic()`` deadline from now (None: no timeout)."""
    timeout = trial.get("timeoutSeconds")
    return time.monotonic() + float(timeout) if timeout else None


def _checkpoint_file(trial: dict, checkpoint_path) -> Path | None:
    """Where the program may write its checkpoint: only with ``trial.checkpoint.save``."""
    wanted = trial.get("checkpoint") if isinstance(trial.get("checkpoint"), dict) else {}
    return Path(checkpoint_path) if checkpoint_path and wanted.get("save") is True else None


def _environment(trial: dict, document: dict, files: _Files, model_path, checkpoint_path: Path | None) -> dict:
    """The program's environment: the wrapper's own plus the trial's (kubenas.contract.byo)."""
    wanted = trial.get("checkpoint") if isinstance(trial.get("checkpoint"), dict) else {}
    return dict(os.environ, **environment(document, report_file=str(files.reports), result_file=str(files.result),
                                          model_file=str(model_path) if model_path else None,
                                          checkpoint_file=str(checkpoint_path) if checkpoint_path else None,
                                          resume_from=wanted.get("resumeFrom")))


TERMINATED = "terminated"


class _Watch:
    """The running program and what it reported: epochs (``history``, each given to
    ``on_epoch``), the final report (``final``), the first malformed report (``problem``)
    and ``outcome``, what the wrapper did to it: EARLY_STOPPED, TIMEOUT, DIVERGED (a
    non-finite objective value, as the built-in trainer stops at once), TERMINATED (the
    wrapper's own SIGTERM), or None while the program decides its own end."""

    def __init__(self, popen: subprocess.Popen, collector: _Collector, metric: str, on_epoch, grace_seconds: float):
        self.popen, self.collector, self.metric = popen, collector, metric
        self.on_epoch, self.grace_seconds = on_epoch, grace_seconds
        self.history: list[dict] = []
        self.final: dict = {}
        self.problem: str | None = None
        self.outcome: str | None = None
        self.reader = threading.Thread(target=collector.read_output, args=(popen.stdout,), daemon=True)
        self.reader.start()

    def until_exit(self, deadline: float | None, terminated: threading.Event | None) -> None:
        """Read reports until the program exits, stopping it at the deadline or on ``terminated``."""
        while self.popen.poll() is None:
            self.drain()
            if self.outcome is None and deadline is not None and time.monotonic() > deadline:
                self._stop(TIMEOUT)
            if self.outcome is None and terminated is not None and terminated.is_set():
                self._stop(TERMINATED)
            time.sleep(POLL_SECONDS)
        self.reader.join(5.0)
        self.drain()

    def drain(self) -> None:
        """Take every pending report line; after a stop, what it still prints is not its result."""
        for line in self.collector.pending():
            try:
                parsed = parse_report(line)
            except ReportError as err:
                self.problem = self.problem or str(err)
                continue
            if parsed is None or self.outcome is not None:
                continue
            kind, values = parsed
            if kind == "final":
                self.final.update(values)
            else:
                self._epoch(values)

    def _epoch(self, values: dict) -> None:
        self.history.append(values)
        if not math.isfinite(values.get(self.metric, 0.0)):
            self._stop(DIVERGED)
        elif self.on_epoch is not None and self.on_epoch(dict(values)) == "stop":
            self._stop(EARLY_STOPPED)

    def _stop(self, outcome: str) -> None:
        self.outcome = outcome
        terminate_group(self.popen, self.grace_seconds)

    def tail(self, room: int) -> str:
        """The program's last output lines, at most ``room`` characters (its end kept: the error is last)."""
        text = "\n".join(self.collector.tail[-5:])
        return text if len(text) <= room else "..." + text[len(text) - room + 3:]


def _verdict(code: int, watch: _Watch, trial: dict, result_file: Path) -> TrialResult:
    """The trial's result from how the program ended (``code``; ``watch.outcome``: what the
    wrapper did to it) and what it reported."""
    failure = _failure(code, watch, trial)
    if failure is not None:
        return failure
    history, final = watch.history, watch.final
    objective = trial.get("objective") or {}
    metric = objective.get("metric", "accuracy")
    if result_file.exists():
        try:
            data = json.loads(result_file.read_text())
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            return _failed(INVALID_TRIAL, f"${{KUBENAS_RESULT_FILE}} ({result_file.name}) is not a JSON object of "
                                          f"metrics: {err}", history)
        final.update({k: float(v) for k, v in data.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)})
    metrics = {k: v for k, v in (history[-1] if history else {}).items() if k != "epoch"}
    if watch.outcome != EARLY_STOPPED:
        metrics.update(final)
    value = metrics.get(metric)
    if value is None:
        if watch.outcome == EARLY_STOPPED:
            return _failed(NO_REWARD, f"stopped early before it reported {metric}", history, metrics)
        said = (f"reported no {metric} (only {', '.join(sorted(metrics))})" if metrics
                else "reported nothing")
        return _failed(NO_REWARD, f"the program exited 0 but {said}: print "
                                  f"'kubenas: epoch=N {metric}=VALUE' lines, call kubenas.report.final({metric}=...), "
                                  f"or write {{\"{metric}\": VALUE}} to $KUBENAS_RESULT_FILE", history, metrics)
    if not math.isfinite(value):
        return _failed(DIVERGED, f"the program reported {metric}={value}", history, metrics)
    try:
        reward = compute_reward(objective, metrics)
    except ValueError as err:
        return _failed(INVALID_TRIAL, f"objective.penalties: {err}; report it (e.g. kubenas: final "
                                      f"parameters=12345)", history, metrics)
    status = EARLY_STOPPED if watch.outcome == EARLY_STOPPED else SUCCEEDED
    message = f"stopped early after epoch {history[-1]['epoch']}" if status == EARLY_STOPPED and history else ""
    return trial_result(status, reward=reward, message=message, metrics=metrics, history=history)


def _failure(code: int, watch: _Watch, trial: dict) -> TrialResult | None:
    """The Failed result for a program the wrapper stopped (timeout, a non-finite
    objective value), that reported malformed lines, or that exited non-zero; None when
    it exited 0 by itself (its reports decide)."""
    history, outcome = watch.history, watch.outcome
    if outcome == TIMEOUT:
        return _failed(TIMEOUT, f"the program ran longer than the trial's timeout ({trial.get('timeoutSeconds')}s, "
                                "budget.trialTimeoutSeconds)", history)
    if outcome == DIVERGED:
        metric = _metric(trial)
        return _failed(DIVERGED, f"the program reported {metric}={history[-1][metric]} at epoch "
                                 f"{history[-1]['epoch']}: stopped", history)
    if watch.problem and outcome is None:
        return _failed(INVALID_TRIAL, f"a metric report of the program is malformed: {watch.problem}", history)
    if outcome is not None or code == 0:
        return None
    if code < 0:
        reason, why = INTERNAL_ERROR, f"was killed by signal {-code} ({signal.Signals(-code).name})"
    elif code in PROGRAM_EXIT_REASONS:
        reason, why = PROGRAM_EXIT_REASONS[code], f"exited with code {code}"
    else:
        reason, why = INTERNAL_ERROR, (f"exited with code {code} (a failure of its own: only "
                                       f"{', '.join(map(str, PROGRAM_EXIT_REASONS))} name a reason)")
    said = f"the program {why}"
    tail = watch.tail(MESSAGE_LIMIT - len(said) - len(_LAST_OUTPUT))
    return _failed(reason, said + (_LAST_OUTPUT + tail if tail else ""), history)


_LAST_OUTPUT = "; its last output:\n"


# ------------------------------------------------------------------------------ CLI


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        raise SystemExit("kubenas-trial: give the program after --, e.g. kubenas-trial --trial t.json --out DIR "
                         "-- python train.py")
    split = argv.index("--")
    ours, command = argv[:split], argv[split + 1:]
    p = argparse.ArgumentParser(prog="kubenas-trial", description="Run your own training program as a kubenas trial.")
    p.add_argument("--from-cluster", action="store_true", help="read the NASTrial $KUBENAS_TRIAL, report into its status")
    p.add_argument("--trial", type=Path, help="trial file (.json/.yaml), local mode")
    p.add_argument("--out", type=Path, help="output directory, local mode")
    p.add_argument("--export-model", action="store_true", help="offer OUT/model.pt as $KUBENAS_MODEL_FILE")
    args = p.parse_args(ours)
    if not command:
        p.error("no program after --")
    if not args.from_cluster and (args.trial is None or args.out is None):
        p.error("--trial and --out are needed unless --from-cluster")
    args.command = command
    return args


def _sigterm_event() -> threading.Event:
    event = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: event.set())
    return event


def main(argv=None) -> int:
    args = parse_args(argv)
    terminated = _sigterm_event()
    if args.from_cluster:
        from kubenas_trainer.reporting.cluster import main_from_cluster

        def run(trial, *, on_epoch, model_path=None, checkpoint_path=None):
            return run_command(args.command, trial, on_epoch=on_epoch, workdir=Path(CLUSTER_WORKDIR),
                               model_path=model_path, checkpoint_path=checkpoint_path, terminated=terminated)

        try:
            return main_from_cluster(args, run=run)
        except Terminated:
            return 128 + signal.SIGTERM

    from kubenas_trainer.cli import load_trial
    from kubenas_trainer.reporting.files import FileReporter

    reporter = FileReporter(args.out)
    try:
        trial = load_trial(args.trial)
    except errors.TrialFailure as exc:
        result = _failed(exc.reason, exc.message, [])
    else:
        try:
            result = run_command(args.command, trial, on_epoch=reporter.epoch, workdir=args.out,
                                 model_path=args.out / "model.pt" if args.export_model else None,
                                 checkpoint_path=args.out / CHECKPOINT_FILE, terminated=terminated)
        except Terminated:
            return 128 + signal.SIGTERM
    reporter.final(result)
    reward = result.get("reward")
    print(f"kubenas-trial: {result['status']}" + (f" ({result['reason']})" if result.get("reason") else "")
          + (f", reward {reward:.4f}" if isinstance(reward, float) else "")
          + (f": {result['message']}" if result.get("message") else ""), file=sys.stderr)
    return errors.exit_code(result)


if __name__ == "__main__":
    sys.exit(main())
