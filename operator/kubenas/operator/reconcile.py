"""The operator's reconcilers: thin glue between the pure decisions and the API.

Everything here is idempotent and level-triggered: it reads what is, decides with the
pure functions (trial_state, status, budget, changes, manifests) and writes only the
differences. 404 and 409 are expected answers. Killing the operator at any point and
running these again converges to the same state, with no duplicate Job (Jobs are named
after their trial) and no lost result (results live in NASTrial.status).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from kubernetes.client.exceptions import ApiException

from kubenas.api.defaults import with_defaults
from kubenas.api.policy import (CREATED_BY, CREATED_BY_GROUPS, POLICY_NAME, REQUESTER_POLICY,
                                REQUESTER_POLICY_MARGIN_SECONDS, Requester, TenancyPolicy, policy_issues,
                                reference_issues, references)
from kubenas.api.validation import Issue, validate_experiment
from kubenas.cluster.kube import Kube, post_event
from kubenas.cluster.objects import (FOREIGN, OURS, accepted_spec, accepted_spec_text, events_about,
                                     owned_by, owned_pods, ownership)
from kubenas.contract import (
    API_VERSION,
    EARLY_STOPPED,
    EXPERIMENT_KIND,
    EXPERIMENT_PLURAL,
    EXPERIMENT_TERMINAL,
    FAILED,
    NAME_CONFLICT,
    RUNNING,
    SUCCEEDED,
    TRIAL_KIND,
    TRIAL_PLURAL,
)
from kubenas.contract import TRIAL_ACTIVE as ACTIVE
from kubenas.contract import TRIAL_TERMINAL as TERMINAL
from kubenas.contract.reasons import (DEPLOY_REFUSED, DEPLOY_WAITING, DEPLOYED, INVALID_SPEC, JOB_REFUSED,
                                      POLICY_DENIED)
from kubenas.experiment import (Outcome, TrialRecord, acknowledged, elapsed_seconds, now_iso, parse_time)
from kubenas.experiment.plan import plan_for

from . import deploying
from . import metrics
from . import tenancy
from .changes import compare
from .events import EventBudget, with_suppressed
from .manifests import (Settings, controller_deployment, controller_name, job_for_trial, namespace_role_bindings,
                        namespace_service_accounts)
from .status import fold, get_condition, model_location, set_condition, status_patch, trial_details
from .trial_state import (TrialAction, TrialObservation, decide, needs_events, needs_pods, pod_refusal,
                          twin_candidate)

log = logging.getLogger("kubenas.operator")

COMPONENT = "operator"
TRIAL_LOCKS = 64  # striped: a lock per trial would grow with the number of trials

# Answers that will not change by retrying: the same Job (or accepted spec) would be
# refused again, so the trial (or experiment) ends, with the API server's reason.
PERMANENT = (400, 422)
BOUNDS_POLICY_SECONDS = 10.0  # how stale the per-namespace bounds may be (the policy ConfigMap, read again)


def api_message(err: ApiException) -> str:
    """The API server's own message in an error answer (its Status object), else the reason."""
    try:
        return str(json.loads(err.body or "{}").get("message") or err.reason)
    except (TypeError, ValueError, AttributeError):
        return str(err.reason)


def job_refused(name: str, err: ApiException, now: str) -> TrialAction:
    message = f"the API server refused the trial's Job ({err.status} {err.reason}): {api_message(err)}"[:1000]
    return TrialAction(status={"phase": FAILED, "reason": JOB_REFUSED, "message": message, "completionTime": now},
                       event=("Warning", JOB_REFUSED, f"trial {name}: {message}"))


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def _experiment_owner(exp: dict) -> dict:
    """The experiment as the owner its objects name (kind and apiVersion filled in)."""
    return {**exp, "apiVersion": exp.get("apiVersion", API_VERSION), "kind": exp.get("kind", EXPERIMENT_KIND)}


def _clean_experiment(exp: dict) -> dict:
    """The parts of a stored experiment that validation looks at (no status, no server metadata)."""
    return {"apiVersion": exp.get("apiVersion", API_VERSION), "kind": exp.get("kind", EXPERIMENT_KIND),
            "metadata": {"name": exp["metadata"]["name"]}, "spec": exp.get("spec")}


