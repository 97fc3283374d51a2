"""Micro-batching: concurrent requests share one forward pass, so throughput grows with load.

Each request puts its items on an asyncio queue and awaits their futures. One consumer takes the first waiting
item, gathers more (up to `max_batch`), and runs `handle` on the whole batch in a worker thread, so the event
loop keeps accepting requests while the model computes. While a batch computes, new requests queue up, and the
next batch takes them at once: under load, batches fill without waiting. It waits (at most `max_wait_ms`) only
while other requests are known to be on their way (`incoming`: received, still being decoded), so a lone
request never pays for a wait that cannot fill its batch.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    def __init__(self, handle: Callable[[list[Item]], list[Result]], max_batch: int = 16,
                 max_wait_ms: float = 4.0) -> None:
        if max_batch < 1:
            raise ValueError("the batch size must be at least 1")
        self.handle, self.max_batch, self.max_wait = handle, max_batch, max_wait_ms / 1000
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] = asyncio.Queue()
        self._consumer: asyncio.Task | None = None
        self.incoming = 0  # items of requests received but not yet submitted (the caller counts them)
        self.batches = 0  # how many forward passes ran (the proof that batching happens, in /health)
        self.items = 0
        self.busy_s = 0.0  # time spent in `handle`: near the wall time means the model is the bottleneck

    def start(self) -> None:
        if self._consumer is None:
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            await asyncio.gather(self._consumer, return_exceptions=True)
            self._consumer = None

    async def submit(self, items: list[Item]) -> list[Result]:
        """Results in the order of items; an exception in the batch is raised here."""
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        for item, future in zip(items, futures):
            self._queue.put_nowait((item, future))
        return list(await asyncio.gather(*futures))

    async def _consume(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await self._gather(batch)
            await self._run(batch)

    async def _gather(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0 or self.incoming <= 0:
                return
            try:  # more items are being decoded right now: worth a few milliseconds
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return

    async def _run(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        live = [(item, future) for item, future in batch if not future.done()]  # a client may have gone
        if not live:
            return
        started = time.perf_counter()
        try:
            results: list[Any] = await asyncio.to_thread(self.handle, [item for item, _ in live])
        except Exception as error:  # the request handlers turn it into a sentence
            results = [error] * len(live)
        self.batches += 1
        self.items += len(live)
        self.busy_s += time.perf_counter() - started
        for (_, future), result in zip(live, results):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
