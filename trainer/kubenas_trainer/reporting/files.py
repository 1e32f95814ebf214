"""Where a trial's progress and result go.

A ``Reporter`` receives every epoch record (and may ask training to stop) and the final
result. ``FileReporter`` is what local runs use: ``history.jsonl`` gets one JSON line
per epoch, flushed as it goes (the local runner tails it), and ``result.json`` is
written atomically at the end. A cluster reporter (patching ``NASTrial.status``) plugs
in through the same protocol.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

STOP_FILE = "stop"


@runtime_checkable
class Reporter(Protocol):
    def epoch(self, record: dict) -> str | None:
        """Called after each epoch; return ``"stop"`` to end training early."""

    def final(self, result: dict) -> None:
        """Called once with the Trial-result dict."""


def _json_safe(value):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def dumps(obj) -> str:
    return json.dumps(_json_safe(obj), allow_nan=False, separators=(",", ":"))


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps(_json_safe(obj), allow_nan=False, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class FileReporter:
    """``DIR/history.jsonl`` (one line per epoch) and ``DIR/result.json``.

    Creating the file ``DIR/stop`` asks the trial to stop after the current epoch
    (status EarlyStopped): how a runner that launched the CLI as a subprocess applies
    an early-stopping rule.
    """

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.history_path = self.out_dir / "history.jsonl"
        self.result_path = self.out_dir / "result.json"
        self.history_path.write_text("")  # a rerun into the same directory starts afresh

    def epoch(self, record: dict) -> str | None:
        with open(self.history_path, "a") as f:
            f.write(dumps(record) + "\n")
            f.flush()
        return "stop" if (self.out_dir / STOP_FILE).exists() else None

    def final(self, result: dict) -> None:
        write_json_atomic(self.result_path, result)
