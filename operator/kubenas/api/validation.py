"""Validate NASExperiment objects: the CRD schema, unknown fields, then semantics.

Each problem is an Issue naming the field path (``spec.budget.parallelTrials``) and
what to do about it. The same checks run in `kubenas validate`, `kubenas run` and
the operator, so an experiment is accepted or refused the same way everywhere.

This module is the entry point (``validate_experiment``): the checks live beside it,
the structural ones in ``structure`` and ``bounds``, the semantic ones per part of the
spec in ``checks``; defaults in ``defaults``, reading a file in ``loading``. A new
check is a function of the filled spec added to SEMANTIC_CHECKS with the parts it reads.
"""
from __future__ import annotations

from typing import Any

from . import API_VERSION, EXPERIMENT_KIND
from .bounds import nesting_issue, size_issues
from .checks.distributed import distributed_issues
from .checks.oneshot import oneshot_issues
from .checks.outputs import artifacts_issues, deploy_issues
from .checks.pod import resources_issues, template_rule_issues
from .checks.search import (budget_issues, constraints_issues, fidelity_issues, final_issues, objective_issues,
                            pareto_issues, search_space_issues, strategy_issues)
from .checks.trial import export_issues, schedule_issues, trial_issues, user_code_issues
from .defaults import with_defaults
from .issues import ExperimentInvalid, Issue, shown
from .schema import openapi_schema
from .structure import metadata_issues, schema_issues, unknown_field_issues

__all__ = ["ExperimentInvalid", "Issue", "SEMANTIC_CHECKS", "validate_experiment"]


# Each semantic check, and the parts of spec it reads: it runs when those parts passed
# the schema, so schema and semantic errors of different parts are reported together.
SEMANTIC_CHECKS = (
    (objective_issues, ("spec.objective", "spec.trial.task")),
    (pareto_issues, ("spec.objective", "spec.strategy", "spec.trial.training")),
    (search_space_issues, ("spec.searchSpace",)),
    (strategy_issues, ("spec.strategy", "spec.budget", "spec.objective", "spec.oneShot")),
    (budget_issues, ("spec.budget",)),
    (fidelity_issues, ("spec.strategy", "spec.trial.training", "spec.earlyStopping", "spec.objective",
                       "spec.final")),
    (schedule_issues, ("spec.trial.training", "spec.searchSpace")),
    (final_issues, ("spec.final", "spec.objective")),
    (constraints_issues, ("spec.constraints", "spec.trial.dataset")),
    (trial_issues, ("spec.trial.dataset", "spec.trial.task", "spec.trial.command", "spec.trial.model",
                    "spec.searchSpace")),
    (user_code_issues, ("spec.searchSpace", "spec.trial")),
    (export_issues, ("spec.trial.export", "spec.trial.task")),
    (deploy_issues, ("spec.deploy", "spec.artifacts")),
    (resources_issues, ("spec.trial.template", "spec.controller")),
    (artifacts_issues, ("spec.artifacts", "spec.trial.template")),
    (template_rule_issues, ("spec.trial.template",)),
    (distributed_issues, ("spec.trial.distributed", "spec.trial.template", "spec.trial.training",
                          "spec.trial.command", "spec.searchSpace")),
    (oneshot_issues, ("spec.oneShot", "spec.searchSpace", "spec.trial", "spec.strategy", "spec.final",
                      "spec.objective", "spec.budget")),
    (size_issues, ()),
)


def validate_experiment(obj: Any) -> list[Issue]:
    """All problems of a NASExperiment object; an empty list means it is valid."""
    if not isinstance(obj, dict):
        return [Issue("(top level)", "must be a YAML/JSON object (a NASExperiment)")]
    too_deep = nesting_issue(obj)
    if too_deep is not None:  # every later check may walk the value recursively: none runs
        return [too_deep]
    issues = []
    if obj.get("apiVersion") != API_VERSION:
        issues.append(Issue("apiVersion", f"must be {API_VERSION}, got {shown(obj.get('apiVersion'))}"))
    if obj.get("kind") != EXPERIMENT_KIND:
        issues.append(Issue("kind", f"must be {EXPERIMENT_KIND}, got {shown(obj.get('kind'))}"))
    issues += metadata_issues(obj)
    structural = schema_issues(obj) + unknown_field_issues(obj, openapi_schema("NASExperiment"), [])
    issues += structural
    return issues + _semantic_issues(obj, [i.path for i in structural])


def _semantic_issues(obj: dict, bad_paths: list[str]) -> list[Issue]:
    """The semantic checks whose parts of spec passed the schema (they assume it)."""
    if not isinstance(obj.get("spec"), dict) or any(p in ("spec", "(top level)") for p in bad_paths):
        return []

    def clean(prefix: str) -> bool:
        return not any(p == prefix or p.startswith((prefix + ".", prefix + "[")) for p in bad_paths)

    runnable = [check for check, parts in SEMANTIC_CHECKS if all(map(clean, parts))]
    if not runnable:
        return []
    try:
        spec = with_defaults(_without(obj["spec"], bad_paths))
    except (AttributeError, TypeError, KeyError, ValueError):
        if not bad_paths:
            raise
        return []  # a part the defaults need is malformed; the schema issues say which
    issues = []
    for check in runnable:
        try:
            issues += check(spec)
        except (AttributeError, TypeError, KeyError, ValueError):
            if not bad_paths:
                raise
            # a malformed part outside the check's own reached it through the defaults
    return issues


def _without(spec: dict, bad_paths: list[str]) -> dict:
    """A shallow copy of spec without the malformed blocks two levels deep (spec.budget,
    spec.trial.training): the checks reading them are skipped, and with_defaults fills
    them in for the others."""
    spec = dict(spec)
    for path in bad_paths:
        parts = path.split(".")
        if parts[0] != "spec" or len(parts) not in (2, 3):
            continue
        if len(parts) == 2:
            spec.pop(parts[1], None)
        elif isinstance(spec.get(parts[1]), dict):
            spec[parts[1]] = {k: v for k, v in spec[parts[1]].items() if k != parts[2]}
    return spec
