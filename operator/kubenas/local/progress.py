"""Live progress of a local run: a rich progress bar, plus one line per finished trial."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from kubenas.contract import FAILED, SUCCEEDED


class RichProgress:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(),
            TextColumn("running {task.fields[running]}  failed {task.fields[failed]}  best {task.fields[best]}"),
            TimeElapsedColumn(), console=self.console, transient=False)
        self.task = None
        self.running = 0

    def start(self, total: int, done: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task("trials", total=total, completed=done, running=0, failed=0, best="-")

    def trial_started(self, name: str) -> None:
        self.running += 1
        self.progress.update(self.task, running=self.running)

    def trial_finished(self, record: dict, done: int, running: int, failed: int, best: float | None) -> None:
        self.running = running
        reward = record.get("reward")
        detail = f"reward {reward:.4f}" if reward is not None else f"{record.get('reason')}: {(record.get('message') or '')[:120]}"
        style = {SUCCEEDED: "green", FAILED: "red"}.get(record["status"], "yellow")
        # Text, not markup: a trial's error message is user text ("[/data/x.npz}: not found").
        self.progress.console.print(Text.assemble((f"{record['status']:<12}", style), f" {record['name']:<32} {detail}"),
                                    highlight=False)
        self.progress.update(self.task, completed=done, running=running, failed=failed,
                             best="-" if best is None else f"{best:.4f}")

    def stop(self) -> None:
        self.progress.stop()
