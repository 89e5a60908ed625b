"""Keeps bulk work (export, preassign) from starving Assign on the shared event loop.

Bulk work runs in slices and calls `await pacer.checkpoint()` between them. A
checkpoint always yields once to the loop; if Assign calls were served since the last
checkpoint (the assigner's `served` counter moved), the bulk task then sleeps long
enough that its own share of the loop stays at `share` (10% by default). An idle
server runs bulk work at full speed; a busy one gives Assign at least 90% of its time,
whatever the exports ask for.

Why a counter and not "did the yield take long": the export's own gRPC writes run as
loop callbacks too, and on a crowded machine a yield also waits for the CPU; both
looked like Assign traffic and throttled a lone export to a tenth of its speed
(measured). Work is measured in the loop thread's CPU time (time.thread_time).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

SLICE_ROWS = 500  # rows of bulk work between checkpoints (~1-2 ms of Python)


class Pacer:
    """Duty-cycle limiter for one bulk stream (0 < share <= 1; 1 never sleeps)."""

    def __init__(self, share: float = 0.1, activity: Callable[[], int] = lambda: 0) -> None:
        self._share = share
        self._activity = activity
        self._seen = activity()
        self._since = time.thread_time()

    async def checkpoint(self) -> None:
        """Yield to the loop; if Assign was served meanwhile, sleep off this slice's excess."""
        worked = time.thread_time() - self._since
        await asyncio.sleep(0)
        seen = self._activity()
        busy, self._seen = seen != self._seen, seen  # Assign served since the last checkpoint, sleeps included
        if busy and self._share < 1.0:
            await asyncio.sleep(worked * (1 - self._share) / self._share)
        self._since = time.thread_time()
