"""A small PromQL reader for tests: which metric names and label names an expression uses.

Not a full parser: enough for the expressions kubenas ships (selectors, functions,
aggregations with ``by``/``without``, binary operators with ``on``/``ignoring``/
``group_left``). Grafana variables (``$namespace``, ``${datasource}``, ``$__rate_interval``)
are replaced before reading.
"""
from __future__ import annotations

import re

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "count_over_time", "delta", "deriv", "exp", "floor", "histogram_quantile", "idelta", "increase", "irate",
    "label_replace", "label_join", "last_over_time", "ln", "log2", "log10", "max_over_time", "min_over_time",
    "predict_linear", "quantile_over_time", "rate", "resets", "round", "scalar", "sort", "sort_desc", "sqrt",
    "stddev_over_time", "sum_over_time", "time", "timestamp", "vector", "present_over_time", "sgn",
}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "count_values", "group"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus adds to every scraped series (the ServiceMonitor/PodMonitor target;
# `namespace` is not among them: honorLabels keeps the metrics' own).
TARGET_LABELS = {"job", "instance", "service", "pod", "container", "endpoint"}
# Series Prometheus itself adds for every target.
BUILTIN = {"up": TARGET_LABELS | {"namespace"}}

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def substitute_grafana(expr: str) -> str:
    expr = re.sub(r"\$__(rate_)?interval|\$\{__(rate_)?interval\}|\$__range", "5m", expr)
    return re.sub(r"\$\{?[a-zA-Z_]+(?::[a-z]+)?\}?", "x", expr)


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def references(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, label names) used by ``expr``."""
    expr = substitute_grafana(expr)
    labels: set[str] = set()
    # Grafana's label_values(selector, label)
    for label in re.findall(r"label_values\((?:[^()]*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)", expr):
        labels.add(label)
    expr = re.sub(r"label_values\(([^()]*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)", r"\1", expr)
    # label matchers inside {...}
    for block in re.findall(r"\{([^}]*)\}", expr):
        for name in re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block):
            labels.add(name)
    # by (...), without (...), on (...), ignoring (...), group_left (...)
    for clause in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        labels.update(n.strip() for n in clause.split(",") if n.strip())
    # label_replace(v, "dst", "replacement", "src", "regex"): dst is new, src must exist
    for src in re.findall(r'label_replace\([^"]*"[^"]*"\s*,\s*"[^"]*"\s*,\s*"([^"]*)"', expr):
        if src:
            labels.add(src)
    text = _strip_strings(expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    metrics = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        after = text[match.end():].lstrip()
        if word in KEYWORDS or word in AGGREGATIONS or word in FUNCTIONS:
            continue
        if after.startswith("(") or re.fullmatch(r"\d+[smhdwy]", word):
            continue
        metrics.add(word)
    return metrics, labels


def family_of(name: str, histograms: set[str]) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in histograms:
            return name[: -len(suffix)]
    return name
