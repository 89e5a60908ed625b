"""A bounded LRU of stored assignments, so a repeat participant costs no Redis call.

A stored row never changes once written, so a cached copy can never be stale. The
key holds everything the stored answer depends on besides the row itself: the
experiment, its bucket version and its min_bucket_version (raising it can block a
participant who holds an older row). Re-randomizing or blocking therefore misses
the cache by construction, and deleted ids are never reused, so old entries are
simply unreachable and age out: nothing is ever invalidated by hand.

Beside a row the cache may keep the serialized reply a returning participant got, with
the object it was built from (the live experiment: any change to the experiment replaces
it, so a kept reply is used only while everything it shows is unchanged). A repeat Assign
is then answered with those bytes: no decoding of the row, no message to fill and
serialize. The reply lives and dies with its row.
"""

from __future__ import annotations

from collections import OrderedDict

# (experiment id, bucket_version, min_bucket_version, participant id)
CacheKey = tuple[str, int, int, str]
# (arm index, first_seen_ms)
CachedRow = tuple[int, int]
# (what the reply was built from, the arm id it shows, the serialized reply)
KeptReply = tuple[object, str, bytes]


class StickyCache:
    """LRU map from CacheKey to the stored row; max_entries 0 disables it."""

    def __init__(self, max_entries: int) -> None:
        self._max = max_entries
        self._rows: OrderedDict[CacheKey, CachedRow] = OrderedDict()
        self._replies: dict[CacheKey, KeptReply] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: CacheKey) -> CachedRow | None:
        """The cached row, marked most recently used, or None."""
        row = self._rows.get(key)
        if row is None:
            self.misses += 1
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return row

    def put(self, key: CacheKey, row: CachedRow) -> None:
        """Remember a stored row, evicting the least recently used beyond the bound."""
        if self._max <= 0:
            return
        if self._rows.get(key, row) != row:  # never in practice (rows never change): no stale reply
            self._replies.pop(key, None)
        self._rows[key] = row
        self._rows.move_to_end(key)
        if len(self._rows) > self._max:
            evicted, _ = self._rows.popitem(last=False)
            self._replies.pop(evicted, None)

    def put_many(self, rows: list[tuple[CacheKey, CachedRow]]) -> None:
        """put() for each (key, row), in order."""
        if self._max <= 0 or not rows:
            return
        cached = self._rows
        replies = self._replies
        for key, row in rows:
            if cached.get(key, row) != row:  # never in practice, as in put()
                replies.pop(key, None)
            cached[key] = row
            cached.move_to_end(key)
        while len(cached) > self._max:
            evicted, _ = cached.popitem(last=False)
            replies.pop(evicted, None)

    def kept_reply(self, key: CacheKey, owner: object) -> KeptReply | None:
        """The reply kept with a cached row, if it was built from `owner` (counted as a hit,
        the row marked most recently used), else None (not counted: the caller goes on to get())."""
        kept = self._replies.get(key)
        if kept is None or kept[0] is not owner:
            return None
        self._rows.move_to_end(key)
        self.hits += 1
        return kept

    def keep_reply(self, key: CacheKey, row: CachedRow, reply: KeptReply) -> None:
        """Keep a reply with its row, if that row is the one cached."""
        if self._rows.get(key) == row:
            self._replies[key] = reply

    def __len__(self) -> int:
        return len(self._rows)