class Reconciler:
    def __init__(self, kube: Kube, settings: Settings | None = None, *, manage_rbac: bool = True):
        self.kube = kube
        self.settings = settings or Settings()
        self.manage_rbac = manage_rbac
        self._locks: dict = {}  # per experiment
        self._locks_guard = threading.Lock()
        # Trials share a fixed set of locks. Trial reconciles never nest, and an
        # experiment's reconcile takes its own lock before any trial's, so no cycle.
        self._trial_locks = [threading.Lock() for _ in range(TRIAL_LOCKS)]
        self._namespaces_ready: set[str] = set()
        self._controllers_deleted: set[tuple[str, str]] = set()  # finished experiments
        # Running experiments whose controller Deployment this operator created or found
        # (409) since the last full resync: not created again on every fold (each was a
        # 409 on a real API server). A full resync clears it, so a deleted Deployment
        # comes back within KUBENAS_RESYNC_SECONDS.
        self._controllers_ensured: set[tuple[str, str]] = set()
        self.event_budget = EventBudget()
        # Per-namespace bounds (tenancy.py): set by the operator (handlers.App) to slots
        # that count from its Book; None (tests of single objects): no bounds.
        self.slots: tenancy.Slots | None = None
        self._bounds_policy: tuple[float, TenancyPolicy | None] = (0.0, None)

    def lock(self, kind: str, namespace: str, name: str) -> threading.Lock:
        if kind == "trial":
            return self._trial_locks[zlib.crc32(f"{namespace}/{name}".encode()) % TRIAL_LOCKS]
        with self._locks_guard:
            return self._locks.setdefault((kind, namespace, name), threading.Lock())

    def forget(self, kind: str, namespace: str, name: str) -> None:
        with self._locks_guard:
            self._locks.pop((kind, namespace, name), None)
        self._controllers_deleted.discard((namespace, name))
        self._controllers_ensured.discard((namespace, name))
        if kind == "experiment":
            self.event_budget.forget((namespace, name))

    def new_full_pass(self) -> None:
        """A full resync starts: check again that each running experiment's controller
        Deployment exists (one create each, answered 409 when it does)."""
        self._controllers_ensured.clear()

    def event(self, obj: dict, type_: str, reason: str, message: str, now: str) -> None:
        """Post an Event; those about trials (on the trial, or ``Trial*`` on its
        experiment) within the experiment's budget (events.py)."""
        meta = obj.get("metadata") or {}
        experiment = (obj.get("spec") or {}).get("experiment")  # a NASTrial's
        if experiment is None:
            if not reason.startswith("Trial"):
                post_event(self.kube, obj, type_, reason, message, COMPONENT, now)
                return
            experiment = meta.get("name")
        suppressed = self.event_budget.take((meta.get("namespace"), experiment))
        if suppressed is None:
            log.info("Event %s about %s/%s not posted (rate limit): %s", reason, meta.get("namespace"),
                     meta.get("name"), message)
            return
        post_event(self.kube, obj, type_, reason, with_suppressed(message, suppressed), COMPONENT, now)

    # ================================================================= experiments

    def experiment(self, namespace: str, name: str, summaries: list[TrialRecord], now: datetime | None = None) -> None:
        """Reconcile one experiment, read fresh from the API."""
        with self.lock("experiment", namespace, name):
            exp = self.kube.get_custom(EXPERIMENT_PLURAL, namespace, name)
            if exp is None or (exp.get("metadata") or {}).get("deletionTimestamp"):
                return
            self._experiment(exp, summaries, _now(now))

    def _experiment(self, exp: dict, summaries: list[TrialRecord], now_dt: datetime) -> None:
        """A finished experiment is tidied; a new one judged (accepted or refused); an
        accepted one runs or ends (the plan's outcome)."""
        now = now_iso(now_dt)
        status = exp.get("status") or {}
        accepted = accepted_spec(exp)
        if status.get("phase") in EXPERIMENT_TERMINAL:
            self._finished_experiment(exp, status, summaries, accepted, now)
            return
        conditions = status.get("conditions") or []
        if accepted is None:
            judged = self._judge(exp, status, conditions, now)
            if judged is None:
                return
            accepted, status, conditions = judged
        else:
            accepted, conditions = self._spec_change(exp, accepted, conditions, now, exp["metadata"].get("generation"))
        self._run_or_end(exp, status, conditions, accepted, summaries, now_dt)

    def _finished_experiment(self, exp: dict, status: dict, summaries: list[TrialRecord], accepted: dict | None,
                             now: str) -> None:
        """Finished: the controller goes; late trial changes (stopped trials) still count,
        and a Succeeded experiment's spec.deploy serves its chosen trial."""
        self._delete_controller(exp)
        wanted: dict = {}
        if accepted is not None:
            wanted.update(self._fold(exp["metadata"]["namespace"], status, summaries, accepted))
            self._stop_in_flight(exp["metadata"]["namespace"], summaries, now)
            if accepted.get("deploy") is not None and status.get("phase") == SUCCEEDED:
                wanted["deployment"] = self._deploy(exp, accepted, {**status, **wanted}, now)
        self._patch_status(exp, status, wanted)

    def _judge(self, exp: dict, status: dict, conditions: list, now: str) -> tuple[dict, dict, list] | None:
        """A new experiment: refused (Failed, InvalidSpec or PolicyDenied), or accepted,
        in status (which only the operator writes) before the controller that reads it
        exists. The accepted spec, status and conditions; None when it was not accepted
        (refused, waiting for room in its namespace, or the write did not happen)."""
        # Beyond its namespace's bound it waits before it is even judged: a tenant's
        # flood costs the operator a slot check and one status write per experiment.
        if self._wait_for_room(exp, status, conditions, {}, now):
            return None
        issues, reason = validate_experiment(_clean_experiment(exp)), INVALID_SPEC
        if not issues:
            policy = self.policy()
            issues, reason = policy_issues(exp["spec"], policy) + self._reference_issues(exp, policy), POLICY_DENIED
        if issues:
            self._refuse(exp, status, conditions, reason, "; ".join(str(issue) for issue in issues[:8]), now)
            return None
        accepted = with_defaults(exp["spec"])
        self._ensure_namespace(exp, now)
        accepting = {"acceptedSpec": accepted_spec_text(accepted),
                     "conditions": set_condition(conditions, "Valid", "True", "SpecAccepted", "the spec is valid",
                                                 now=now, generation=exp["metadata"].get("generation"))}
        try:
            if not self._patch_status(exp, status, accepting):
                return None
        except ApiException as err:
            if err.status not in PERMANENT:
                raise
            # The API server will not store this accepted spec (validation keeps it within
            # the schema's bounds; this is the backstop): the experiment can never start.
            self._refuse(exp, status, conditions, INVALID_SPEC,
                         f"status.acceptedSpec: the API server refused to store the accepted spec "
                         f"({err.status}): {api_message(err)[:2000]}", now)
            return None
        self.event(exp, "Normal", "Accepted",
                   f"spec accepted: {accepted['strategy']['type']} search, up to {accepted['budget']['maxTrials']} "
                   f"trials, {accepted['budget']['parallelTrials']} at a time", now)
        return accepted, {**status, **accepting}, accepting["conditions"]

    def _run_or_end(self, exp: dict, status: dict, conditions: list, accepted: dict, summaries: list[TrialRecord],
                    now_dt: datetime) -> None:
        """An accepted experiment: folded, then Running (its controller there, room in its
        namespace to start) or ended with the plan's outcome (or NameConflict)."""
        meta, now, phase = exp["metadata"], now_iso(now_dt), status.get("phase")
        generation = meta.get("generation")
        self._ensure_namespace(exp, now)
        wanted = self._fold(meta["namespace"], status, summaries, accepted)
        start = status.get("startTime") or now
        outcome = plan_for(accepted).outcome(summaries, elapsed_seconds(start, now_dt))
        if outcome is None and phase != RUNNING:  # to start, it needs room in its namespace
            if self._wait_for_room(exp, status, conditions, wanted, now):
                return
            conditions = tenancy.admitted(conditions, now, generation)
        conflict = None if outcome is not None else self._ensure_controller(exp, accepted, now)
        if conflict is not None:
            outcome = Outcome(FAILED, NAME_CONFLICT, conflict)
        if outcome is None:
            conditions = set_condition(conditions, RUNNING, "True", "TrialsRunning",
                                       "the controller proposes trials", now=now)
            wanted.update({"phase": RUNNING, "startTime": start, "conditions": conditions,
                           "observedGeneration": generation, "message": None})
            if self._patch_status(exp, status, wanted) and phase != RUNNING:
                self.event(exp, "Normal", "Started", "the experiment is running: its controller proposes trials", now)
            return
        # The experiment ends: record why first, then stop the controller and running trials.
        conditions = set_condition(conditions, RUNNING, "False", outcome.reason, outcome.message, now=now)
        conditions = set_condition(conditions, "Complete", "True", outcome.reason, outcome.message, now=now)
        wanted.update({"phase": outcome.phase, "startTime": start, "completionTime": now, "message": outcome.message,
                       "conditions": conditions, "observedGeneration": generation})
        if self._patch_status(exp, status, wanted):
            self.event(exp, "Warning" if outcome.phase == FAILED else "Normal", outcome.reason, outcome.message, now)
            metrics.experiment_finished(meta["namespace"], outcome.phase, outcome.reason)
        self._delete_controller(exp)
        self._stop_in_flight(meta["namespace"], summaries, now)

    def _wait_for_room(self, exp: dict, status: dict, conditions: list, wanted: dict, now: str) -> bool:
        """True when the experiment must wait for room in its namespace (tenancy.py): it
        stays Pending, its status and an Event (the first time) say why."""
        meta = exp["metadata"]
        wait = self._take_slot(tenancy.EXPERIMENT, meta["namespace"], meta["name"])
        if wait is None:
            return False
        before = get_condition(conditions, tenancy.ADMITTED)
        waiting = tenancy.waiting_experiment(conditions, wait, now, meta.get("generation"))
        if self._patch_status(exp, status, {**wanted, **waiting}) and (before or {}).get("status") != "False":
            self.event(exp, "Normal", tenancy.NAMESPACE_BOUND, wait.message, now)
        return True

    def _refuse(self, exp: dict, status: dict, conditions: list, reason: str, message: str, now: str) -> None:
        """The experiment's spec cannot run: Failed, with the reason and an Event."""
        if self.slots is not None:  # the slot it may have taken to be judged goes back
            self.slots.release(tenancy.EXPERIMENT, exp["metadata"]["namespace"], exp["metadata"]["name"])
        generation = exp["metadata"].get("generation")
        conditions = set_condition(conditions, "Valid", "False", reason, message, now=now, generation=generation)
        wanted = {"phase": FAILED, "message": message, "conditions": conditions, "observedGeneration": generation,
                  "completionTime": now}
        if self._patch_status(exp, status, wanted):
            self.event(exp, "Warning", reason, message, now)
            metrics.experiment_finished(exp["metadata"]["namespace"], FAILED, reason)

    def policy(self) -> TenancyPolicy:
        """The cluster admin's policy, read when an experiment is judged (rarely): the
        shipped defaults when its ConfigMap is missing or unreadable."""
        try:
            configmap = self.kube.get("ConfigMap", self.settings.policy_namespace, POLICY_NAME)
        except ApiException as err:
            if err.status != 403:
                raise
            configmap = None
        if configmap is None:
            log.warning("ConfigMap %s/%s not found or not readable: using the shipped tenancy policy",
                        self.settings.policy_namespace, POLICY_NAME)
        policy = TenancyPolicy.from_data((configmap or {}).get("data"))
        self._bounds_policy = (time.monotonic(), policy)  # the latest read: the bounds use it too
        return policy

    def _reference_issues(self, exp: dict, policy: TenancyPolicy) -> list:
        """Without the admission policies (operatorEnforcesLists): may whoever created
        ``exp`` get each Secret, ConfigMap and PVC its trial pods would read?"""
        refs = references(exp["spec"])
        deploy = exp["spec"].get("deploy")
        if (not refs and deploy is None) or not policy.enforces_lists:
            return []
        namespace = exp["metadata"]["namespace"]
        who = self._requester(exp)
        issues = reference_issues(refs, who, lambda who, ref: self.kube.may(
            who.user, who.groups, "get", ref.resource, namespace, ref.name), policy)
        if deploy is not None:  # spec.deploy: the author's own right to create the serving kind
            for group, resource in deploying.needed_rights(deploy):
                if who is None and policy.allows_unchecked_references:
                    continue
                if who is None or not self.kube.may(who.user, who.groups, "create", resource, namespace, "",
                                                    group=group):
                    author = (f"{who.user} may not" if who else "the operator cannot tell who created this "
                              "experiment to check their right to")
                    issues.append(Issue("spec.deploy", f"{author} create {resource}.{group} in namespace {namespace}, "
                                        f"which the operator would create to serve the model: ask a namespace admin "
                                        f"for that right, or set spec.deploy.kind to the kind you may create (auto "
                                        f"needs both)"))
        return issues

    def _requester(self, exp: dict) -> Requester | None:
        """Who created ``exp``, as deploy/requester/'s policy stamped it; None unless that
        policy and its binding were there (by a margin) before ``exp`` was created."""
        meta = exp["metadata"]
        user = (meta.get("annotations") or {}).get(CREATED_BY)
        if not user:
            return None
        since = []
        for plural in ("mutatingadmissionpolicies", "mutatingadmissionpolicybindings"):
            try:
                found = self.kube.get_cluster_object("admissionregistration.k8s.io", plural, REQUESTER_POLICY)
            except ApiException as err:
                if err.status != 403:
                    raise
                found = None
            if found is None or (plural.endswith("bindings") and (found.get("spec") or {}).get("policyName")
                                 != REQUESTER_POLICY):
                return None
            since.append(parse_time(found["metadata"]["creationTimestamp"]))
        if parse_time(meta["creationTimestamp"]) < max(since) + timedelta(seconds=REQUESTER_POLICY_MARGIN_SECONDS):
            return None
        groups = (meta.get("annotations") or {}).get(CREATED_BY_GROUPS) or ""
        return Requester(user, tuple(g for g in groups.split("\n") if g))

    def _ensure_controller(self, exp: dict, accepted: dict, now: str) -> str | None:
        """Create the experiment's controller Deployment, or find it there. None when it
        is this experiment's (or an earlier namesake's the garbage collector is removing:
        the next pass tries again); else why the name is taken (NameConflict)."""
        meta = exp["metadata"]
        key = (meta["namespace"], meta["name"])
        if key in self._controllers_ensured:
            return None
        name = controller_name(key[1])
        if self.kube.create("Deployment", key[0], controller_deployment(exp, accepted, self.settings)):
            self.event(exp, "Normal", "ControllerCreated", f"created controller Deployment {name}", now)
            self._controllers_ensured.add(key)
            return None
        existing = self.kube.get("Deployment", key[0], name)
        whose = OURS if existing is None else ownership(existing, _experiment_owner(exp))
        if whose == OURS:  # gone meanwhile (made again on the next pass), or ours
            self._controllers_ensured.add(key)
        if whose != FOREIGN:
            return None
        return (f"Deployment {name} already exists in namespace {key[0]} and is not this experiment's (no "
                f"ownerReference to NASExperiment {key[1]} uid {meta.get('uid')}); kubenas neither adopts nor "
                f"deletes it: rename the experiment, or have whoever owns that Deployment remove it")

    def _delete_controller(self, exp: dict) -> None:
        """Once per finished experiment and operator lifetime, not on every later fold;
        only a Deployment this experiment owns, and only that very one (uid precondition)."""
        meta = exp["metadata"]
        key = (meta["namespace"], meta["name"])
        if key in self._controllers_deleted:
            return
        existing = self.kube.get("Deployment", key[0], controller_name(key[1]))
        if existing is not None and ownership(existing, _experiment_owner(exp)) == OURS:
            self.kube.delete("Deployment", key[0], controller_name(key[1]), existing["metadata"]["uid"])
        self._controllers_deleted.add(key)

    def _deploy(self, exp: dict, accepted: dict, status: dict, now: str) -> dict | None:
        """spec.deploy: create, replace or keep the serving object of the chosen trial's
        model (deploying.py decides); ``status.deployment`` says which and where."""
        meta = exp["metadata"]
        namespace = meta["namespace"]
        deploy = accepted["deploy"]
        trial = deploying.chosen_trial({**exp, "status": status})
        best = status.get("bestTrial") or {}
        model = best.get("model") if trial == best.get("name") else None
        if trial and trial != best.get("name"):
            model = model_location(self.kube.get_custom(TRIAL_PLURAL, namespace, trial), accepted.get("artifacts"))
        requested = deploy.get("kind") or deploying.KIND_AUTO
        kind = deploying.resolve_kind(deploy, requested == deploying.KIND_AUTO and self.kube.serves(
            deploying.ISVC_GROUP, deploying.ISVC_VERSION, deploying.ISVC_PLURAL))
        name = deploying.serving_name(meta["name"], kind)
        isvc = (deploying.ISVC_GROUP, deploying.ISVC_VERSION, deploying.ISVC_PLURAL, namespace)
        existing = (self.kube.get_object(*isvc, name) if kind == deploying.KIND_ISVC
                    else self.kube.get("Deployment", namespace, name))
        whose = None if existing is None else deploying.serving_ownership(existing, exp)
        decision = deploying.decide(deploy, True, trial, model, existing, whose)
        shown = {"kind": kind, "name": name, "trial": trial, "model": model,
                 "url": deploying.service_url(name, namespace, kind)}
        if decision.action == deploying.NOTHING:
            return status.get("deployment")
        if decision.action == deploying.WAIT:
            return {**shown, "reason": DEPLOY_WAITING, "message": decision.message}
        if decision.action == deploying.CONFLICT:
            message = (f"{kind} {name} already exists in namespace {namespace} and is not this experiment's; "
                       f"kubenas neither adopts nor overwrites it: remove or rename it")
            if (status.get("deployment") or {}).get("reason") != NAME_CONFLICT:
                self.event(exp, "Warning", NAME_CONFLICT, message, now)
            return {**shown, "reason": NAME_CONFLICT, "message": message}
        if decision.action == deploying.KEEP:
            return {**shown, "reason": DEPLOYED, "message": f"serving trial {trial}"}
        try:
            if kind == deploying.KIND_ISVC:
                body = deploying.inference_service(exp, accepted, trial, model)
                if decision.action == deploying.CREATE:
                    self.kube.create_object(*isvc, body)
                else:
                    self.kube.patch_object(*isvc, name, {
                        "metadata": {"annotations": body["metadata"]["annotations"],
                                     "resourceVersion": existing["metadata"]["resourceVersion"]},
                        "spec": body["spec"]})
            else:
                body = deploying.serving_deployment(exp, accepted, trial, model, self.settings)
                if decision.action == deploying.CREATE:
                    self.kube.create("Deployment", namespace, body)
                else:
                    self.kube.patch("Deployment", namespace, name, {
                        "metadata": {"annotations": body["metadata"]["annotations"],
                                     "resourceVersion": existing["metadata"]["resourceVersion"]},
                        "spec": body["spec"]})
                service = self.kube.get("Service", namespace, name)
                if service is None:
                    self.kube.create("Service", namespace, deploying.serving_service(exp, accepted, trial, model))
                elif deploying.serving_ownership(service, exp) != OURS:
                    raise ValueError(f"Service {name} already exists in namespace {namespace} and is not this "
                                     f"experiment's; kubenas neither adopts nor overwrites it: remove or rename it")
        except ValueError as err:
            return {**shown, "reason": DEPLOY_REFUSED, "message": str(err)[:2000]}
        except ApiException as err:
            if err.status not in PERMANENT + (403, 409):
                raise
            return {**shown, "reason": DEPLOY_REFUSED,
                    "message": f"the API server refused the {kind} ({err.status}): {api_message(err)}"[:2000]}
        verb = "deployed" if decision.action == deploying.CREATE else "now serves"
        self.event(exp, "Normal", "Deployed", f"{kind} {name} {verb} trial {trial}", now)
        return {**shown, "reason": DEPLOYED, "message": f"serving trial {trial}"}

    def _fold(self, namespace: str, status: dict, summaries: list[TrialRecord], accepted: dict) -> dict:
        """The trial part of the status; the best trial's details are read from it only
        when the best trial changes (the summaries do not keep them)."""
        previous = status.get("bestTrial") or {}
        artifacts, objective = accepted.get("artifacts"), accepted["objective"]

        def details(name: str) -> dict:
            if previous.get("name") == name:
                return previous
            return trial_details(self.kube.get_custom(TRIAL_PLURAL, namespace, name), artifacts)

        # a candidate run several times (the plan's aggregates): the best trial is the best mean's candidate's
        aggregates = plan_for(accepted).aggregates(summaries)
        return fold(summaries, objective["goal"], details, objective.get("pareto") or (),
                    aggregates[0] if aggregates else None)

    def _spec_change(self, exp: dict, accepted: dict, conditions: list, now: str, generation) -> tuple[dict, list]:
        meta = exp["metadata"]
        change = compare(accepted, exp.get("spec") or {})
        refused = list(change.refused)
        if change.applied:
            issues = validate_experiment({**_clean_experiment(exp), "spec": change.effective})
            if issues:
                refused += [f"{issue.path} ({issue.message})" for issue in issues]
            else:
                self.kube.patch_custom_status(EXPERIMENT_PLURAL, meta["namespace"], meta["name"], {
                    "status": {"acceptedSpec": accepted_spec_text(change.effective)}})
                text = ", ".join(f"{path} {old} -> {new}" for path, (old, new) in change.applied.items())
                self.event(exp, "Normal", "BudgetChanged", text, now)
                accepted = change.effective
        previous = get_condition(conditions, "SpecChangeRefused")
        if refused:
            message = ("only spec.budget.maxTrials and spec.budget.parallelTrials may change while an experiment "
                       "runs; the accepted spec stays in force. Refused: " + ", ".join(refused[:10]))
            conditions = set_condition(conditions, "SpecChangeRefused", "True", "ImmutableField", message,
                                       now=now, generation=generation)
            if not previous or previous.get("status") != "True" or previous.get("message") != message:
                self.event(exp, "Warning", "SpecChangeRefused", message, now)
        elif previous and previous.get("status") == "True":
            conditions = set_condition(conditions, "SpecChangeRefused", "False", "SpecMatches",
                                       "the spec matches the accepted spec", now=now, generation=generation)
        return accepted, conditions

    def _patch_status(self, obj: dict, current: dict, wanted: dict) -> bool:
        patch = status_patch(current, wanted)
        if not patch:
            return False
        meta = obj["metadata"]
        plural = EXPERIMENT_PLURAL if obj.get("kind", EXPERIMENT_KIND) == EXPERIMENT_KIND else TRIAL_PLURAL
        return self.kube.patch_custom_status(plural, meta["namespace"], meta["name"], {"status": patch}) is not None

    def _stop_in_flight(self, namespace: str, summaries: list[TrialRecord], now: str) -> None:
        for record in summaries:
            if record.phase in ACTIVE:
                self.trial(namespace, record.name, summaries)

    def _ensure_namespace(self, exp: dict, now: str) -> None:
        """The controller's and trainer's ServiceAccounts and RoleBindings (docs/architecture.md)."""
        namespace = exp["metadata"]["namespace"]
        if not self.manage_rbac or namespace in self._namespaces_ready:
            return
        try:
            for body in namespace_service_accounts(namespace):
                self.kube.create("ServiceAccount", namespace, body)
            for body in namespace_role_bindings(namespace):
                self.kube.create("RoleBinding", namespace, body)
        except ApiException as err:
            if err.status != 403:
                raise
            self.event(exp, "Warning", "RBACNotManaged",
                       f"cannot create the kubenas-controller/kubenas-trainer ServiceAccounts and RoleBindings in "
                       f"{namespace} ({err.reason}); apply deploy/namespace-rbac to this namespace", now)
        self._namespaces_ready.add(namespace)

    # ====================================================================== trials

    def trial(self, namespace: str, name: str, peers: list[TrialRecord] | None = None,
              body: dict | None = None, experiment: dict | None = None, job: dict | None = None,
              now: datetime | None = None) -> TrialAction | None:
        """Reconcile one trial: observe, decide (``trial_state.decide``, pure), apply.

        ``body``, ``experiment`` and ``job`` are what the watches delivered (the trial,
        its experiment, the trial's Job): each is read from the API only when not given
        (and the experiment also when it is not accepted yet). The resync loop gives none
        of them on purpose: it is the net for a missed or stale watch event."""
        with self.lock("trial", namespace, name):
            trial = body if body is not None else self.kube.get_custom(TRIAL_PLURAL, namespace, name)
            if trial is None or (trial.get("metadata") or {}).get("deletionTimestamp"):
                return None
            observation = self._observe(trial, peers or [], _now(now), experiment, job)
            if observation is None:
                return None
            return self._apply(observation, decide(observation))

    def _observe(self, trial: dict, peers: list[TrialRecord], now_dt: datetime, exp: dict | None,
                 job: dict | None) -> TrialObservation | None:
        """The read phase: everything the decision may need, reusing what was watched;
        pods, Events and a twin only when ``trial_state`` says the decision needs them.
        None when there is nothing to decide (no experiment, or one not accepted yet)."""
        meta = trial["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        experiment_name = (trial.get("spec") or {}).get("experiment")
        if not experiment_name:
            return None
        if exp is None or accepted_spec(exp) is None or (exp.get("metadata") or {}).get("name") != experiment_name:
            exp = self.kube.get_custom(EXPERIMENT_PLURAL, namespace, experiment_name)
        spec = None if exp is None else accepted_spec(exp)
        if spec is None:
            return None  # the garbage collector removes orphans; nothing to run for them
        seen = TrialObservation(trial, exp, spec, peers=tuple(peers), now=now_iso(now_dt))
        phase = (trial.get("status") or {}).get("phase")
        if not owned_by(trial, exp) or (phase in TERMINAL and phase != EARLY_STOPPED):
            return seen  # decided without its Job (never read for a trial that is not the experiment's)
        if job is None:
            job = self.kube.get("Job", namespace, name)
        if job is None:
            twin = twin_candidate(trial, exp, None, peers)
            body = None if twin is None else self.kube.get_custom(TRIAL_PLURAL, namespace, twin.name)
            return replace(seen, twin=body)
        if ownership(job, {**trial, "kind": trial.get("kind", TRIAL_KIND)}) != OURS:
            return replace(seen, job=job)  # someone else's: never read further (its pods, its Events)
        pods = refusal = None
        if needs_pods(trial, exp, job):
            pods = tuple(owned_pods(job, self.kube.list_pods(namespace, f"job-name={name}")))
        if needs_events(trial, exp, job, now_dt):
            refusal = pod_refusal(events_about(job, self.kube.list_events(namespace, "Job", name)))
        return replace(seen, job=job, pods=pods, refusal=refusal)

    def _take_slot(self, kind: str, namespace: str, name: str) -> "tenancy.Wait | None":
        if self.slots is None:
            return None
        at, policy = self._bounds_policy
        # The latest read of the policy (judging a new experiment reads it), at most
        # BOUNDS_POLICY_SECONDS old: a start or a Job does not cost a read each.
        if policy is None or time.monotonic() - at >= BOUNDS_POLICY_SECONDS:
            policy = self.policy()
        return self.slots.take(kind, namespace, name, tenancy.bound(policy, kind))

    def _room_for_job(self, trial: dict, decision: TrialAction) -> TrialAction:
        """A Job only while the namespace has room for one more trial in flight; else the
        trial waits Pending, saying why (tenancy.py)."""
        meta, status = trial["metadata"], trial.get("status") or {}
        wait = self._take_slot(tenancy.TRIAL, meta["namespace"], meta["name"])
        if wait is None:
            return replace(decision, status={**decision.status, **tenancy.no_longer_waiting(status)})
        kept = {k: v for k, v in decision.status.items() if k == "createdTime"}
        return TrialAction(status={**kept, **tenancy.waiting_trial(status, wait)})

    @staticmethod
    def _finished_condition(trial: dict, status: dict, now: str) -> list:
        current = (trial.get("status") or {}).get("conditions")
        reason = status.get("reason") or status["phase"]
        return set_condition(current, "Finished", "True", reason, status.get("message") or status["phase"], now=now)

    def _acknowledge(self, trial: dict, now: str, exp: dict | None = None) -> None:
        """A terminal phase written by the trainer: record it once (condition, Event, metric)."""
        status = trial.get("status") or {}
        if acknowledged(status):
            return
        meta = trial["metadata"]
        conditions = self._finished_condition(trial, status, now)
        patch: dict = {"status": {"conditions": conditions}}
        if meta.get("resourceVersion"):
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}  # a stale body must not ack twice
        try:
            if self.kube.patch_custom_status(TRIAL_PLURAL, meta["namespace"], meta["name"], patch) is None:
                return
        except ApiException as err:
            if err.status != 409:
                raise
            return
        if status["phase"] == SUCCEEDED:
            return  # routine: the status, the leaderboard and the metrics show it; Events are for attention
        text = f"trial {meta['name']} {status['phase']}: {status.get('reason') or ''} {status.get('message') or ''}"
        self.event(trial, "Warning" if status["phase"] == FAILED else "Normal", status["phase"], text.strip(), now)
        self._trial_finished_event(exp, trial, status, now)

    def _trial_finished_event(self, exp: dict | None, trial: dict, status: dict, now: str) -> None:
        """A trial that failed or was stopped also shows on its experiment (`kubectl
        describe nasexperiment`). Succeeded trials post no Event: at thousands of trials
        that was two writes each, and the status and leaderboard show them."""
        if exp is None or status.get("phase") == SUCCEEDED:
            return
        phase = status.get("phase")
        text = f"trial {trial['metadata']['name']} {phase}"
        if status.get("reason"):
            text += f": {status['reason']}"
        self.event(exp, "Warning" if phase == FAILED else "Normal", f"Trial{phase}", text, now)

    def _apply(self, seen: TrialObservation, decision: TrialAction) -> TrialAction:
        """The apply phase: carry out ``decision``, made from ``seen``, and return what
        was carried out. Its Job is the only one ``delete_job`` may delete (by the uid
        observed); a Job waits for room in its namespace (tenancy.py) before it is
        created, and a Job the API server refuses for good ends the trial (JobRefused)."""
        trial, now = seen.trial, seen.now
        if decision.acknowledge:
            self._acknowledge(trial, now, seen.experiment)
        if decision.create_job:
            decision = self._room_for_job(trial, decision)
        if decision.create_job:
            decision = self._create_job(seen, decision)
        if decision.status and not self._patch_trial(trial, decision, now):
            return decision
        if decision.status and decision.event:
            self.event(trial, *decision.event, now)
        if decision.phase in TERMINAL:
            self._trial_finished_event(seen.experiment, trial, {**(trial.get("status") or {}), **decision.status}, now)
        if decision.delete_job and seen.job is not None:
            meta = trial["metadata"]
            self.kube.delete("Job", meta["namespace"], meta["name"], seen.job["metadata"]["uid"])
        return decision

    def _create_job(self, seen: TrialObservation, decision: TrialAction) -> TrialAction:
        meta = seen.trial["metadata"]
        try:
            if self.kube.create("Job", meta["namespace"], job_for_trial(seen.trial, seen.spec, self.settings)):
                # no Event: the Job controller posts its own
                metrics.trial_job_created(meta["namespace"], seen.experiment["metadata"]["name"])
        except ApiException as err:
            if err.status not in PERMANENT:
                raise  # 403 (e.g. an exhausted ResourceQuota), 429, 5xx: retried by the resync loop
            return job_refused(meta["name"], err, seen.now)  # retrying the same Job would loop for ever
        return decision

    def _patch_trial(self, trial: dict, decision: TrialAction, now: str) -> bool:
        """Write the decision's status, conditional on the version it was decided from:
        the trainer writes the same status, and its terminal phase must win over a stale
        decision (409: decide again on the next event)."""
        meta = trial["metadata"]
        patch = {"status": dict(decision.status)}
        if decision.phase in TERMINAL:
            patch["status"]["conditions"] = self._finished_condition(trial, decision.status, now)
        if meta.get("resourceVersion"):
            patch["metadata"] = {"resourceVersion": meta["resourceVersion"]}
        try:
            done = self.kube.patch_custom_status(TRIAL_PLURAL, meta["namespace"], meta["name"], patch)
        except ApiException as err:
            if err.status != 409:
                raise
            log.info("trial %s/%s changed meanwhile; it will be reconciled again", meta["namespace"], meta["name"])
            return False
        return done is not None
