"""Cluster mode of the trainer: `kubenas-train --from-cluster`.

Inside a trial's Job the trainer reads its NASTrial (namespace from $POD_NAMESPACE or
the pod's ServiceAccount namespace file, name from $KUBENAS_TRIAL) with the official
client and the pod's ServiceAccount (``kubenas-trainer``: get nastrials, patch
nastrials/status, nothing else), and reports through the status subresource:

* at start: ``phase: Running``, ``startTime``;
* per epoch: ``history`` (bounded to 1000 epochs), at most every ``min_interval``
  seconds (10 by default), plus the last epoch at the end;
* at the end: ``phase`` (Succeeded / Failed / EarlyStopped), ``reward``, ``reason``,
  ``message``, ``metrics``, ``device``, ``completionTime``, and ``model`` (where its
  exported model went, when spec.artifacts keeps it: artifacts.py).

A terminal phase already on the trial (the operator stopped it early) is never
overwritten: terminal writes are conditional on the resourceVersion just read. Seeing
``EarlyStopped`` on the trial, ``epoch()`` asks training to stop. The final result is the
trainer's last write: once a trial has ended, admission refuses any change to its status
by the trainer's token (deploy/admission.yaml), and a progress write refused so makes
training stop. A short JSON result
also goes to /dev/termination-log, so ``kubectl describe pod`` shows it and the operator
can name the cause of a failure even when the status could not be written.

Transient API errors (connection errors, 429, 5xx) are retried with a bounded backoff
(``RETRIES`` tries after the first, doubling from ``retry_delay`` up to 15 s, or the
server's Retry-After). A transient error never ends the process with a code a Job takes
as final (docs/trainer.md, "Exit codes"): past the retries, the start and per-epoch
writes are skipped (the operator sets Running from the Job; the next write carries the
history), the result still reaches the trial through the termination message, and a
trial that could not be read at all exits ``ApiUnavailable`` (75), which the Job retries.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from kubenas.contract import API_UNAVAILABLE, EARLY_STOPPED, GROUP, HISTORY_LIMIT, INTERNAL_ERROR, RUNNING, TRIAL_PLURAL
from kubenas.contract import TRIAL_TERMINAL as TERMINAL
from kubenas.contract import VERSION
from kubenas.contract import artifacts as art
from kubenas.contract.artifacts import CHECKPOINT_FILE, MODELS_NONE
from kubenas.contract.oneshot import is_weight_sharing
from kubenas.contract.result import (TrialResult, failed_result, status_fields, termination_message, timestamp,
                                     without_non_finite)

from kubenas_trainer import errors
from kubenas_trainer.reporting.artifacts import Policy, publish_result

log = logging.getLogger("kubenas.trainer")

PLURAL = TRIAL_PLURAL
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
TERMINATION_LOG = "/dev/termination-log"
REQUEST_TIMEOUT = (10.0, 60.0)  # connect, read seconds
RETRIES = 6                # tries after the first: 1+2+4+8+15+15 s, about 45 s of an outage
MAX_RETRY_DELAY = 15.0
TRANSIENT_STATUSES = (429, 500, 502, 503, 504)


def transient(err: BaseException) -> bool:
    """An API error that may go away by retrying: a connection error, 429, or a 5xx."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(err, ApiException):
        return err.status in TRANSIENT_STATUSES
    return isinstance(err, OSError) or "urllib3" in type(err).__module__  # urllib3's errors are not OSErrors


def _retry_after(err: BaseException) -> float | None:
    """The server's Retry-After (seconds) on a 429 or 503, if it sent one."""
    headers = getattr(err, "headers", None) or {}
    try:
        return float(headers.get("Retry-After"))
    except (TypeError, ValueError):
        return None


def _describe(err: BaseException) -> str:
    status = getattr(err, "status", None)
    return f"{status} {getattr(err, 'reason', '')}".strip() if status else f"{type(err).__name__}: {err}"


def cluster_namespace(env=os.environ, sa_file: str = SA_NAMESPACE_FILE) -> str | None:
    if env.get("POD_NAMESPACE"):
        return env["POD_NAMESPACE"]
    try:
        return Path(sa_file).read_text().strip() or None
    except OSError:
        return None


def default_api_client():
    from kubernetes import client, config

    conf = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=conf)
    else:
        config.load_kube_config(client_configuration=conf)
    api = client.ApiClient(conf)
    api.user_agent = "kubenas-trainer"
    return api


