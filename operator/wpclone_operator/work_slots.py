"""How much the operator works on at once: WPCLONE_CONCURRENCY slots, shared by provisioning clones,
copying into them and restoring them. When slots are short, work that finishes what a user waits for
(a copy into a clone whose pod serves, a restore) goes before provisioning one more clone: 50 clones
asked for at once were otherwise all provisioned before the first was copied, and none was Ready for
half a minute (bench.bench_scale)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator

FINISHING = 0  # a copy, a restore
STARTING = 1  # provisioning a clone


class WorkSlots:
    """At most `size` holders at once; a waiter of a lower rank is let in first, equal ranks in the order
    they came."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @contextlib.asynccontextmanager
    async def held(self, rank: int) -> AsyncIterator[None]:
        await self._acquire(rank)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        entry = (rank, next(self._arrivals), asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting, entry)
        try:
            await entry[2]
        except asyncio.CancelledError:
            if entry[2].done() and not entry[2].cancelled():
                self._release()  # let in, then cancelled before it went on: the slot goes to the next
            else:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, waiter = heapq.heappop(self._waiting)
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
