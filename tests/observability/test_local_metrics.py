"""`kubenas run --metrics-port N`: the same metric names, namespace="local"."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from kubenas.local.metrics import LocalMetrics


def test_local_metrics_serve_the_dashboard_names():
    exp = {"metadata": {"name": "digits-local"}, "spec": {"objective": {"goal": "maximize"}}}
    m = LocalMetrics.serve(0, exp, addr="127.0.0.1")
    try:
        for i in range(3):
            m.trial_started("digits-local")
        m.trial_finished("digits-local", {"status": "Succeeded", "reward": 0.9, "startTime": "2024-01-01T00:00:00+00:00",
                                          "completionTime": "2024-01-01T00:01:00+00:00"}, 0.9)
        m.trial_finished("digits-local", {"status": "Failed", "startTime": "2024-01-01T00:00:00+00:00",
                                          "completionTime": "2024-01-01T00:00:10+00:00"}, 0.9)
        text = urllib.request.urlopen(f"http://127.0.0.1:{m.port}/metrics", timeout=10).read().decode()
    finally:
        m.close()
    fams = {f.name: f for f in text_string_to_metric_families(text)}

    def val(fam, sample=None, **labels):
        return sum(s.value for s in fams[fam].samples if (sample is None or s.name == sample)
                   and all(s.labels.get(k) == v for k, v in labels.items()))

    base = {"namespace": "local", "experiment": "digits-local"}
    assert val("kubenas_trials", phase="Running", **base) == 1
    assert val("kubenas_trials", phase="Succeeded", **base) == 1
    assert val("kubenas_experiment_best_reward", **base) == 0.9
    assert val("kubenas_experiments", phase="Running", namespace="local") == 1
    assert val("kubenas_trials_created", "kubenas_trials_created_total", **base) == 3
    assert val("kubenas_trials_finished", "kubenas_trials_finished_total", outcome="Failed", **base) == 1
    assert val("kubenas_trial_duration_seconds", "kubenas_trial_duration_seconds_sum", outcome="Succeeded", **base) == 60