class KubernetesReporter:
    """Reports one trial's progress and result into its NASTrial status."""

    def __init__(self, namespace: str, name: str, api_client=None, *, min_interval: float = 10.0,
                 clock=time.monotonic, retries: int = RETRIES, retry_delay: float = 1.0):
        from kubernetes import client

        self.namespace, self.name = namespace, name
        self.api = client.CustomObjectsApi(api_client or default_api_client())
        self.min_interval = min_interval
        self.clock = clock
        self.retries, self.retry_delay = retries, retry_delay
        self.history: list[dict] = []
        self._flushed = 0          # history entries already written
        self._last_flush: float | None = None
        self.stop_requested = False

    # ------------------------------------------------------------------ API calls

    def _call(self, fn, *args):
        """Retry transient failures (connection errors, 5xx, 429) with a bounded backoff."""
        delay = self.retry_delay
        for attempt in range(self.retries + 1):
            try:
                # A deadline on each try: a half-open connection must not hold the final write for ever.
                return fn(*args, _request_timeout=REQUEST_TIMEOUT)
            except Exception as err:  # noqa: BLE001 - sorted by transient()
                if not transient(err) or attempt == self.retries:
                    raise
                wait = min(max(delay, _retry_after(err) or 0.0), MAX_RETRY_DELAY)
                log.warning("%s/%s: transient API error (%s), retry %d of %d in %.1fs", self.namespace, self.name,
                            _describe(err), attempt + 1, self.retries, wait)
            time.sleep(wait)
            delay = min(delay * 2, MAX_RETRY_DELAY)
        raise RuntimeError("unreachable")

    def get(self) -> dict:
        return self._call(self.api.get_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, self.name)

    def _patch(self, status: dict, resource_version: str | None = None) -> dict:
        body: dict = {"status": without_non_finite(status)}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self._call(self.api.patch_namespaced_custom_object_status, GROUP, VERSION, self.namespace, PLURAL,
                          self.name, body)

    def _patch_unless_terminal(self, status: dict) -> dict | None:
        """Conditional patch; None if the trial is already terminal (someone else decided)."""
        from kubernetes.client.exceptions import ApiException

        for _ in range(5):
            current = self.get()
            phase = (current.get("status") or {}).get("phase")
            if phase in TERMINAL:
                if phase == EARLY_STOPPED:
                    self.stop_requested = True
                return None
            try:
                return self._patch(status, (current.get("metadata") or {}).get("resourceVersion"))
            except ApiException as err:
                # 403 once the trial has ended (admission: its status is the operator's then),
                # e.g. our own write applied and its answer lost: nothing more to write.
                if err.status == 403 and (self.get().get("status") or {}).get("phase") in TERMINAL:
                    return None
                if err.status != 409:
                    raise
        raise RuntimeError(f"trial {self.namespace}/{self.name} keeps changing; giving up the status write")

    # -------------------------------------------------------------- the reporter

    def load_trial(self) -> dict:
        """The trial spec (the trainer's input), with its name."""
        trial = self.get()
        spec = dict(trial.get("spec") or {})
        spec.setdefault("name", self.name)
        if (trial.get("status") or {}).get("phase") == EARLY_STOPPED:
            self.stop_requested = True
        return spec

    def start(self) -> None:
        """``phase: Running`` and ``startTime``: progress, not the result. An API server still
        unreachable after the retries does not stop training (the operator sets both from
        the Job)."""
        try:
            self._patch_unless_terminal({"phase": RUNNING, "startTime": timestamp()})
        except Exception as err:  # noqa: BLE001
            if not transient(err):
                raise
            log.warning("cannot report the start of %s/%s (%s); training goes on", self.namespace, self.name,
                        _describe(err))

    def _flush(self) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            answer = self._patch({"history": self.history[:HISTORY_LIMIT]})
        except ApiException as err:
            # Admission refuses every write once the trial has ended (the operator stopped
            # it early): that is the answer "stop", not a failure to report.
            if err.status != 403 or (self.get().get("status") or {}).get("phase") not in TERMINAL:
                raise
            self.stop_requested = True
            return
        self._flushed = len(self.history)
        self._last_flush = self.clock()
        if ((answer or {}).get("status") or {}).get("phase") == EARLY_STOPPED:
            self.stop_requested = True

    def epoch(self, record: dict) -> str | None:
        self.history.append(without_non_finite(dict(record)))
        due = self._last_flush is None or self.clock() - self._last_flush >= self.min_interval
        if due:
            try:
                self._flush()
            except Exception as err:  # noqa: BLE001 - progress is best effort; the result is not
                log.warning("cannot report epoch %s: %s", record.get("epoch"), err)
        return "stop" if self.stop_requested else None

    def final(self, result: TrialResult) -> None:
        """The result into the status (kubenas.contract.result.status_fields), unless the trial has ended."""
        if self._patch_unless_terminal(status_fields(result, history=self.history)) is None:
            log.info("trial %s/%s was already finished; result not written", self.namespace, self.name)


def write_termination_log(result: TrialResult, path: str = TERMINATION_LOG) -> None:
    try:
        with open(path, "w") as f:
            f.write(termination_message(result))
    except OSError:
        pass  # not in a pod (or no writable termination log): nothing to do


