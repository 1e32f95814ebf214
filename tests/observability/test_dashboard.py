"""The Grafana dashboard as users see it: valid against Grafana's dashboard schema (the
Grafana Foundation SDK's types, generated from Grafana 11.6's schemas), templated as the
kube-prometheus dashboards are (a data source variable, namespace and experiment query
variables), and every query filtered by the variables. (What each query returns is
tests/e2e/test_prometheus.py.)"""
from __future__ import annotations

import enum
import json
import types
import typing

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard

from . import prom

register_default_plugins()  # panel options and Prometheus queries decode to their own types


def schema_problems(value, hint, path: str) -> list[str]:
    """Where ``value`` does not have the type the schema gives it (``hint``, from the SDK)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint in (typing.Any, object):
        return model_problems(value, path) if hasattr(value, "to_json") else []
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return []
        tries = [schema_problems(value, a, path) for a in args if a is not type(None)]
        return [] if any(not t for t in tries) else min(tries, key=len)
    if origin is typing.Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {list(args)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__} where the schema has a list"]
        return [p for i, v in enumerate(value) for p in schema_problems(v, args[0] if args else object, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__} where the schema has an object"]
        return [p for k, v in value.items() for p in schema_problems(v, args[1] if args else object, f"{path}.{k}")]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if isinstance(value, hint) or value in {m.value for m in hint}:
            return []
        return [f"{path}: {value!r} is not one of {[m.value for m in hint]}"]
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:
        return [f"{path}: the schema's type {hint} is not checked here"]
    if not ok:
        return [f"{path}: {value!r} is not a {getattr(hint, '__name__', hint)}"]
    return model_problems(value, path) if hasattr(value, "to_json") else []


def model_problems(obj, path: str = "dashboard") -> list[str]:
    return [p for name, hint in typing.get_type_hints(type(obj)).items()
            for p in schema_problems(getattr(obj, name, None), hint, f"{path}.{name}")]


def unknown_keys(given, kept, path: str = "") -> list[str]:
    """Keys of the JSON that the schema does not know (decoding drops them)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        return [p for k, v in given.items()
                for p in ([f"{path}.{k}"] if k not in kept else unknown_keys(v, kept[k], f"{path}.{k}"))]
    if isinstance(given, list) and isinstance(kept, list):
        return [p for i, (a, b) in enumerate(zip(given, kept)) for p in unknown_keys(a, b, f"{path}[{i}]")]
    return []


def validate(board: dict) -> list[str]:
    model = Dashboard.from_json(board)
    kept = json.loads(JSONEncoder().encode(model))
    return [f"{k}: not in Grafana's dashboard schema" for k in unknown_keys(board, kept)] + model_problems(model)


def test_dashboard_is_valid_against_grafanas_schema():
    assert validate(prom.dashboard()) == []


def test_the_schema_check_finds_mistakes():
    board = prom.dashboard()
    board["panels"][1]["gridPos"]["w"] = "half"
    board["panels"][2]["targets"][0]["instant"] = "yes"
    board["panels"][3]["options"]["graphMode"] = "zigzag"
    board["templating"]["list"][1]["refresh"] = 7
    board["panels"][4]["targets"][0]["legendFromat"] = "{{outcome}}"
    problems = validate(board)
    for where in ("panels[1].grid_pos.w", "panels[2].targets[0].instant", "panels[3].options.graph_mode",
                  "list_val[1].refresh", "panels[4].targets[0].legendFromat"):
        assert any(where in p for p in problems), (where, problems)


def test_data_source_and_variables_are_templated_as_kube_prometheus_does():
    board = prom.dashboard()
    variables = prom.variables(board)
    assert list(variables)[:3] == ["datasource", "namespace", "experiment"]
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    ref = {"type": "prometheus", "uid": "${datasource}"}
    for name in ("namespace", "experiment"):
        var = variables[name]
        assert var["type"] == "query" and var["datasource"] == ref, name
        assert var["multi"] and var["includeAll"] and var["allValue"] == ".*", name
        assert var["refresh"] == 2, f"{name}: refreshed when the time range changes"
    assert variables["namespace"]["query"]["query"] == "label_values(kubenas_trials, namespace)"
    assert variables["experiment"]["query"]["query"] == 'label_values(kubenas_trials{namespace=~"$namespace"}, experiment)'
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == ref, panel["title"]
            assert all(t["datasource"] == ref for t in panel["targets"]), panel["title"]
    # no data source by name or uid of one Grafana anywhere
    assert '"uid": "prometheus"' not in json.dumps(board)


# Label names that each kubenas metric carries (kubenas.operator.metrics,
# kubenas.controller.metrics; tests/observability/test_operator_metrics.py scrapes them).
PER_NAMESPACE = "namespace"
PER_EXPERIMENT = "experiment"


def test_every_query_is_filtered_by_the_variables_its_metrics_carry():
    """A series with a ``namespace`` label is selected with namespace=~"$namespace", one
    with an ``experiment`` label with experiment=~"$experiment" too: choosing a namespace or
    an experiment narrows every panel that can be narrowed. The operator-wide series (up,
    the process' memory, reconcile errors by kind) carry neither."""
    from kubenas.controller import metrics as controller_metrics
    from kubenas.operator import metrics

    labels: dict[str, set] = {}
    for registry in (metrics.REGISTRY, controller_metrics.REGISTRY):
        for collector in list(registry._collector_to_names):  # the declared metrics and their label names
            names = getattr(collector, "_labelnames", None)
            if names is not None:
                labels[collector._name] = set(names)
    # the scrape-time gauges (StateCollector)
    labels.update({"kubenas_experiments": {"namespace", "phase"},
                   "kubenas_trials": {"namespace", "experiment", "phase"},
                   "kubenas_experiment_best_reward": {"namespace", "experiment"},
                   "kubenas_gpus_requested": {"namespace", "experiment", "phase"}})
    missing = []
    used = set()
    for q in prom.panel_queries():
        found = prom.selectors(q.expr)
        assert found, f"{q}: every selector has braces: {q.expr}"
        for metric, matchers in found:
            family = metric.removesuffix("_total").removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
            carried = labels.get(metric) or labels.get(family) or labels.get(family + "_total") or set()
            if metric.startswith("kubenas_"):
                assert carried, f"{q}: {metric} is not a kubenas metric"
            for label in (PER_NAMESPACE, PER_EXPERIMENT):
                if label in carried:
                    if f'{label}=~"${label}"' in matchers:
                        used.add(label)
                    else:
                        missing.append(f"{q}: {metric} is not filtered by {label}=~\"${label}\"")
    assert not missing, "\n".join(missing)
    assert used == {PER_NAMESPACE, PER_EXPERIMENT}
