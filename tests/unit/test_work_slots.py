"""The operator's work slots: a cap on work at once, finishing work let in before new work."""

from __future__ import annotations

import asyncio

from wpclone_operator.work_slots import FINISHING, STARTING, WorkSlots


async def _hold(slots: WorkSlots, rank: int, name: str, order: list[str], release: asyncio.Event,
                inside: list[str]) -> None:
    async with slots.held(rank):
        order.append(name)
        inside.append(name)
        await release.wait()
        inside.remove(name)


async def test_no_more_than_the_slots_work_at_once_and_finishing_work_goes_before_new_work() -> None:
    slots = WorkSlots(2)
    order: list[str] = []
    inside: list[str] = []
    gates = {name: asyncio.Event() for name in ("p1", "p2", "p3", "p4", "c1", "c2")}
    tasks = [asyncio.create_task(_hold(slots, STARTING, name, order, gates[name], inside))
             for name in ("p1", "p2", "p3", "p4")]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(_hold(slots, FINISHING, name, order, gates[name], inside)) for name in ("c1", "c2")]
    await asyncio.sleep(0)
    assert order == ["p1", "p2"]  # two at once; the rest wait
    for name in ("p1", "p2", "c1", "c2", "p3"):
        gates[name].set()
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(inside) <= 2
    gates["p4"].set()
    await asyncio.gather(*tasks)
    # The copies that came last went in before the two provisionings waiting longer; equals in turn.
    assert order == ["p1", "p2", "c1", "c2", "p3", "p4"]


async def test_a_waiter_cancelled_before_or_just_after_being_let_in_keeps_no_slot() -> None:
    slots = WorkSlots(1)
    release, order, inside = asyncio.Event(), [], []
    late: asyncio.Task[None] | None = None

    async def hold_then_cancel_the_next() -> None:
        async with slots.held(STARTING):
            order.append("holder")
            await release.wait()
        assert late is not None
        late.cancel()  # let in by the release just now, but not yet gone on

    holder = asyncio.create_task(hold_then_cancel_the_next())
    await asyncio.sleep(0)
    gone = asyncio.create_task(_hold(slots, FINISHING, "gone", order, asyncio.Event(), inside))
    await asyncio.sleep(0)
    gone.cancel()  # while it waits
    await asyncio.gather(gone, return_exceptions=True)
    late = asyncio.create_task(_hold(slots, FINISHING, "late", order, asyncio.Event(), inside))
    then = asyncio.create_task(_hold(slots, STARTING, "then", order, release, inside))
    await asyncio.sleep(0)
    release.set()
    await holder
    await asyncio.gather(late, return_exceptions=True)
    await asyncio.wait_for(then, 1)  # the slot passed on to it
    assert order == ["holder", "then"] and late.cancelled()
    async with slots.held(STARTING):  # and the one slot is free again
        pass
