"""Dynamic batching: concurrent requests are run through the model together.

A request joins a list of waiting requests and wakes the batcher once (a callback on
the event loop, not a task polling a queue). The batcher takes the oldest and every
waiting request whose items have the same shape and datatype as the oldest's (an audio
clip or a sequence is batched only with others of its length: the exported models crop,
pad and pool by length, so padding would change their answers), up to
``max_batch_size`` rows; the rest wait for the next batch, oldest first. With
``max_wait`` above 0 the oldest waits up to that long for others unless its batch is
full before. A request of more rows than ``max_batch_size`` runs alone.
``max_batch_size`` 1 turns batching off.

Where the model runs: a model run that takes longer than ``INLINE_BELOW_S`` (a running
mean of the last runs) goes to one worker thread, off the event loop, so the server keeps
reading requests and answering health checks while it runs, and the requests that
arrive meanwhile form the next batch (batches grow with the load even with ``max_wait``
0). A shorter run is made on the event loop itself: handing it to a thread and back
costs more than the run (bench/RESULTS.md, "Serving"), and the requests that arrived
while the loop was busy parsing others are batched all the same. The first run goes to
the thread (its cost is not known yet).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

INLINE_BELOW_S = 0.0005  # model runs shorter than this (running mean) are made on the event loop
_SMOOTHING = 0.2         # weight of the newest run in that running mean


@dataclass
class _Waiting:
    array: np.ndarray
    future: asyncio.Future
    arrived: float
    key: tuple = field(init=False)

    def __post_init__(self):
        self.key = (self.array.shape[1:], self.array.dtype)


class Batcher:
    def __init__(self, run: Callable[[np.ndarray], dict[str, np.ndarray]], *, max_batch_size: int, max_wait: float,
                 on_batch: Callable[[int], None] = lambda rows: None,
                 on_depth: Callable[[int], None] = lambda depth: None,
                 inline_below: float = INLINE_BELOW_S):
        if max_batch_size < 1 or max_wait < 0:
            raise ValueError("max_batch_size must be at least 1 and max_wait at least 0")
        self.run, self.max_batch_size, self.max_wait = run, max_batch_size, max_wait
        self.on_batch, self.on_depth, self.inline_below = on_batch, on_depth, inline_below
        self._pending: deque[_Waiting] = deque()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kubenas-model")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Handle | asyncio.TimerHandle | None = None
        self._running: asyncio.Future | None = None  # the batch in the worker thread
        self._mean_run_s: float | None = None       # None: no run measured yet
        self._stopped = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = False

    async def stop(self) -> None:
        """Stop taking batches (requests in flight have been answered: uvicorn waits for
        them before the application shuts down), let a batch in the worker finish, and
        release the worker thread."""
        self._stopped = True
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        if self._running is not None:
            await asyncio.wait([self._running])
        while self._pending:
            waiting = self._pending.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(RuntimeError("the server is shutting down"))
        self._worker.shutdown(wait=True)

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def runs_inline(self) -> bool:
        return self._mean_run_s is not None and self._mean_run_s < self.inline_below

    async def submit(self, array: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs for ``array`` (a batch of one request's rows)."""
        if self._loop is None or self._stopped:
            raise RuntimeError("the server is shutting down" if self._stopped else "the batcher is not started")
        future = self._loop.create_future()
        self._pending.append(_Waiting(array, future, self._loop.time()))
        self.on_depth(len(self._pending))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        """Wake the batcher: now, when the oldest request's batch is full or its wait is
        over, else when it will be; nothing while a batch runs in the worker (its end
        wakes it)."""
        if self._running is not None or not self._pending or self._stopped:
            return
        at = self._pending[0].arrived + self.max_wait
        if self.max_wait and self._rows_like_first() < self.max_batch_size and at > self._loop.time():
            if self._wakeup is None:
                self._wakeup = self._loop.call_at(at, self._dispatch)
            return
        if isinstance(self._wakeup, asyncio.TimerHandle):  # full before its wait was over
            self._wakeup.cancel()
            self._wakeup = None
        if self._wakeup is None:
            self._wakeup = self._loop.call_soon(self._dispatch)

    def _rows_like_first(self) -> int:
        key = self._pending[0].key
        return sum(len(w.array) for w in self._pending if w.key == key)

    def _dispatch(self) -> None:
        self._wakeup = None
        if self._running is not None or self._stopped:
            return
        batch = [w for w in self._take() if not w.future.done()]  # a client gone: its request is not run
        self.on_depth(len(self._pending))
        if batch:
            array = batch[0].array if len(batch) == 1 else np.concatenate([w.array for w in batch])
            self.on_batch(len(array))
            if self.runs_inline:
                try:
                    self._answer(batch, self._timed(array))
                except Exception as err:  # noqa: BLE001 - each waiting request gets the model's failure
                    self._answer(batch, err)
            else:
                self._running = self._loop.run_in_executor(self._worker, self._timed, array)
                self._running.add_done_callback(lambda done: self._finished(batch, done))
        self._schedule()

    def _timed(self, array: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        outputs = self.run(array)
        took = time.perf_counter() - start
        self._mean_run_s = took if self._mean_run_s is None else \
            (1 - _SMOOTHING) * self._mean_run_s + _SMOOTHING * took
        return outputs

    def _finished(self, batch: list[_Waiting], done: asyncio.Future) -> None:
        self._running = None
        self._answer(batch, done.exception() or done.result())
        self._schedule()

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

    @staticmethod
    def _answer(batch: list[_Waiting], outputs: dict[str, np.ndarray] | BaseException) -> None:
        start = 0
        for w in batch:
            rows = len(w.array)
            if not w.future.done():
                if isinstance(outputs, BaseException):
                    w.future.set_exception(outputs)
                else:
                    w.future.set_result({name: value[start:start + rows] for name, value in outputs.items()})
            start += rows
