"""Where results are read from: a local run directory or a NASExperiment on a cluster.

Both are read as trials.jsonl rows (a NASTrial through
``kubenas.experiment.row_from_trial_object``), so every command ranks, prints, exports
and plots both modes with the same code. A target that is an existing directory is a
run directory; anything else is an experiment name on the cluster, found the way
kubectl finds things (``--kubeconfig`` or $KUBECONFIG or ~/.kube/config, ``--context``,
``-n`` or the context's namespace).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kubenas.contract import (EXPERIMENT_PLURAL, EXPERIMENT_TERMINAL, FAILED, RUNNING, TRIAL_ACTIVE,
                              TRIAL_PLURAL, TRIAL_TERMINAL)

WATCH_SECONDS = 5        # a cluster watch is renewed (and the experiment's phase read) this often
LOCAL_POLL_SECONDS = 0.5  # a local run's trials.jsonl is read this often while following it


class CliError(Exception):
    """A one-line error for the user, naming the fix."""


@dataclass
class Snapshot:
    """What a follower sees at one moment."""

    rows: list[dict]          # every trial known, finished or not, as trials.jsonl rows
    phase: str | None         # the experiment's phase (None: not started)
    message: str = ""

    @property
    def over(self) -> bool:
        return self.phase in EXPERIMENT_TERMINAL


def objective(spec: dict) -> tuple[str, str]:
    """(metric, goal) of an experiment spec, defaults filled."""
    from kubenas.api.defaults import with_defaults

    try:
        filled = with_defaults(spec)
        return filled["objective"]["metric"], filled["objective"]["goal"]
    except Exception:  # noqa: BLE001 - a half-written spec must not stop reading results
        obj = spec.get("objective") or {}
        return obj.get("metric", "accuracy"), obj.get("goal", "maximize")


def pareto_costs(spec: dict) -> list[str]:
    """``objective.pareto`` of an experiment spec: the costs of a Pareto search, or []."""
    pareto = (spec.get("objective") or {}).get("pareto") if isinstance(spec, dict) else None
    return [m for m in pareto if isinstance(m, str)] if isinstance(pareto, list) else []


# ------------------------------------------------------------------------------ local


class LocalRun:
    """A run directory written by ``kubenas run``."""

    def __init__(self, path: str):
        from kubenas.local.rundir import RunDir

        self.run_dir = RunDir(path)
        self.where = str(path)
        if not self.run_dir.experiment_file.exists() and not self.run_dir.trials_file.exists():
            raise CliError(f"{path} is not a kubenas run directory (no experiment.yaml or trials.jsonl); "
                           "pass the --run-dir of a `kubenas run`, or an experiment name on the cluster")
        experiment = self._experiment()
        self.name = (experiment.get("metadata") or {}).get("name") or Path(path).name
        self.spec = experiment.get("spec") or {}
        self.metric, self.goal = objective(self.spec)
        self.pareto = pareto_costs(self.spec)

    def _experiment(self) -> dict:
        import yaml

        try:
            return yaml.safe_load(self.run_dir.experiment_file.read_text()) or {}
        except (OSError, yaml.YAMLError):
            return {}

    def rows(self) -> list[dict]:
        return self.run_dir.finished()

    def state(self) -> dict:
        try:
            return self.run_dir.load_state()
        except (OSError, json.JSONDecodeError):
            return {}

    def snapshot(self) -> Snapshot:
        state = self.state()
        return Snapshot(self.rows(), state.get("phase"), state.get("message") or state.get("reason") or "")

    def follow(self) -> Iterator[Snapshot]:
        """Snapshots while the run goes on; ends when it has ended (or is not running)."""
        last = None
        while True:
            snap = self.snapshot()
            key = (len(snap.rows), snap.phase)
            if key != last:
                last = key
                yield snap
            if snap.over or (snap.phase == RUNNING and self.state().get("reason") == "Interrupted"):
                return
            time.sleep(LOCAL_POLL_SECONDS)

    def experiments(self) -> list[dict]:
        """This run as one NASExperiment-like summary (for ``kubenas get``)."""
        from kubenas.local.summary import best_trial

        rows = self.rows()
        best = best_trial(rows, self.goal)
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.get("status")] = counts.get(row.get("status"), 0) + 1
        state = self.state()
        return [{"namespace": None, "name": self.name, "phase": state.get("phase") or "-",
                 "strategy": (self.spec.get("strategy") or {}).get("type", "-"),
                 "succeeded": counts.get("Succeeded", 0), "running": 0, "failed": counts.get(FAILED, 0),
                 "max": (self.spec.get("budget") or {}).get("maxTrials"),
                 "best": best and best.get("reward"), "bestTrial": best and best.get("name")}]

    def log(self, trial: str) -> str:
        path = self.run_dir.trial_dir(trial) / "log.txt"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            raise CliError(f"no trial {trial} in {self.where} (no {path}); list the trials with "
                           f"`kubenas top {self.where}`") from None


# ---------------------------------------------------------------------------- cluster


def connect(kubeconfig: str | None, context: str | None):
    """A Kube client for the kubeconfig and context a user would give kubectl, and the
    context's namespace (None if it names none)."""
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    from kubenas.cluster.kube import Kube

    path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or None
    shown = path or "~/.kube/config"
    if path is None and not Path(os.path.expanduser("~/.kube/config")).exists():
        raise CliError("no kubeconfig: set KUBECONFIG or pass --kubeconfig FILE (or give a run directory "
                       "such as runs/demo to read a local run)")
    if path is not None and not Path(path).exists():
        raise CliError(f"kubeconfig {path} does not exist; pass --kubeconfig an existing file")
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=path)
        chosen = current
        if context:
            chosen = next((c for c in contexts if c.get("name") == context), None)
            if chosen is None:
                names = ", ".join(sorted(c.get("name", "") for c in contexts)) or "none"
                raise CliError(f"--context {context} is not in {shown} (it has: {names}); pass one of those")
        api = k8s_config.new_client_from_config(config_file=path, context=context)
    except ConfigException as err:
        raise CliError(f"cannot use kubeconfig {shown}: {err}; fix it, or pass --kubeconfig/--context") from None
    from kubenas.cluster.kube import KUBENAS_VERSION

    api.user_agent = f"kubenas-cli/{KUBENAS_VERSION}"
    if not api.configuration.verify_ssl:  # the kubeconfig's insecure-skip-tls-verify: true
        quiet_unverified_tls(api.configuration.host)
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return Kube("cli", api=api), namespace


