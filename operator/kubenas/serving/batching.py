"""Dynamic batching: concurrent requests are run through the model together.

Requests wait in an asyncio queue. One task takes the oldest, then, for up to
``max_wait`` seconds, the others that arrive, and runs together every waiting request
whose items have the same shape and datatype as the oldest's (an audio clip or a
sequence is batched only with others of its length: the exported models crop, pad and
pool by length, so padding would change their answers), up to ``max_batch_size`` rows;
the rest wait for the next batch, oldest first. A request of more rows than
``max_batch_size`` runs alone. The model runs in one worker thread, off the event loop,
so the server keeps answering health checks and queueing while a batch runs; requests
that arrive meanwhile form the next batch, so batches grow with the load even with
``max_wait`` 0. ``max_batch_size`` 1 turns batching off.
"""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class _Waiting:
    array: np.ndarray
    future: asyncio.Future
    key: tuple = field(init=False)

    def __post_init__(self):
        self.key = (self.array.shape[1:], self.array.dtype)


class Batcher:
    def __init__(self, run: Callable[[np.ndarray], dict[str, np.ndarray]], *, max_batch_size: int, max_wait: float,
                 on_batch: Callable[[int], None] = lambda rows: None,
                 on_depth: Callable[[int], None] = lambda depth: None):
        if max_batch_size < 1 or max_wait < 0:
            raise ValueError("max_batch_size must be at least 1 and max_wait at least 0")
        self.run, self.max_batch_size, self.max_wait = run, max_batch_size, max_wait
        self.on_batch, self.on_depth = on_batch, on_depth
        self._queue: asyncio.Queue[_Waiting] = asyncio.Queue()
        self._pending: deque[_Waiting] = deque()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubenas-model")
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="kubenas-batcher")

    async def stop(self) -> None:
        """Stop taking batches (requests in flight have been answered: uvicorn waits for
        them before the application shuts down) and release the worker thread."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for waiting in list(self._pending) + _drain(self._queue):
            if not waiting.future.done():
                waiting.future.set_exception(RuntimeError("the server is shutting down"))
        self._worker.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return self._queue.qsize() + len(self._pending)

    async def submit(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for ``array`` (a batch of one request's rows)."""
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Waiting(array, future))
        self.on_depth(self.depth)
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._pending.append(await self._queue.get())
            self._pending.extend(_drain(self._queue))
            deadline = loop.time() + self.max_wait
            while self._rows_like_first() < self.max_batch_size:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    self._pending.append(await asyncio.wait_for(self._queue.get(), left))
                except asyncio.TimeoutError:
                    break
                self._pending.extend(_drain(self._queue))
            batch = self._take()
            self.on_depth(self.depth)
            await self._run(loop, batch)

    def _rows_like_first(self) -> int:
        key = self._pending[0].key
        return sum(len(w.array) for w in self._pending if w.key == key)

    def _take(self) -> list[_Waiting]:
        """The oldest request and the waiting ones shaped like it, up to max_batch_size rows."""
        first = self._pending.popleft()
        batch, rows, kept = [first], len(first.array), deque()
        while self._pending:
            waiting = self._pending.popleft()
            if waiting.key == first.key and rows + len(waiting.array) <= self.max_batch_size:
                batch.append(waiting)
                rows += len(waiting.array)
            else:
                kept.append(waiting)
        self._pending = kept
        return batch

    async def _run(self, loop, batch: list[_Waiting]) -> None:
        live = [w for w in batch if not w.future.done()]  # a client gone: its request is not run
        if not live:
            return
        array = live[0].array if len(live) == 1 else np.concatenate([w.array for w in live])
        self.on_batch(len(array))
        try:
            outputs = await loop.run_in_executor(self._worker, self.run, array)
        except Exception as err:  # noqa: BLE001 - each waiting request gets the model's failure
            for w in live:
                if not w.future.done():
                    w.future.set_exception(err)
            return
        start = 0
        for w in live:
            rows = len(w.array)
            if not w.future.done():
                w.future.set_result({name: value[start:start + rows] for name, value in outputs.items()})
            start += rows


def _drain(queue: asyncio.Queue) -> list[_Waiting]:
    items = []
    while True:
        try:
            items.append(queue.get_nowait())
        except asyncio.QueueEmpty:
            return items
