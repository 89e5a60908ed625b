"""Redis Cluster: batches that follow MOVED, ASK and TRYAGAIN, the claim transport and the
assignment store on them (the experiment store sends its commands through `run_one` too).

Why not leave redirections to redis-py: its asyncio RedisCluster answers an ASK (a
slot half-way through a migration) by sending ASKING and then the command as two
separate pooled calls. With more than one idle connection to the target node they
leave on different connections, the target answers the bare command with MOVED back
to the source, which answers ASK again, until "TTL exhausted" (the slot-move tests in
tests/store/test_cluster.py fail that way when redirections are left to it). redis-py's synchronous
client, and this module, send ASKING and the command back to back on one connection.

So `run_commands` sends a batch as one ClusterPipeline with redirections off (one
round trip per node, in parallel), then, for the commands that need it, once more:
ASK -> ASKING + the command, on the named node; MOVED -> one command per slot through
redis-py, which patches its slot map, the rest in the next round on the new map;
TRYAGAIN (a multi-key command on a slot mid-migration whose keys are split between
the two nodes, or partly missing) -> after a short pause, up to MAX_ROUNDS (so for about
0.35 s: a slot's move takes milliseconds); NOSCRIPT (a node that never saw the script:
new, failed over, flushed) -> after loading it on every primary. A command answered
with any of these was not executed, so sending it again is always safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError, TryAgainError
from redis.typing import EncodableT, ScriptTextT

from assignsvc.core.model import Experiment
from assignsvc.store.assignments import ClaimingStore
from assignsvc.store.claims import (
    CLAIM_SCRIPT,
    CLAIM_SHA,
    ClaimCodec,
    ClaimTransport,
    PhaseCounts,
    lookup_claim,
    sum_phase_counts,
    total_counts,
)
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import Claim, ClaimRequest
from assignsvc.store.redis_errors import store_errors

Command = tuple[EncodableT, ...]

MAX_ROUNDS = 8  # a command redirected more often than this fails (its last error is its reply)
TRYAGAIN_PAUSE_S = 0.05


async def run_commands(
    cluster: RedisCluster, commands: Sequence[Command], script: ScriptTextT | None = None
) -> list[Any]:
    """Each command's reply, in order; an error reply is the exception object, not raised.

    `script` is the source of the Lua script the commands' EVALSHA run, if any.
    """
    replies: list[Any] = [None] * len(commands)
    pending = list(range(len(commands)))
    asking: dict[int, ClusterNode] = {}  # command index -> the node that answered ASK
    for _ in range(MAX_ROUNDS):
        results = await _send(cluster, [(commands[i], asking.pop(i, None)) for i in pending])
        for i, result in zip(pending, results, strict=True):
            replies[i] = result
        pending = await _next_round(cluster, commands, replies, pending, asking)
        if not pending:
            break
        if script is not None and any(isinstance(replies[i], NoScriptError) for i in pending):
            await cluster.script_load(script)  # sent to every primary
    return replies


async def run_one(cluster: RedisCluster, command: Command, script: ScriptTextT | None = None) -> Any:
    """One command's reply, as run_commands gets it; an error reply is raised."""
    return _raise_first_error(await run_commands(cluster, [command], script))[0]


async def _next_round(
    cluster: RedisCluster,
    commands: Sequence[Command],
    replies: list[Any],
    pending: list[int],
    asking: dict[int, ClusterNode],
) -> list[int]:
    """The commands to send again, after doing what their replies ask for."""
    again: list[int] = []
    moved: dict[int, int] = {}  # slot -> the one command that follows its MOVED through redis-py
    pause = False
    for i in pending:
        reply = replies[i]
        if isinstance(reply, MovedError):  # before AskError: MovedError is a subclass of it
            if reply.slot_id in moved:
                again.append(i)  # the next round goes by the slot map that the first one fixed
            else:
                moved[reply.slot_id] = i
        elif isinstance(reply, AskError):
            node = cluster.get_node(host=reply.host, port=reply.port)
            if node is None:  # a node this client has not met: ask the source again when the move is done
                pause = True
            else:
                asking[i] = node
            again.append(i)
        elif isinstance(reply, TryAgainError | NoScriptError):
            pause = pause or isinstance(reply, TryAgainError)
            again.append(i)
    followed = await asyncio.gather(*(_follow(cluster, commands[i]) for i in moved.values()))
    for i, reply in zip(moved.values(), followed, strict=True):
        replies[i] = reply
        if isinstance(reply, NoScriptError):
            again.append(i)
    if pause:
        await asyncio.sleep(TRYAGAIN_PAUSE_S)
    return sorted(again)


