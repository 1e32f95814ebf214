"""A wheel built from the source tree carries the CRDs (from crds/, their single source)
and `kubenas validate` works from a normal, non-editable install of it."""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "operator", "trainer", "crds")


def run(*args, **kwargs):
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_wheel_ships_the_crds_and_validates_from_a_fresh_venv(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in BUILD_INPUTS:  # a clean copy: no build/ or egg-info left by an editable install
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(item, source / name)
    # No build isolation: the build uses this interpreter's setuptools, nothing is downloaded.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(source))
    (wheel,) = tmp_path.glob("kubenas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for crd in sorted(p.name for p in (ROOT / "crds").glob("*.yaml")):
        assert f"kubenas/crds/{crd}" in names
        assert zipfile.ZipFile(wheel).read(f"kubenas/crds/{crd}") == (ROOT / "crds" / crd).read_bytes()

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv))
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel))
    # The dependencies (yaml, jsonschema, rich, ...) come from this environment's
    # site-packages, appended after the venv's own, so the installed wheel is what imports.
    site = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    pathlib.Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("KUBENAS_CRD_DIR", "PYTHONPATH")}
    where = run(str(python), "-c", "import kubenas.api.schema as s; print(s.crd_dir())", cwd=tmp_path, env=env)
    assert pathlib.Path(where.stdout.strip()).is_relative_to(venv)
    example = ROOT / "deploy" / "examples" / "digits-evolution.yaml"
    done = run(str(venv / "bin" / "kubenas"), "validate", str(example), cwd=tmp_path, env=env)
    assert "ok" in done.stdout + done.stderr
