"""main._run_bounded: kopf's shutdown is bounded once it begins; a clean one is untouched."""
import asyncio

import pytest

from kubenas.operator import main


class Exited(Exception):
    pass


@pytest.fixture
def exits(monkeypatch):
    codes = []

    def fake_exit(code):
        codes.append(code)
        raise Exited(code)
    monkeypatch.setattr(main.os, "_exit", fake_exit)
    return codes


async def test_a_shutdown_that_hangs_after_a_root_task_ended_exits_the_process(monkeypatch, exits):
    async def hanging_run_tasks(tasks, ignored):
        await asyncio.Event().wait()  # kopf waiting on something that never ends
    monkeypatch.setattr(main.kopf, "run_tasks", hanging_run_tasks)
    failed = asyncio.ensure_future(asyncio.sleep(0))  # a watch ended: kopf begins to stop
    alive = asyncio.ensure_future(asyncio.Event().wait())
    with pytest.raises(Exited):
        await main._run_bounded([failed, alive], frozenset(), deadline=0.2)
    assert exits == [main.STUCK_EXIT_CODE]
    alive.cancel()


async def test_a_clean_stop_returns_and_kopfs_error_propagates(monkeypatch, exits):
    async def failing_run_tasks(tasks, ignored):
        await asyncio.sleep(0.05)
        raise RuntimeError("watch failed")
    monkeypatch.setattr(main.kopf, "run_tasks", failing_run_tasks)
    ended = asyncio.ensure_future(asyncio.sleep(0))
    with pytest.raises(RuntimeError, match="watch failed"):
        await main._run_bounded([ended], frozenset(), deadline=5)

    async def clean_run_tasks(tasks, ignored):
        await asyncio.sleep(0.05)
    monkeypatch.setattr(main.kopf, "run_tasks", clean_run_tasks)
    await main._run_bounded([asyncio.ensure_future(asyncio.sleep(0))], frozenset(), deadline=5)
    assert exits == []


async def test_a_running_operator_is_not_bounded(monkeypatch, exits):
    """No root task has ended: kopf runs as long as it likes (the deadline starts at its stop)."""
    release = asyncio.Event()

    async def long_run_tasks(tasks, ignored):
        await release.wait()
    monkeypatch.setattr(main.kopf, "run_tasks", long_run_tasks)
    alive = asyncio.ensure_future(release.wait())
    runner = asyncio.ensure_future(main._run_bounded([alive], frozenset(), deadline=0.1))
    await asyncio.sleep(0.4)
    assert not runner.done() and exits == []
    release.set()
    await runner
