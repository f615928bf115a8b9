"""The pipeline between reading the source and writing the destination: ordered, bounded, failing loudly."""

from __future__ import annotations

import asyncio

import pytest

from wpclone_engine.pipeline import Pipeline


async def test_items_are_consumed_in_order_and_close_waits_for_the_last() -> None:
    consumed: list[int] = []

    async def consume(item: int) -> None:
        await asyncio.sleep(0.001)
        consumed.append(item)
    pipeline: Pipeline[int] = Pipeline(consume)
    for item in range(20):
        await pipeline.put(item)
    await pipeline.close()
    assert consumed == list(range(20))


async def test_the_next_item_is_prepared_while_one_is_consumed_but_not_handed_over_early() -> None:
    release = asyncio.Event()
    started: list[int] = []

    async def consume(item: int) -> None:
        started.append(item)
        await release.wait()
    pipeline: Pipeline[int] = Pipeline(consume)
    await pipeline.put(1)  # returns at once: item 1 is consumed in the background
    second = asyncio.create_task(pipeline.put(2))
    await asyncio.sleep(0.05)
    assert started == [1] and not second.done()  # only two items held: the consumed one and the next
    release.set()
    await second
    await pipeline.close()
    assert started == [1, 2]


async def test_several_items_are_consumed_at_once_when_asked() -> None:
    running, most = 0, 0

    async def consume(item: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
    pipeline: Pipeline[int] = Pipeline(consume, parallel=2)
    for item in range(6):
        await pipeline.put(item)
    await pipeline.close()
    assert most == 2


async def test_a_consumer_failure_reaches_the_producer() -> None:
    async def consume(item: int) -> None:
        raise OSError(f"destination refused {item}")
    pipeline: Pipeline[int] = Pipeline(consume)
    await pipeline.put(0)
    with pytest.raises(OSError, match="destination refused 0"):
        await pipeline.put(1)
    await pipeline.close()


async def test_a_failure_of_the_last_item_surfaces_at_close() -> None:
    async def consume(item: int) -> None:
        raise OSError("commit refused")
    pipeline: Pipeline[int] = Pipeline(consume)
    await pipeline.put(0)
    with pytest.raises(OSError, match="commit refused"):
        await pipeline.close()


async def test_cancel_stops_the_consumer() -> None:
    started, stopped = asyncio.Event(), []

    async def consume(item: int) -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            stopped.append(item)
            raise
    pipeline: Pipeline[int] = Pipeline(consume)
    await pipeline.put(1)
    await started.wait()
    await asyncio.wait_for(pipeline.cancel(), 1)
    assert stopped == [1]
    await pipeline.close()  # nothing is left running to wait for
