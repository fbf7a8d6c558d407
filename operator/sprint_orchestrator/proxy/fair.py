"""Upstream slots shared fairly between task attempts.

The proxy sends at most `concurrency` requests per provider upstream at once. A plain semaphore hands
free slots out in arrival order, so one agent that fires twenty requests in parallel holds every slot
while the other tasks of the sprint wait behind it. `FairSlots` gives a freed slot to the waiting task
attempt with the fewest requests in flight (among equals, the one served least recently, then the
oldest waiter): each task gets its share,
and a task alone may still use all of them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(order=True)
class _Waiter:
    order: int
    key: Hashable = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class FairSlots:
    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("at least one slot")
        self.slots = slots
        self.in_flight: Counter[Hashable] = Counter()
        self._waiting: list[_Waiter] = []
        self._order = itertools.count()
        self._last_grant: dict[Hashable, int] = {}  # key -> when it last got a slot (turns rotate)

    @property
    def busy(self) -> int:
        return sum(self.in_flight.values())

    @asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        await self._acquire(key)
        try:
            yield
        finally:
            self._release(key)

    async def _acquire(self, key: Hashable) -> None:
        if self.busy < self.slots and not self._waiting:
            self._take(key)
            return
        waiter = _Waiter(next(self._order), key, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        try:
            await waiter.future  # resolved by _grant with the slot already counted for `key`
        except asyncio.CancelledError:
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled():
                self._release(key)  # granted just as we were cancelled: hand it on
            raise

    def _release(self, key: Hashable) -> None:
        self.in_flight[key] -= 1
        if self.in_flight[key] <= 0:
            del self.in_flight[key]
        self._grant()
        if not self._waiting:  # no contention: turns only matter while someone waits
            self._last_grant = {k: v for k, v in self._last_grant.items() if k in self.in_flight}

    def _grant(self) -> None:
        while self._waiting and self.busy < self.slots:
            waiter = min(
                self._waiting,
                key=lambda w: (self.in_flight[w.key], self._last_grant.get(w.key, -1), w.order),
            )
            self._waiting.remove(waiter)
            if waiter.future.done():  # cancelled while waiting
                continue
            self._take(waiter.key)
            waiter.future.set_result(None)

    def _take(self, key: Hashable) -> None:
        self.in_flight[key] += 1
        self._last_grant[key] = next(self._order)
