"""The bulk-work pacer: full speed while Assign is idle, a 10% share of the loop while it runs."""

from __future__ import annotations

import asyncio
import time

from assignsvc.app.pacing import Pacer


def burn(seconds: float) -> None:
    """Busy-work of this thread's CPU time (what the pacer measures)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def paced_run(share: float, assign_traffic: bool, slices: int = 5, work_s: float = 0.004) -> float:
    """Wall time of `slices` slices of work with a checkpoint after each."""
    served = [0]

    async def traffic() -> None:  # an Assign served every millisecond, as the counter shows it
        while True:
            served[0] += 1
            await asyncio.sleep(0.001)

    other = asyncio.create_task(traffic()) if assign_traffic else None
    pacer = Pacer(share, activity=lambda: served[0])
    started = time.perf_counter()
    for _ in range(slices):
        burn(work_s)
        await pacer.checkpoint()
    elapsed = time.perf_counter() - started
    if other is not None:
        other.cancel()
    return elapsed


def test_idle_server_runs_bulk_work_at_full_speed() -> None:
    elapsed = asyncio.run(paced_run(0.1, assign_traffic=False))
    assert elapsed < 5 * 0.004 * 6  # the work itself plus scheduling noise, no pacing sleeps


def test_busy_server_keeps_bulk_work_to_its_share() -> None:
    elapsed = asyncio.run(paced_run(0.1, assign_traffic=True))
    # each 4 ms slice is followed by ~36 ms of sleep (90% of the loop left to Assign)
    assert elapsed > 5 * 0.004 * 8, elapsed


def test_share_one_never_sleeps() -> None:
    elapsed = asyncio.run(paced_run(1.0, assign_traffic=True))
    assert elapsed < 5 * 0.004 * 6
