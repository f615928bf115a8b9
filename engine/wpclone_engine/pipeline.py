"""Overlapping the two halves of a copy: the source is read while the destination writes."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")


class Pipeline(Generic[Item]):
    """Runs `consume` on each item put, in the background, `parallel` at a time (in order when 1),
    while the caller prepares the next: put() waits for the oldest to finish when `parallel` are
    running. So at most parallel + 1 items are ever held, and a failure of the consumer surfaces at a
    later put() or at close()."""

    def __init__(self, consume: Callable[[Item], Coroutine[Any, Any, object]], parallel: int = 1) -> None:
        self._consume = consume
        self._parallel = parallel
        self._running: deque[asyncio.Task[object]] = deque()

    async def put(self, item: Item) -> None:
        while len(self._running) >= self._parallel or any(task.done() for task in self._running):
            await self._running.popleft()
        self._running.append(asyncio.create_task(self._consume(item)))

    async def close(self) -> None:
        """Waits until everything put has been consumed; raises what the consumer raised."""
        while self._running:
            await self._running.popleft()

    async def cancel(self) -> None:
        for task in self._running:
            task.cancel()
        for task in self._running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()
