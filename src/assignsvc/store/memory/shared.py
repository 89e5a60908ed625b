"""What the in-memory stores share, as the Redis stores share one `{meta}` slot.

One revision counter and change feed (experiments, saved groups and access records
all announce their writes on it), one events stream (experiment writes append to it,
the outbox reads it) and the clock that stands in for Redis' own time (stream entry
ids, consumer idle times, turn markers).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from assignsvc.core.clock import Clock, wall_clock_ms
from assignsvc.errors import StoreUnavailableError
from assignsvc.store.experiments import SUBSCRIBED
from assignsvc.store.outbox import StreamEvent
from assignsvc.store.protocols import ChangeNotice


@dataclass(slots=True)
class _Pending:
    """An event given to a consumer and not yet fanned out (an entry of Redis' PEL)."""

    consumer: str
    delivered_ms: int


@dataclass(slots=True)
class EventStream:
    """The events stream with its one consumer group, as store.outbox uses Redis' (XADD,
    XREADGROUP, XAUTOCLAIM, XACK + XDEL)."""

    clock: Clock
    entries: dict[str, StreamEvent] = field(default_factory=dict)  # in order of their ids
    group: bool = False  # ensure_group ran
    last_given: tuple[int, int] = (-1, -1)  # the newest entry ever given to a consumer
    pending: dict[str, _Pending] = field(default_factory=dict)
    _last_id: tuple[int, int] = (0, -1)

    def append(self, type_: str, experiment: str, detail: str, target: str = "") -> StreamEvent:
        """A new entry, its id the clock's ms and a sequence (ids only grow, as XADD's)."""
        ms = max(self.clock(), self._last_id[0])
        seq = self._last_id[1] + 1 if ms == self._last_id[0] else 0
        self._last_id = (ms, seq)
        event = StreamEvent(f"{ms}-{seq}", type_, experiment, detail, target)
        self.entries[event.entry_id] = event
        return event

    def give(self, consumer: str, count: int) -> list[StreamEvent]:
        """Entries after the last one given, now pending with `consumer`."""
        if not self.group:
            raise StoreUnavailableError("store unavailable during read webhook events: NOGROUP")
        given = [e for e in self.entries.values() if _order(e) > self.last_given][:count]
        now = self.clock()
        for event in given:
            self.pending[event.entry_id] = _Pending(consumer, now)
        if given:
            self.last_given = _order(given[-1])
        return given

    def take_over(self, consumer: str, min_idle_ms: int, count: int) -> list[StreamEvent]:
        """Pending entries idle for min_idle_ms or more, now pending with `consumer` (oldest first)."""
        now = self.clock()
        taken: list[StreamEvent] = []
        for entry_id in sorted(self.pending, key=_order_of):
            if len(taken) >= count:
                break
            if entry_id not in self.entries:  # deleted: XAUTOCLAIM drops it from the pending list
                del self.pending[entry_id]
            elif now - self.pending[entry_id].delivered_ms >= min_idle_ms:
                self.pending[entry_id] = _Pending(consumer, now)
                taken.append(self.entries[entry_id])
        return taken

    def retire(self, entry_id: str) -> None:
        """Acknowledge and delete an entry."""
        self.pending.pop(entry_id, None)
        self.entries.pop(entry_id, None)


def _order_of(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _order(event: StreamEvent) -> tuple[int, int]:
    return _order_of(event.entry_id)


class SharedState:
    """The revision counter, change feed and events stream every in-memory store of one
    deployment shares; `unavailable` makes every store call fail as an unreachable Redis does."""

    def __init__(self, clock: Clock = wall_clock_ms) -> None:
        self.clock = clock
        self.revision = 0
        self.events = EventStream(clock)
        self.unavailable = False
        self._subscribers: list[asyncio.Queue[ChangeNotice]] = []

    def check(self, operation: str) -> None:
        """Raise StoreUnavailableError, as a Redis store does, while `unavailable` is set."""
        if self.unavailable:
            raise StoreUnavailableError(f"store unavailable during {operation}: in-memory store set unavailable")

    def publish(self, *ids: str) -> int:
        """Bump the revision and tell every subscriber which ids it covers; the new revision."""
        self.revision += 1
        notice = ChangeNotice(self.revision, ids)
        for queue in self._subscribers:
            queue.put_nowait(notice)
        return self.revision

    async def changes(self, operation: str) -> AsyncIterator[ChangeNotice]:
        """SUBSCRIBED, then a notice per publish() from then on, in order."""
        self.check(operation)
        queue: asyncio.Queue[ChangeNotice] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            yield SUBSCRIBED
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)
