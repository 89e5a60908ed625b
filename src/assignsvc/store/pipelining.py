"""Automatic pipelining: concurrent claim() calls share one Redis round trip.

Each claim() joins a queue; a flush scheduled with call_soon (so it runs once every
callback that is ready now has run, and therefore every Assign that arrived in the
same event-loop turn has joined) sends the queue as one pipeline of EVALSHA. While
`max_in_flight` pipelines are out, new claims wait and leave together as the next
one. A lone claim costs one loop turn, no timer: there is no batching delay.

The claims travel on the wrapped store's transport (store.claims.ClaimTransport): the
fast pipe (one pipelined connection, hiredis parsing) on a standalone Redis, redis-py,
or a Redis Cluster's. On the fast pipe a flush writes each batch at once and its
replies come back through a callback (no task or coroutine per batch, and the pipe's
timeout is one timer per batch); other transports, and the fast pipe before it is
connected or while its socket is busy, get one task per batch. The store keeps its
waiters' deadlines with one loop timer per group of claims that arrived in the same loop
turn (not one per claim: a timer's creation and cancellation were a visible share of a
new participant's server CPU). The timer fires at the group's earliest deadline, fails the waiters whose time is up, and
re-arms for the rest; it is cancelled once every waiter of the group has its answer.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from assignsvc.core.model import Experiment
from assignsvc.errors import StoreUnavailableError
from assignsvc.metrics import REDIS_CLAIM_DURATION, REDIS_CLAIM_ERRORS
from assignsvc.store.claims import ClaimTransport, to_claims
from assignsvc.store.protocols import AssignmentStore, Claim, ClaimRequest

Waiter = tuple[ClaimRequest, "asyncio.Future[Claim]", "_Group"]


@runtime_checkable
class Submitting(Protocol):
    """A claim transport that writes a batch at once (store.transports.FastPipeTransport)."""

    def submit(self, claims: Sequence[ClaimRequest]) -> asyncio.Future[list[Any]] | None:
        """The batch written now; the future of its raw replies (None: use run())."""
        ...

    def replies(self, claims: Sequence[ClaimRequest], calls: list[Any]) -> list[Any]:
        """One claim reply per claim from the raw replies; StoreUnavailableError on an error."""
        ...


class _Group:
    """The claims queued in one loop turn, with their deadlines: one timer for all of them."""

    __slots__ = ("deadline", "timer", "waiters")

    def __init__(self) -> None:
        self.waiters: list[tuple[asyncio.Future[Claim], float, float]] = []  # (future, deadline, timeout_s)
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = float("inf")

    def arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Make the timer fire at `deadline` if that is earlier than it would."""
        if deadline < self.deadline:
            if self.timer is not None:
                self.timer.cancel()
            self.deadline = deadline
            self.timer = loop.call_at(deadline, self.expire, loop)

    def expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the waiters whose deadline passed; re-arm for the earliest of the others."""
        self.timer, self.deadline = None, float("inf")
        now = loop.time()
        later = float("inf")
        for future, deadline, timeout_s in self.waiters:
            if future.done():
                continue
            if deadline <= now:
                _give_up(future, timeout_s)
            else:
                later = min(later, deadline)
        if later != float("inf"):
            self.arm(loop, later)

    def settle(self) -> None:
        """Cancel the timer once every waiter of the group has its answer."""
        if self.timer is not None and all(future.done() for future, _, _ in self.waiters):
            self.timer.cancel()
            self.timer = None


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
        # A transport that can write a batch at once (the fast pipe): no task per batch.
        self._submitting = transport if isinstance(transport, Submitting) else None
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[Waiter] = []
        self._group: _Group | None = None  # the group claims of this loop turn join
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

        The timeout fails the waiter's future from its group's timer (see the module)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Claim] = loop.create_future()
        group = self._group
        if group is None:
            group = self._group = _Group()
        if timeout_s is not None:
            deadline = loop.time() + timeout_s
            group.waiters.append((future, deadline, timeout_s))
            group.arm(loop, deadline)
        self._queue.append(((experiment, participant_id, proposed_arm, now_ms), future, group))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._flush_scheduled and self._in_flight < self._max_in_flight:
            self._flush_scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._group = None  # claims from now on start a group (and a timer) of their own
        if any(future.done() for _, future, _ in self._queue):
            # Callers that gave up (their deadline passed while Redis hung) are not sent: after a
            # stall, Redis gets the claims someone still waits for, not a backlog of abandoned ones.
            self._queue = [waiter for waiter in self._queue if not waiter[1].done()]
        while self._queue and self._in_flight < self._max_in_flight:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            self._in_flight += 1
            if not self._submit(batch):
                self._start_send(batch)

    def _start_send(self, batch: list[Waiter]) -> None:
        task = asyncio.ensure_future(self._send(batch))
        self._tasks.add(task)  # the loop holds tasks weakly
        task.add_done_callback(self._tasks.discard)

    def _submit(self, batch: list[Waiter]) -> bool:
        """Write the batch now on a submitting transport, its answers delivered by a callback:
        no task, no coroutine per batch. False when it cannot (no connection yet, a socket
        still busy, another transport): the batch then goes through _send."""
        if self._submitting is None:
            return False
        requests = [request for request, _, _ in batch]
        replies = self._submitting.submit(requests)
        if replies is None:
            return False
        replies.add_done_callback(functools.partial(self._submitted, batch, requests, time.perf_counter()))
        return True

    def _submitted(
        self, batch: list[Waiter], requests: list[ClaimRequest], started: float, replies: asyncio.Future[list[Any]]
    ) -> None:
        assert self._submitting is not None
        try:
            calls = replies.result()
            if any(isinstance(reply, Exception) and str(reply).startswith("NOSCRIPT") for reply in calls):
                self._start_send(batch)  # Redis lost the script: _send's run() loads it and sends again
                return
            outcome: list[Claim] | BaseException = to_claims(requests, self._submitting.replies(requests, calls))
        except Exception as error:  # StoreUnavailableError: timed out, connection lost, refused
            outcome = error
        except asyncio.CancelledError:  # not done by the pipe; never leave a waiter hanging
            outcome = StoreUnavailableError("the claim batch was cancelled")
        self._deliver(batch, outcome, started)

    async def _send(self, batch: list[Waiter]) -> None:
        started = time.perf_counter()
        try:
            requests = [request for request, _, _ in batch]
            if self._transport is not None:
                claims = to_claims(requests, await self._transport.run(requests))
            elif len(batch) == 1:
                claims = [await self._inner.claim(*requests[0])]
            else:
                claims = await self._inner.claim_many(requests)
        except BaseException as error:  # every waiter gets the failure (StoreUnavailableError, ...)
            self._deliver(batch, error, started)
            if not isinstance(error, Exception):
                raise
        else:
            self._deliver(batch, claims, started)

    def _deliver(self, batch: list[Waiter], outcome: list[Claim] | BaseException, started: float) -> None:
        """Each waiter's claim, or the batch's failure for every waiter; the next batch may go."""
        try:
            if isinstance(outcome, BaseException):
                REDIS_CLAIM_ERRORS.inc()
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(outcome)
            else:
                self.pipelines_sent += 1
                REDIS_CLAIM_DURATION.observe(time.perf_counter() - started)
                for (_, future, _), claim in zip(batch, outcome, strict=True):
                    if not future.done():  # a cancelled caller's claim still happened, harmlessly
                        future.set_result(claim)
        finally:
            _settle(batch)
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


def _settle(batch: list[Waiter]) -> None:
    """Settle the groups of a batch's waiters (usually one group a batch: each once)."""
    group = None
    for _, _, waiter_group in batch:
        if waiter_group is not group:
            group = waiter_group
            group.settle()


def _give_up(future: asyncio.Future[Claim], timeout_s: float) -> None:
    """The waiter's time is up: StoreUnavailableError now; the next flush drops its claim."""
    if not future.done():
        future.set_exception(StoreUnavailableError(f"store did not answer the claim within {timeout_s:.3f}s"))
