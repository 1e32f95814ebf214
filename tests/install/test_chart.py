"""charts/kubenas is hack/helm/chart.py's output for the deploy/ of this commit (rerun the
script after changing deploy/); that it renders the same objects is tests/e2e/test_helm.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack" / "helm"))
import chart  # noqa: E402


def test_the_committed_chart_is_generated_from_deploy():
    done = subprocess.run([sys.executable, str(REPO / "hack/helm/chart.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_a_deploy_file_of_another_shape_stops_the_generator():
    with pytest.raises(chart.DriftError, match="operator.yaml"):
        chart.operator_template((REPO / "deploy/operator.yaml").read_text().replace(  # the same value, unquoted
            'value: "ghcr.io/kubenas/kubenas-trainer:0.1.0"}', "value: ghcr.io/kubenas/kubenas-trainer:0.1.0}"), {})


def test_helm_braces_in_deploy_files_stay_literal():
    assert chart._escape("a {{ $labels.x }} b {}}") == 'a {{ "{{" }} $labels.x {{ "}}" }} b {}}'
