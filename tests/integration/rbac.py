"""Check API calls recorded by the emulator against deploy/rbac.yaml."""
from __future__ import annotations

import pathlib
from urllib.parse import unquote

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

# Who made a call, by User-Agent.
COMPONENTS = (("kubenas-operator/", "kubenas-operator"), ("kopf/", "kubenas-operator"),
              ("kubenas-controller", "kubenas-controller"), ("kubenas-trainer", "kubenas-trainer"))
# Rules that no API call exercises: the RBAC escalation check for the RoleBindings the
# operator creates needs "bind" on exactly those two ClusterRoles.
NOT_CALLS = {("kubenas-operator", "rbac.authorization.k8s.io", "clusterroles", "bind"),
             # Only when a Job has no pod for a while (Pod Security refused it): on the real
             # tier, tests/e2e/test_resilience.py::test_a_pod_refused_by_pod_security_ends_its_trial.
             ("kubenas-operator", "", "events", "list"),
             # Only without the admission policies (operatorEnforcesLists), for a spec naming a
             # Secret, ConfigMap or PVC: the requester's stamp and a SubjectAccessReview, which
             # the emulator does not serve; on the real tier,
             # tests/e2e/test_operator_requester.py.
             ("kubenas-operator", "authorization.k8s.io", "subjectaccessreviews", "create"),
             ("kubenas-operator", "admissionregistration.k8s.io", "mutatingadmissionpolicies", "get"),
             ("kubenas-operator", "admissionregistration.k8s.io", "mutatingadmissionpolicybindings", "get"),
             # Only for spec.deploy (serving the best model), which the emulated loops do not
             # run: on the real tier, tests/e2e/test_deploy.py (the Deployment + Service, a
             # rolling redeploy, and an InferenceService against KServe's own CRD).
             ("kubenas-operator", "", "services", "create"),
             ("kubenas-operator", "", "services", "get"),
             ("kubenas-operator", "apps", "deployments", "patch"),
             *(("kubenas-operator", "serving.kserve.io", "inferenceservices", verb)
               for verb in ("create", "delete", "get", "patch"))}


def load_roles() -> dict[str, list[dict]]:
    """Each component's rules: its ClusterRole (deploy/rbac.yaml, named after it) plus the
    namespaced Roles deploy/ binds to its ServiceAccount (the Lease, the policy ConfigMap)."""
    with open(ROOT / "deploy" / "rbac.yaml") as f:
        roles = {d["metadata"]["name"]: list(d["rules"]) for d in yaml.safe_load_all(f)
                 if d and d["kind"] == "ClusterRole"}
    for path in sorted((ROOT / "deploy").glob("*.yaml")):
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        rules = {d["metadata"]["name"]: d["rules"] for d in docs if d["kind"] == "Role"}
        for binding in (d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "Role"):
            for subject in binding.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount" and subject["name"] in roles:
                    roles[subject["name"]] += [{**rule, "namespaced": True}
                                               for rule in rules[binding["roleRef"]["name"]]]
    return roles


def component(user_agent: str) -> str | None:
    for prefix, name in COMPONENTS:
        if user_agent.startswith(prefix):
            return name
    return None


def permission(method: str, path: str, params: dict) -> tuple[str, str, str] | None:
    """(apiGroup, resource[/subresource], verb) of a request; None for discovery URLs."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if parts[0] == "api" and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None  # discovery
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if method == "GET":
        verb = "watch" if params.get("watch") in ("true", "1") else ("get" if name else "list")
    else:
        verb = {"POST": "create", "PATCH": "patch", "PUT": "update",
                "DELETE": "delete" if name else "deletecollection"}[method]
    return group, f"{resource}/{sub}" if sub else resource, verb


def object_name(path: str) -> str | None:
    parts = [unquote(p) for p in path.strip("/").split("/")]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        rest = rest[2:]
    return rest[1] if len(rest) > 1 else None


def allows(rules: list[dict], group: str, resource: str, verb: str, name: str | None = None) -> bool:
    return any(group in r.get("apiGroups", []) and resource in r.get("resources", [])
               and verb in r.get("verbs", []) and (not r.get("resourceNames") or name in r["resourceNames"])
               for r in rules)


def check_calls(calls) -> tuple[list[str], set[tuple]]:
    """Violations (calls the roles do not allow) and the permissions used."""
    roles = load_roles()
    violations, used = [], set()
    for agent, method, path, params in calls:
        who = component(agent)
        perm = permission(method, path, params)
        if who is None or perm is None:
            continue
        used.add((who, *perm))
        if not allows(roles[who], *perm, object_name(path)):
            violations.append(f"{who}: {perm[2]} {perm[1]} (group {perm[0]!r}) -- {method} {path}")
    return violations, used


def granted() -> set[tuple]:
    out = set()
    for role, rules in load_roles().items():
        for r in rules:
            if r.get("namespaced"):  # small Roles on named objects, proven on the real tier
                continue
            for g in r["apiGroups"]:
                for res in r["resources"]:
                    for verb in r["verbs"]:
                        out.add((role, g, res, verb))
    return out