def quiet_unverified_tls(server: str) -> None:
    """Silence urllib3's InsecureRequestWarning for ``server`` only: its kubeconfig says
    ``insecure-skip-tls-verify: true``, the user's choice, which kubectl honours silently
    (urllib3 warned twice per request). Any other host still warns."""
    import re
    import warnings
    from urllib.parse import urlsplit

    from urllib3.exceptions import InsecureRequestWarning

    host = urlsplit(server).hostname or ""
    warnings.filterwarnings("ignore", message=f"Unverified HTTPS request is being made to host '{re.escape(host)}'",
                            category=InsecureRequestWarning)


def api_error(err, what: str, namespace: str | None) -> CliError:
    """An API or connection error as a one-liner naming the fix."""
    from kubernetes.client.exceptions import ApiException

    where = f" in namespace {namespace}" if namespace else ""
    if isinstance(err, ApiException):
        reason = _server_message(err)
        if err.status == 401:
            return CliError(f"unauthorized: the API server refused these credentials ({reason}); refresh them "
                            "or pick another --context")
        if err.status == 403:
            return CliError(f"forbidden: cannot {what}{where} ({reason}); ask an admin for read access to "
                            "nasexperiments and nastrials there (docs/cli.md), or pass -n a namespace you "
                            "may read")
        if err.status == 404:
            return CliError(f"the API server has no kubenas.io resources ({reason}); install kubenas first "
                            "(kubectl apply -k deploy/, docs/cluster.md) or pick the right --context")
        return CliError(f"cannot {what}{where}: HTTP {err.status} {reason}")
    return CliError(f"cannot reach the API server to {what} ({type(err).__name__}: {str(err)[:200]}); "
                    "check that the cluster is up and the --context/--kubeconfig is the right one")


