"""Claim transports on a standalone Redis: redis-py, and the fast pipe (store.fastpipe).

Both send what store.claims encodes and hand back the raw script replies, which the
claim store decodes; store.cluster has the third transport, for a Redis Cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from assignsvc.errors import StoreUnavailableError
from assignsvc.store.claims import CLAIM_BATCH_SCRIPT, CLAIM_SCRIPT, ClaimCodec
from assignsvc.store.fastpipe import FastScriptPipe, encode_command
from assignsvc.store.protocols import ClaimRequest
from assignsvc.store.redis_errors import store_errors


class RedisPyTransport:
    """Claims through redis-py: one EVALSHA for a lone claim, else one pipeline of them
    (not a transaction: each claim is atomic on its own; together they need not be)."""

    def __init__(self, redis: Redis, codec: ClaimCodec) -> None:
        self.codec = codec
        self._redis = redis
        self._script = redis.register_script(CLAIM_SCRIPT)

    async def run(self, claims: Sequence[ClaimRequest]) -> list[Any]:
        """See ClaimTransport.run."""
        call = self.codec.call
        if len(claims) == 1:  # a plain EVALSHA beats a pipeline of one
            keys, args = call(claims[0])
            with store_errors("claim"):
                reply: list[Any] = await self._script(keys=keys, args=args)
                return reply
        with store_errors("claim batch"):
            async with self._redis.pipeline(transaction=False) as pipe:
                for request in claims:
                    keys, args = call(request)
                    await self._script(keys=keys, args=args, client=pipe)
                calls: list[Any] = await pipe.execute()
        return [item for reply in calls for item in reply]


class FastPipeTransport:
    """Claims on a FastScriptPipe of their own: one EVALSHA of CLAIM_BATCH_SCRIPT per
    CLAIMS_PER_CALL claims, every call of a batch in one write."""

    def __init__(self, redis_url: str, timeout_s: float, codec: ClaimCodec) -> None:
        self.codec = codec
        # timeout_s bounds each round trip: past it the connection is no longer trusted
        self.pipe = FastScriptPipe(redis_url, CLAIM_BATCH_SCRIPT, timeout_s)

    async def run(self, claims: Sequence[ClaimRequest]) -> list[Any]:
        """See ClaimTransport.run."""
        return self.replies(claims, await self.pipe.execute_loading_script(self._commands(claims)))

    def submit(self, claims: Sequence[ClaimRequest]) -> asyncio.Future[list[Any]] | None:
        """The claims written now (FastScriptPipe.submit); the future of the script calls'
        replies, for replies(); None when run() must be used."""
        return self.pipe.submit(self._commands(claims))

    def _commands(self, claims: Sequence[ClaimRequest]) -> list[bytes]:
        sha = self.pipe.script_sha
        return [
            encode_command(b"EVALSHA", sha, len(keys), *keys, *args) for keys, args in self.codec.batch_calls(claims)
        ]

    @staticmethod
    def replies(claims: Sequence[ClaimRequest], calls: list[Any]) -> list[Any]:
        """The claims' flat replies (see ClaimTransport.run), from the script calls' replies;
        StoreUnavailableError for an error reply (a NOSCRIPT one included: submit() does
        not reload the script). to_claims checks that there is one reply per claim."""
        if len(calls) == 1 and not isinstance(calls[0], Exception):
            flat: list[Any] = calls[0]
            return flat
        replies: list[Any] = []
        for reply in calls:
            if isinstance(reply, Exception):
                raise StoreUnavailableError(f"store refused the claim: {reply}")
            replies += reply
        return replies
