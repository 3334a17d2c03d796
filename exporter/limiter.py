"""A FIFO concurrency limit that stays cheap with thousands of waiters.

``asyncio.Semaphore`` on Python 3.11 wakes the next waiter by walking its
queue past every waiter already woken but not yet resumed; with ten thousand
runs queued that walk was a tenth of a blocklist cycle's CPU (26 million
``Future.done()`` calls for 200,000 lookups). Here a release hands its slot
straight to the first live waiter, so each release costs O(1) amortised.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class Limiter:
    """At most ``slots`` held at once; waiters are served first come, first served.

    A holder may take several slots at once (a scheduler run of 16 targets takes
    16): it waits until that many are free, and those queued behind it wait too,
    so a large holder is never starved by small ones.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a limiter needs at least one slot")
        self._slots = slots
        self._free = slots
        self._waiters: deque[tuple[asyncio.Future[None], int]] = deque()

    def locked(self) -> bool:
        return self._free == 0

    def _weight(self, count: int) -> int:
        # More than the whole window would wait for ever: it takes all of it.
        return min(max(1, count), self._slots)

    async def acquire(self, count: int = 1) -> None:
        count = self._weight(count)
        if self._free >= count and not self._waiters:
            self._free -= count
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((waiter, count))
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed the slots, then cancelled before using them: pass them on.
                self.release(count)
            else:
                self._wake()  # it may have been the first in line, holding up the rest
            raise
        # The releaser handed the slots over: ``_free`` was already taken down for us.

    def release(self, count: int = 1) -> None:
        self._free += self._weight(count)
        self._wake()

    def _wake(self) -> None:
        """Hand free slots to the waiters at the front, in order, while they fit."""
        waiters = self._waiters
        while waiters:
            waiter, count = waiters[0]
            if waiter.done():  # cancelled while waiting: skipped, once each
                waiters.popleft()
                continue
            if count > self._free:
                return
            waiters.popleft()
            self._free -= count
            waiter.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()