def main_from_cluster(args=None, *, env=os.environ, api_client=None, termination_log: str = TERMINATION_LOG,
                      run=None, retry_delay: float = 1.0) -> int:
    """`kubenas-train --from-cluster`; returns the exit code (``kubenas.contract.EXIT_TABLE``).

    Never raises for what happens to the trial: an exception of its own after the trial
    was read is an InternalError result, written to the termination log and the status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    namespace, name = cluster_namespace(env), env.get("KUBENAS_TRIAL")
    if not namespace or not name:
        result = failed_result(errors.INVALID_TRIAL, "--from-cluster needs $KUBENAS_TRIAL and $POD_NAMESPACE "
                                              "(or a ServiceAccount namespace file)")
        write_termination_log(result, termination_log)
        print(f"kubenas-train: {result['message']}", file=sys.stderr)
        return errors.exit_code(result)
    interval = float(env.get("KUBENAS_REPORT_INTERVAL_SECONDS", "10"))
    reporter = KubernetesReporter(namespace, name, api_client, min_interval=interval, retry_delay=retry_delay)
    try:
        trial = reporter.load_trial()
    except Exception as err:  # noqa: BLE001
        # Unreachable past the retries: a new pod may do better (75 is not final); anything
        # else (no such trial, not allowed, garbage) will not change by retrying.
        reason = API_UNAVAILABLE if transient(err) else errors.INVALID_TRIAL
        result = failed_result(reason, f"cannot read NASTrial {namespace}/{name}: {err}")
        write_termination_log(result, termination_log)
        print(f"kubenas-train: {result['message']}", file=sys.stderr)
        return errors.exit_code(result)
    if reporter.stop_requested:
        return 0
    try:
        result = _run(reporter, trial, env, name, run)
    except Exception as err:  # noqa: BLE001 - a bug of ours: still a result, with where it happened
        log.exception("trial %s/%s: the trainer failed", namespace, name)
        tb = traceback.extract_tb(err.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        result = failed_result(INTERNAL_ERROR, f"{type(err).__name__}: {err}{where}")
    write_termination_log(result, termination_log)
    try:
        reporter.final(result)
    except Exception as err:  # noqa: BLE001 - the operator then reads the result from the termination log
        log.error("cannot write the result to NASTrial %s/%s: %s", namespace, name, err)
    print(f"kubenas-train: {namespace}/{name} {result.get('status')}"
          + (f" ({result['reason']})" if result.get("reason") else "")
          + (f", reward {result['reward']:.4f}" if isinstance(result.get("reward"), float) else ""), file=sys.stderr)
    return errors.exit_code(result)


def _run_oneshot(trial: dict, reporter: KubernetesReporter, name: str, policy: Policy | None,
                 model_dir: str | None) -> TrialResult:
    """A supernet or score trial (kubenas_trainer.models.supernet.run_oneshot_trial). The
    supernet's checkpoint is kept in the experiment's artifacts after every epoch
    (``<trial>/checkpoint.pt``, where score trials read it), so a replaced pod resumes it."""
    from kubenas_trainer.models.supernet import run_oneshot_trial

    if policy is not None:
        store = art.join(policy.root, name, CHECKPOINT_FILE)
    elif model_dir:
        store = str(Path(model_dir) / name / CHECKPOINT_FILE)
    else:
        return failed_result(errors.INVALID_TRIAL, "spec.artifacts: a one-shot experiment keeps its supernet's "
                             "weights there (the score trials read them, a replaced pod resumes from them); set "
                             "spec.artifacts on the experiment")
    local = Path(tempfile.mkdtemp(prefix="kubenas-supernet-")) / CHECKPOINT_FILE
    result = run_oneshot_trial(trial, local, store=store, on_epoch=reporter.epoch)
    if policy is not None:
        result = publish_result(policy, name, trial, result, None)
    return result


def _run(reporter: KubernetesReporter, trial: dict, env, name: str, run) -> TrialResult:
    """Report the start, run the trial, publish its outputs (spec.artifacts): its result."""
    namespace = reporter.namespace
    reporter.start()
    model_dir = env.get("KUBENAS_MODEL_DIR")
    policy = Policy.from_env(env)
    if run is None and is_weight_sharing(trial):  # a one-shot supernet or score trial
        return _run_oneshot(trial, reporter, name, policy, model_dir)
    if run is None:
        from kubenas_trainer.training.loop import run_trial as run  # torch only once there is a trial to run
    if model_dir:
        model_path = Path(model_dir) / name / "model.pt"
    elif policy is not None and policy.models != MODELS_NONE:
        model_path = Path(tempfile.mkdtemp(prefix="kubenas-model-")) / "model.pt"  # /tmp: an emptyDir
    else:
        model_path = None
    if model_path is not None:
        model_path.parent.mkdir(parents=True, exist_ok=True)
    # trial.checkpoint.save: written beside the model, kept by publishing it to spec.artifacts.
    folder = model_path.parent if model_path is not None else Path(tempfile.mkdtemp(prefix="kubenas-checkpoint-"))
    kwargs = {"checkpoint_path": folder / CHECKPOINT_FILE} if (trial.get("checkpoint") or {}).get("save") else {}
    result = run(trial, on_epoch=reporter.epoch, model_path=model_path, **kwargs)
    if result.get("checkpoint") and policy is None and not model_dir:
        log.warning("trial %s/%s: checkpoint.save without spec.artifacts: the checkpoint is not kept", namespace,
                    name)
    if policy is not None:
        result = publish_result(policy, name, trial, result, model_path)
    return result
