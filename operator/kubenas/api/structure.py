"""Structural checks of a NASExperiment: the CRD schema (with short, actionable messages),
fields the schema does not know, and metadata.name."""
from __future__ import annotations

import difflib
import re
from typing import Any

from .issues import Issue, shown
from .quantities import QUANTITY_EXAMPLES
from .schema import format_path, validator

# Trial names are <experiment>-<index>; Job and pod label values must stay within 63
# characters with a 5-digit index and a retry suffix, hence the cap on the name.


# Trial names are <experiment>-<index>; Job and pod label values must stay within 63
# characters with a 5-digit index and a retry suffix, hence the cap on the name.
MAX_EXPERIMENT_NAME = 50

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def schema_issues(obj: dict) -> list[Issue]:
    issues = []
    for error in sorted(validator("NASExperiment").iter_errors(obj), key=lambda e: list(map(str, e.absolute_path))):
        path = format_path(error.absolute_path) or "(top level)"
        if error.validator == "required":
            missing = error.message.split("'")[1]
            path = f"{path}.{missing}" if error.absolute_path else missing
            issues.append(Issue(path, "is required"))
        else:
            issues.append(Issue(path, _schema_message(error)))
    return issues


def _schema_message(error) -> str:
    """jsonschema's message, made short and actionable for the keywords whose default
    text would echo a whole oversized value or a regular expression."""
    kind, limit, schema, value = error.validator, error.validator_value, error.schema, error.instance
    quantity = schema.get("x-kubernetes-int-or-string") and "pattern" in schema
    if kind == "maxLength":
        return f"is {len(value)} characters long; at most {limit} are allowed: shorten it"
    if kind == "maxItems":
        return f"has {len(value)} items; at most {limit} are allowed: remove some"
    if kind == "maxProperties":
        return f"has {len(value)} entries; at most {limit} are allowed: remove some"
    if kind == "pattern" and quantity:
        return f"{shown(value)} is not a Kubernetes quantity; use {QUANTITY_EXAMPLES}"
    if kind == "pattern":
        return f"{shown(value)} does not match the pattern {limit}"
    if kind == "anyOf" and schema.get("x-kubernetes-int-or-string"):
        what = "a Kubernetes quantity" if quantity else "an integer or a string"
        return f"{shown(value)} is not {what}; use {QUANTITY_EXAMPLES if quantity else 'one of those'}"
    if kind == "enum":
        return f"{shown(value)} is not one of {', '.join(map(str, limit))}"
    if kind == "type":
        return f"{shown(value)} is not of type {limit!r}"
    return error.message if len(error.message) <= 300 else error.message[:300] + "..."


def unknown_field_issues(value: Any, schema: dict, path: list) -> list[Issue]:
    """Fields the schema does not know: the API server would silently drop them."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    issues = []
    if isinstance(value, dict) and "properties" in schema:
        known = schema["properties"]
        for key, item in value.items():
            if key in known:
                issues += unknown_field_issues(item, known[key], path + [key])
            elif not (path == [] and key in ("metadata", "status")):
                hint = difflib.get_close_matches(str(key), list(known), n=1)
                fix = f"did you mean '{hint[0]}'?" if hint else f"known fields: {', '.join(known)}"
                issues.append(Issue(format_path(path + [key]), f"unknown field; {fix}"))
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        for key, item in value.items():
            issues += unknown_field_issues(item, schema["additionalProperties"], path + [key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            issues += unknown_field_issues(item, schema["items"], path + [i])
    return issues


def metadata_issues(obj: dict) -> list[Issue]:
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return []  # the schema names it
    name = (metadata or {}).get("name")
    if not name:
        return [Issue("metadata.name", "is required: name the experiment (a DNS-1123 label, "
                      f"at most {MAX_EXPERIMENT_NAME} characters)")]
    if not isinstance(name, str):
        return [Issue("metadata.name", f"must be a string, got {shown(name)}")]
    if len(name) > MAX_EXPERIMENT_NAME:
        return [Issue("metadata.name", f"is {len(name)} characters long; at most {MAX_EXPERIMENT_NAME} are "
                      "allowed, because trial and Job names are built from it: shorten it")]
    if not DNS_LABEL.match(name):
        return [Issue("metadata.name", f"{shown(name)} is not a DNS-1123 label: use lower-case letters, "
                      "digits and '-', starting and ending with a letter or digit")]
    return []
