"""What validation reports: an Issue names the field path (``spec.budget.parallelTrials``)
and what to do about it; ExperimentInvalid carries a file's or an object's Issues."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ExperimentInvalid(ValueError):
    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("; ".join(map(str, issues)))


def shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def spec_path(path: str, block: str) -> str:
    path = path or block
    if path.startswith("spec."):
        return path
    if not path.startswith(block):
        path = f"{block}.{path}"
    return f"spec.{path}"
