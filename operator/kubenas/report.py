"""Report a trial's progress and result from your own training program (docs/byo.md).

    from kubenas import report
    for epoch in range(1, epochs + 1):
        ...
        report.report(epoch=epoch, accuracy=val_acc, loss=val_loss)
    report.final(accuracy=val_acc)

Torch-free and tiny: it appends one metric line per call (the format of
kubenas.contract.byo) to the file in ``$KUBENAS_REPORT_FILE``. The ``kubenas-trial``
wrapper that runs your program (locally under ``kubenas run``, in a cluster as the trial
pod's command) collects it and reports it where results go: the run directory, or the
NASTrial's status. Outside kubenas (no such variable) the line is printed on standard
output instead, which the wrapper reads too. Imports nothing but the contract.
"""
from __future__ import annotations

import os

from kubenas.contract.byo import ENV_REPORT_FILE, format_report


def _write(line: str) -> None:
    path = os.environ.get(ENV_REPORT_FILE)
    if not path:
        print(line, flush=True)
        return
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()


def report(*, epoch: int, **metrics: float) -> None:
    """An intermediate result: the metrics after ``epoch`` (1, 2, ...). The median
    early-stopping rule reads the objective metric of these."""
    _write(format_report({"epoch": epoch, **metrics}))


def final(**metrics: float) -> None:
    """The trial's result (its objective metric, and any penalty metric such as
    ``parameters``). Without it, the last epoch's values are the result."""
    _write(format_report(metrics, final=True))


__all__ = ["report", "final"]
