"""Build step: ship the CRDs of crds/ (their single source) inside the package as
kubenas/crds/*.yaml, where kubenas.api.schema finds them in a non-editable install.
Everything else is declared in pyproject.toml."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithCRDs(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "kubenas" / "crds"
        target.mkdir(parents=True, exist_ok=True)
        for crd in sorted((ROOT / "crds").glob("*.yaml")):
            shutil.copyfile(crd, target / crd.name)


setup(cmdclass={"build_py": BuildPyWithCRDs})
