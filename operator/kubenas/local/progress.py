"""Live progress of a local run: a rich progress bar, plus one line per finished trial."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from kubenas.contract import FAILED, SUCCEEDED
from kubenas.experiment import failure_line


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
        # A failure shows its message's last line (a program's exception ends its traceback),
        # cut to the terminal's width rather than at a fixed length.
        detail = (f"reward {reward:.4f}" if reward is not None
                  else f"{record.get('reason')}: {failure_line(record.get('message'), limit=1000)}")
        style = {SUCCEEDED: "green", FAILED: "red"}.get(record["status"], "yellow")
        # Text, not markup: a trial's error message is user text ("[/data/x.npz}: not found").
        line = Text.assemble((f"{record['status']:<12}", style), f" {record['name']:<32} {detail}")
        line.truncate(self.console.width, overflow="ellipsis")
        self.progress.console.print(line, highlight=False, no_wrap=True, overflow="ellipsis")
        self.progress.update(self.task, completed=done, running=running, failed=failed,
                             best="-" if best is None else f"{best:.4f}")

    def stop(self) -> None:
        self.progress.stop()