async def _send(cluster: RedisCluster, batch: Sequence[tuple[Command, ClusterNode | None]]) -> list[Any]:
    """One pipeline, redirections off; a command with a node goes there after ASKING."""
    async with cluster.pipeline(transaction=False) as pipe:
        for command, node in batch:
            if node is None:
                pipe.execute_command(*command)
            else:  # one connection per node per pipeline: ASKING lands right before its command
                pipe.execute_command("ASKING", target_nodes=node)
                pipe.execute_command(*command, target_nodes=node)
        results = iter(await pipe.execute(raise_on_error=False, allow_redirections=False))
    replies = []
    for _, node in batch:
        if node is not None:
            next(results)  # ASKING's OK
        replies.append(next(results))
    return replies


async def _follow(cluster: RedisCluster, command: Command) -> Any:
    """One command through redis-py's own MOVED handling (it patches the slot map)."""
    try:
        return await cluster.execute_command(*command)
    except Exception as error:  # a reply like any other, for run_commands to judge
        return error


def _raise_first_error(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


class ClusterTransport:
    """Claims on a Redis Cluster: one EVALSHA per claim, one run_commands batch.

    The keys of one claim share the hash tag {experiment:shard}, so one slot: the
    claim script runs on one node, atomically, as on a standalone Redis. A batch of
    claims is split by node and sent to every node at once. redis-py's pipe.evalsha()
    is refused in cluster mode (a script's keys may span slots; a node may lack the
    script): run_commands sends EVALSHA as a raw command and handles NOSCRIPT itself.
    """

    def __init__(self, cluster: RedisCluster, codec: ClaimCodec) -> None:
        self.codec = codec
        self._cluster = cluster

    async def run(self, claims: Sequence[ClaimRequest]) -> list[Any]:
        """See ClaimTransport.run."""
        commands = []
        for request in claims:
            keys, args = self.codec.call(request)
            commands.append(("EVALSHA", CLAIM_SHA, len(keys), *keys, *args))
        with store_errors("claim batch"):
            calls = _raise_first_error(await run_commands(self._cluster, commands, CLAIM_SCRIPT))
        return [item for reply in calls for item in reply]  # flat, as ClaimTransport.run answers


class ClusterAssignmentStore(ClaimingStore):
    """AssignmentStore on a Redis Cluster: claims on `transport` (a ClusterTransport unless
    given), reads as run_commands batches (the 4096 counter reads of a stats call are
    split by node and sent to every node at once)."""

    def __init__(self, cluster: RedisCluster, keys: Keyspace, transport: ClaimTransport | None = None) -> None:
        super().__init__(transport if transport is not None else ClusterTransport(cluster, ClaimCodec(keys)))
        self._cluster = cluster

    async def lookup(self, experiment: Experiment, participant_id: str) -> Claim:
        """See AssignmentStore.lookup."""
        key = self.transport.codec.claim_keys(experiment).of(participant_id)[0]
        with store_errors("lookup"):
            [row] = _raise_first_error(await run_commands(self._cluster, [("HGET", key, participant_id)]))
        return lookup_claim(experiment, row)

    async def arm_counts(self, experiment: Experiment, bucket_version: int) -> list[int]:
        """See AssignmentStore.arm_counts: phase_counts summed over the phases."""
        return total_counts(await self.phase_counts(experiment, bucket_version), len(experiment.arms))

    async def phase_counts(self, experiment: Experiment, bucket_version: int) -> PhaseCounts:
        """See AssignmentStore.phase_counts: HGETALL of every shard's counters, every node at once."""
        commands = [("HGETALL", key) for key in self._counter_keys(experiment, bucket_version)]
        with store_errors("read arm counts"):
            shards = _raise_first_error(await run_commands(self._cluster, commands))
        return sum_phase_counts(shards, len(experiment.arms))

    async def has_assignments(self, experiment: Experiment) -> bool:
        """See AssignmentStore.has_assignments: EXISTS of every counter key, per version."""
        with store_errors("check for assignments"):
            for version in range(experiment.bucket_version + 1):
                commands = [("EXISTS", key) for key in self._counter_keys(experiment, version)]
                if any(_raise_first_error(await run_commands(self._cluster, commands))):
                    return True
        return False
