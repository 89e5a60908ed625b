"""Automatic pipelining: concurrent claim() calls share one Redis round trip.

Each claim() joins a queue; a flush scheduled with call_soon (so it runs once every
callback that is ready now has run, and therefore every Assign that arrived in the
same event-loop turn has joined) sends the queue as one pipeline of EVALSHA. While
`max_in_flight` pipelines are out, new claims wait and leave together as the next
one. A lone claim costs one loop turn, no timer: there is no batching delay.

The claims travel on the wrapped store's transport (store.claims.ClaimTransport): the
fast pipe (one pipelined connection, hiredis parsing) on a standalone Redis, redis-py,
or a Redis Cluster's. The store keeps its waiters' deadlines: each is one timer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from assignsvc.core.model import Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.metrics import REDIS_CLAIM_DURATION, REDIS_CLAIM_ERRORS
from assignsvc.store.claims import ClaimTransport, to_claims
from assignsvc.store.protocols import AssignmentStore, Claim, ClaimRequest

Waiter = tuple[ClaimRequest, "asyncio.Future[Claim]"]


class PipelinedAssignmentStore:
    """AssignmentStore that groups concurrent claims into pipelines of the wrapped store.

    With `transport` (the wrapped store's own), claims go straight to it, one call less
    per round trip on the hot path; without, through the wrapped store's claim and
    claim_many. Reads always go to the wrapped store.
    """

    def __init__(
        self,
        inner: AssignmentStore,
        transport: ClaimTransport | None = None,
        max_batch: int = 512,
        max_in_flight: int = 4,
    ) -> None:
        self._inner = inner
        self._transport = transport
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[Waiter] = []
        self._in_flight = 0
        self._flush_scheduled = False
        self._tasks: set[asyncio.Future[None]] = set()
        self.pipelines_sent = 0  # for tests and stats: how many round trips carried claims

    async def claim(
        self,
        experiment: Experiment,
        participant_id: str,
        proposed_arm: int | None,
        now_ms: int,
        timeout_s: float | None = None,
    ) -> Claim:
        """See AssignmentStore.claim: queued, sent with whatever else is waiting.

        The timeout is one timer that fails the waiter's future: measured at about a third
        of asyncio.timeout's cost (~10 us a call here, on the unary hot path)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Claim] = loop.create_future()
        self._queue.append(((experiment, participant_id, proposed_arm, now_ms), future))
        self._schedule(loop)
        if timeout_s is None:
            return await future
        timer = loop.call_later(timeout_s, _give_up, future, timeout_s)
        try:
            return await future
        finally:
            timer.cancel()

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._flush_scheduled and self._in_flight < self._max_in_flight:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if any(future.done() for _, future in self._queue):
            # Callers that gave up (their deadline passed while Redis hung) are not sent: after a
            # stall, Redis gets the claims someone still waits for, not a backlog of abandoned ones.
            self._queue = [waiter for waiter in self._queue if not waiter[1].done()]
        while self._queue and self._in_flight < self._max_in_flight:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._in_flight += 1
            task = asyncio.ensure_future(self._send(batch))
            self._tasks.add(task)  # the loop holds tasks weakly
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[Waiter]) -> None:
        started = time.perf_counter()
        try:
            if self._transport is not None:
                requests = [request for request, _ in batch]
                claims = to_claims(requests, await self._transport.run(requests))
            elif len(batch) == 1:
                claims = [await self._inner.claim(*batch[0][0])]
            else:
                claims = await self._inner.claim_many([request for request, _ in batch])
            self.pipelines_sent += 1
            REDIS_CLAIM_DURATION.observe(time.perf_counter() - started)
        except BaseException as error:  # every waiter gets the failure (StoreUnavailableError, ...)
            REDIS_CLAIM_ERRORS.inc()
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            for (_, future), claim in zip(batch, claims, strict=True):
                if not future.done():  # a cancelled caller's claim still happened, harmlessly
                    future.set_result(claim)
        finally:
            self._in_flight -= 1
            if self._queue:
                self._schedule(asyncio.get_running_loop())

    async def claim_many(self, requests: Sequence[ClaimRequest]) -> list[Claim]:
        """See AssignmentStore.claim_many: one round trip of the transport (or the wrapped
        store). Sent at once, not queued (a batch is its own pipeline)."""
        if self._transport is not None:
            return to_claims(requests, await self._transport.run(requests))
        return await self._inner.claim_many(requests)

    async def lookup(self, experiment: Experiment, participant_id: str) -> Claim:
        """See AssignmentStore.lookup."""
        return await self._inner.lookup(experiment, participant_id)

    async def arm_counts(self, experiment: Experiment, bucket_version: int) -> list[int]:
        """See AssignmentStore.arm_counts."""
        return await self._inner.arm_counts(experiment, bucket_version)

    async def phase_counts(self, experiment: Experiment, bucket_version: int) -> dict[int, list[int]]:
        """See AssignmentStore.phase_counts."""
        return await self._inner.phase_counts(experiment, bucket_version)

    async def has_assignments(self, experiment: Experiment) -> bool:
        """See AssignmentStore.has_assignments."""
        return await self._inner.has_assignments(experiment)


def _give_up(future: asyncio.Future[Claim], timeout_s: float) -> None:
    """The waiter's time is up: StoreUnavailableError now; the next flush drops its claim."""
    if not future.done():
        future.set_exception(StoreUnavailableError(f"store did not answer the claim within {timeout_s:.3f}s"))
