"""The pods kubenas creates: resources of the trial template, the controller and the
serving Deployment, and the CRD's CEL rules on env and volume items."""
from __future__ import annotations

from ..issues import Issue
from ..quantities import RESOURCE_NAME, STANDARD_RESOURCES, parse_quantity
from ..schema import format_path, openapi_schema


def resources_issues(spec: dict) -> list[Issue]:
    """What the API server would refuse only when it creates the pod: unknown resource
    names, fractional extended resources (nvidia.com/gpu: 0.5), requests above limits."""
    issues = []
    blocks = ((["spec", "trial", "template", "resources"], spec["trial"]["template"].get("resources")),
              (["spec", "controller", "resources"], spec["controller"].get("resources")),
              (["spec", "deploy", "resources"], (spec.get("deploy") or {}).get("resources")))
    for where, resources in blocks:
        resources = resources or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        for part, values in (("limits", limits), ("requests", requests)):
            for name, value in values.items():
                field = format_path(where + [part, name])
                amount = parse_quantity(value)
                if not RESOURCE_NAME.match(name) or len(name) > 253 or (
                        "/" not in name and name not in STANDARD_RESOURCES and not name.startswith("hugepages-")):
                    issues.append(Issue(field, f"{name!r} is not a resource name; use cpu, memory, "
                                        "ephemeral-storage, hugepages-<size> or a domain-prefixed name "
                                        "such as nvidia.com/gpu"))
                elif amount is None:
                    continue  # the schema named it
                elif amount < 0:
                    issues.append(Issue(field, f"{value} is negative; use 0 or more"))
                elif "/" in name and not name.startswith("kubernetes.io/") and amount != amount.to_integral_value():
                    issues.append(Issue(field, f"{value}: an extended resource is counted in whole units; "
                                        "use an integer such as 1"))
        for name, value in requests.items():
            if name not in limits:
                continue
            request, limit = parse_quantity(value), parse_quantity(limits[name])
            if request is not None and limit is not None and request > limit:
                issues.append(Issue(format_path(where + ["requests", name]),
                                    f"{value} is more than its limit {limits[name]} "
                                    f"({format_path(where + ['limits', name])}); lower the request or raise the limit"))
    return issues


def _template_schema(field: str) -> dict:
    spec = openapi_schema("NASExperiment")["properties"]["spec"]["properties"]
    return spec["trial"]["properties"]["template"]["properties"][field]["items"]


def template_rule_issues(spec: dict) -> list[Issue]:
    """The CEL rules of the CRD on env and volume items, in Python (the API server applies
    them; `kubenas validate` cannot run CEL). The sources and references are the schema's."""
    template = spec["trial"].get("template") or {}
    refs = list(_template_schema("env")["properties"]["valueFrom"]["properties"])
    sources = [key for key in _template_schema("volumes")["properties"] if key != "name"]
    issues = []
    for i, env in enumerate(template.get("env") or []):
        where = f"spec.trial.template.env[{i}]"
        if "value" in env and "valueFrom" in env:
            issues.append(Issue(where, "an env item sets value or valueFrom, not both"))
        if "valueFrom" in env and sum(ref in env["valueFrom"] for ref in refs) != 1:
            issues.append(Issue(f"{where}.valueFrom", f"needs exactly one of {', '.join(refs)}"))
    for i, volume in enumerate(template.get("volumes") or []):
        if sum(source in volume for source in sources) != 1:
            issues.append(Issue(f"spec.trial.template.volumes[{i}]", "a volume needs exactly one source of: "
                                f"{', '.join(sources)} (the sources kubenas knows; the cluster admin's "
                                "volumeTypes says which are allowed)"))
    return issues
