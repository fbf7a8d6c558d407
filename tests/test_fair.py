"""Fair upstream slots: a freed slot goes to the waiting task with the fewest in flight, in turn."""

from __future__ import annotations

import asyncio

import pytest

from sprint_orchestrator.proxy.fair import FairSlots


async def test_slots_rotate_between_tasks_and_a_lone_task_may_use_them_all() -> None:
    slots = FairSlots(2)
    order: list[str] = []
    gate = asyncio.Event()

    async def use(key: str) -> None:
        async with slots.slot(key):
            order.append(key)
            await gate.wait()

    hogs = [asyncio.create_task(use("a")) for _ in range(4)]
    await asyncio.sleep(0.01)
    assert slots.in_flight["a"] == 2  # alone: it may use every slot
    others = [asyncio.create_task(use("b")), asyncio.create_task(use("c"))]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(*hogs, *others)
    assert order[:2] == ["a", "a"] and set(order[2:4]) == {"b", "c"}, order
    assert slots.busy == 0


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    slots = FairSlots(1)
    release = asyncio.Event()

    async def hold() -> None:
        async with slots.slot("a"):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(slots.slot("b").__aenter__())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    async with slots.slot("c"):
        assert slots.in_flight == {"c": 1}
