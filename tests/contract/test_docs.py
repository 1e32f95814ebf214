"""The docs show what the tools print: the `kubenas validate` example of docs/experiments.md."""
from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_validate_example_is_real_output(tmp_path):
    text = (ROOT / "docs" / "experiments.md").read_text()
    (source,) = re.findall(r"```yaml\n# bad\.yaml\n(.*?)```", text, re.S)
    (shown,) = re.findall(r"```\n\$ kubenas validate bad\.yaml\n(.*?)```", text, re.S)
    (tmp_path / "bad.yaml").write_text(source)
    done = subprocess.run([sys.executable, "-m", "kubenas.cli", "validate", "bad.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout + done.stderr == shown
