"""Packages import one way (docs/architecture.md, "Package map"): a test, not a convention.

Every import in the source, lazy ones inside functions included, is read with ``ast``.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCES = {"kubenas": ROOT / "operator" / "kubenas", "kubenas_trainer": ROOT / "trainer" / "kubenas_trainer"}

# package -> the kubenas packages it may import (itself always).
ALLOWED = {
    "kubenas.contract": set(),
    "kubenas.report": {"kubenas.contract"},
    "kubenas.early_stopping": set(),
    "kubenas.experiment": {"kubenas.contract"},
    "kubenas.space": {"kubenas.contract"},
    "kubenas.strategies": {"kubenas.contract", "kubenas.space"},
    "kubenas.api": {"kubenas.contract", "kubenas.space", "kubenas.strategies"},
    "kubenas.cluster": {"kubenas.contract", "kubenas.api"},
    "kubenas.local": {"kubenas.contract", "kubenas.experiment", "kubenas.early_stopping", "kubenas.space",
                      "kubenas.strategies", "kubenas.api"},
    "kubenas.operator": {"kubenas.contract", "kubenas.experiment", "kubenas.early_stopping", "kubenas.api",
                         "kubenas.cluster"},
    "kubenas.controller": {"kubenas.contract", "kubenas.experiment", "kubenas.space", "kubenas.strategies",
                           "kubenas.api", "kubenas.cluster"},
    "kubenas.artifacts": {"kubenas.contract"},
    "kubenas.serving": {"kubenas.contract", "kubenas.artifacts"},
    "kubenas_trainer": {"kubenas.contract"},
}
TORCH_FREE = ("kubenas.artifacts", "kubenas.contract", "kubenas.report", "kubenas.experiment", "kubenas.space", "kubenas.api", "kubenas.cluster",
              "kubenas.operator", "kubenas.early_stopping")


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[0] if parts[0] == "kubenas_trainer" else ".".join(parts[:2])


def modules():
    for top, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(folder).with_suffix("")
            parts = [top, *relative.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join(parts), path


def imports(module: str, path: pathlib.Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names if name in ("kubenas", "kubenas.contract"))
    return found


MODULES = [m for m in modules() if package_of(m[0]) in ALLOWED]


def test_every_package_has_a_rule():
    packages = {package_of(m) for m, _ in modules()} - {"kubenas", "kubenas.cli"}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)


@pytest.mark.parametrize("module, path", MODULES, ids=[m for m, _ in MODULES])
def test_imports_go_one_way(module, path):
    package = package_of(module)
    allowed = ALLOWED[package] | {package}
    ours = {package_of(name) for name in imports(module, path)
            if name.split(".")[0] in ("kubenas", "kubenas_trainer") and name != "kubenas"}
    assert ours <= allowed, f"{module} imports {sorted(ours - allowed)}"
    if package in TORCH_FREE:
        assert not {name for name in imports(module, path) if name.split(".")[0] == "torch"}, module


def test_the_controller_is_the_operators_sibling():
    controller = [imports(m, p) for m, p in MODULES if package_of(m) == "kubenas.controller"]
    assert controller and not any(name.startswith("kubenas.operator") for names in controller for name in names)