def _server_message(err) -> str:
    try:
        return json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


class _Calls:
    """Run an API call, turning every failure into a CliError."""

    def __init__(self, namespace: str | None):
        self.namespace = namespace

    def __call__(self, what: str, call, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return call(*args, **kwargs)
        except (ApiException, HTTPError, OSError) as err:
            raise api_error(err, what, self.namespace) from None


class ClusterExperiment:
    """A NASExperiment and its NASTrials."""

    def __init__(self, kube, namespace: str, name: str):
        from kubenas.cluster.objects import accepted_spec, experiment_selector

        self.kube, self.namespace, self.name = kube, namespace, name
        self.where = f"{namespace}/{name}"
        self.call = _Calls(namespace)
        self.selector = experiment_selector(name)
        experiment = self.call(f"get nasexperiment {name}", kube.get_custom, EXPERIMENT_PLURAL, namespace, name)
        if experiment is None:
            raise CliError(f"nasexperiment {name} not found in namespace {namespace}; list them with "
                           f"`kubenas get -n {namespace}` (or pass -n, or a run directory)")
        self.experiment = experiment
        self.spec = accepted_spec(experiment) or experiment.get("spec") or {}
        self.metric, self.goal = objective(self.spec)
        self.pareto = pareto_costs(self.spec)

    def _trials(self) -> tuple[list[dict], str | None]:
        items, version = self.call("list nastrials", self.kube.list_custom_with_version, TRIAL_PLURAL,
                                   self.namespace, self.selector)
        return [t for t in items if (t.get("spec") or {}).get("experiment") == self.name], version

    def _experiment_status(self) -> dict:
        found = self.call(f"get nasexperiment {self.name}", self.kube.get_custom, EXPERIMENT_PLURAL,
                          self.namespace, self.name)
        if found is None:
            raise CliError(f"nasexperiment {self.name} was deleted from namespace {self.namespace}")
        self.experiment = found
        return found.get("status") or {}

    def rows(self) -> list[dict]:
        from kubenas.experiment import row_from_trial_object

        return [row_from_trial_object(t) for t in sorted(self._trials()[0], key=_index)]

    def snapshot(self) -> Snapshot:
        status = self._experiment_status()
        return Snapshot(self.rows(), status.get("phase"), status.get("message") or "")

    def follow(self) -> Iterator[Snapshot]:
        """A snapshot now, then one per change of a trial (a WATCH of the experiment's
        NASTrials from the list's version, renewed every WATCH_SECONDS, when the
        experiment's phase is read again); ends when the experiment has ended."""
        from kubernetes.client.exceptions import ApiException

        from kubenas.experiment import row_from_trial_object

        from urllib3.exceptions import HTTPError

        trials: dict[str, dict] = {}
        version = None
        while True:
            status = self._experiment_status()
            if version is None or status.get("phase") in EXPERIMENT_TERMINAL:
                # (list again at the end too: trials stopped as the experiment ended)
                items, version = self._trials()
                trials = {t["metadata"]["name"]: t for t in items}
            snap = Snapshot([row_from_trial_object(t) for t in sorted(trials.values(), key=_index)],
                            status.get("phase"), status.get("message") or "")
            yield snap
            if snap.over:
                return
            try:
                for event in self.kube.watch_custom(TRIAL_PLURAL, self.namespace, self.selector, version,
                                                    timeout_seconds=WATCH_SECONDS):
                    obj = event.get("object") or {}
                    meta = obj.get("metadata") or {}
                    if event.get("type") == "ERROR":
                        version = None  # 410 Gone and the like: list again
                        break
                    version = meta.get("resourceVersion") or version
                    if event.get("type") == "BOOKMARK":
                        continue
                    if event.get("type") == "DELETED":
                        trials.pop(meta.get("name"), None)
                    elif (obj.get("spec") or {}).get("experiment") == self.name:
                        trials[meta["name"]] = obj
                    yield Snapshot([row_from_trial_object(t) for t in sorted(trials.values(), key=_index)],
                                   status.get("phase"), status.get("message") or "")
            except ApiException as err:
                if err.status != 410:
                    raise api_error(err, "watch nastrials", self.namespace) from None
                version = None  # 410 Gone: the version is too old; list again
            except (HTTPError, OSError):
                version = None  # the stream broke (a stalled or dropped connection): list again

    def experiments(self) -> list[dict]:
        return [experiment_summary(self.experiment)]

    def log(self, trial: str) -> str:
        return trial_log(self.kube, self.namespace, trial)


def _index(trial: dict) -> int:
    index = (trial.get("spec") or {}).get("index")
    return index if isinstance(index, int) else -1


def experiment_summary(exp: dict) -> dict:
    """The columns ``kubenas get`` shows of one NASExperiment."""
    status = exp.get("status") or {}
    spec = exp.get("spec") or {}
    trials = status.get("trials") or {}
    best = status.get("bestTrial") or {}
    return {"namespace": exp["metadata"].get("namespace"), "name": exp["metadata"]["name"],
            "phase": status.get("phase") or "-", "strategy": (spec.get("strategy") or {}).get("type", "-"),
            "succeeded": trials.get("succeeded", 0), "running": trials.get("running", 0),
            "failed": trials.get("failed", 0), "max": (spec.get("budget") or {}).get("maxTrials"),
            "best": best.get("reward"), "bestTrial": best.get("name")}


def list_experiments(kube, namespace: str | None) -> list[dict]:
    """Every NASExperiment of a namespace (None: of all namespaces), summarised."""
    call = _Calls(namespace)
    what = "list nasexperiments" + ("" if namespace else " in all namespaces")
    items = call(what, lambda: list(kube.iter_custom(EXPERIMENT_PLURAL, namespace)))
    return [experiment_summary(e) for e in sorted(items, key=lambda e: (e["metadata"].get("namespace", ""),
                                                                        e["metadata"]["name"]))]


def trial_log(kube, namespace: str, trial: str) -> str:
    """The log of the newest pod of a trial's Job (``kubectl logs job/<jobName>``)."""
    call = _Calls(namespace)
    obj = call(f"get nastrial {trial}", kube.get_custom, TRIAL_PLURAL, namespace, trial)
    if obj is None:
        raise CliError(f"nastrial {trial} not found in namespace {namespace}; list trials with "
                       f"`kubenas top EXPERIMENT -n {namespace}`")
    job = (obj.get("status") or {}).get("jobName") or trial
    pods = call(f"list the pods of job {job}", kube.list_pods, namespace, f"job-name={job}")
    if not pods:
        phase = (obj.get("status") or {}).get("phase")
        more = (" (finished trials' pods go when their Job is deleted)" if phase in TRIAL_TERMINAL
                else " (not started yet)" if phase in TRIAL_ACTIVE else "")
        raise CliError(f"trial {trial} has no pod in namespace {namespace}{more}; its result is in "
                       f"`kubectl get nastrial {trial} -n {namespace} -o yaml`")
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    name = pod["metadata"]["name"]
    return call(f"read the log of pod {name}", kube.core.read_namespaced_pod_log, name, namespace,
                _request_timeout=60)


# ------------------------------------------------------------------------------ choose


def open_source(target: str, args) -> LocalRun | ClusterExperiment:
    """A run directory when ``target`` is one, else the experiment ``target`` on the cluster."""
    if os.path.isdir(target):
        return LocalRun(target)
    if os.sep in target or target.startswith("."):
        raise CliError(f"{target}: no such run directory; pass the --run-dir of a `kubenas run`, or an "
                       "experiment name on the cluster")
    kube, namespace = connect(args.kubeconfig, args.context)
    return ClusterExperiment(kube, args.namespace or namespace or "default", target)
