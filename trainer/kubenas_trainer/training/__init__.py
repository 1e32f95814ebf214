"""The task-agnostic training loop: epochs, schedule, AMP, checkpoint/resume, measurement
and export (``loop``, ``checkpoint``, ``measure``, ``export``). It knows no task: a task
(kubenas_trainer.tasks) supplies data, model parts, loss and metrics."""
