"""assignsvc on a real 3-master Redis Cluster (the fixtures' server binary, cluster-enabled):
the URL, the stores, a live server end to end, propagation between two servers, and
a slot moving under a running server (ASK while it moves, MOVED after)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.field_mask_pb2 import FieldMask
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from assignsvc.config import ConfigError, ServerConfig, split_cluster_url
from assignsvc.core.hashing import storage_shard
from assignsvc.core.model import Arm, Experiment, ExperimentStatus
from assignsvc.errors import StoreUnavailableError
from assignsvc.store import ClaimKind, RedisExperimentStore
from assignsvc.store.cluster import ClusterAssignmentStore
from assignsvc.store.connection import connect
from assignsvc.store.experiments import SUBSCRIBED
from assignsvc.store.keys import Keyspace
from assignsvc.store.protocols import MUST_BE_NEW
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, ServerThread, assign, assign_all, cluster_config, running_server, stats, wait_until

EXPERIMENT = Experiment(id="exp", name="exp", arms=(Arm("a", "a", 0.5), Arm("b", "b", 0.5)))
SHARDS = EXPERIMENT.storage_shards


def nodes_of(url: str) -> list[redis.Redis]:
    """A plain client to each master named in a redis+cluster:// URL."""
    return [redis.Redis(host=host, port=port) for host, port in split_cluster_url(url)[1]]


class SlotMove:
    """Moves one slot from its master to the next one by hand, as `redis-cli --cluster
    reshard` does: start() leaves it half-way (every key moved, the source still owning
    the slot: it answers ASK), finish() hands it over (the old owner answers MOVED)."""

    def __init__(self, url: str, slot: int) -> None:
        self.slot = slot
        self.nodes = nodes_of(url)
        self.ports = [port for _, port in split_cluster_url(url)[1]]
        self.ids = [node.cluster("MYID") for node in self.nodes]
        owner_port = next(
            owner[1] for first, last, owner, *_ in self.nodes[0].cluster("SLOTS") if first <= slot <= last
        )
        self.source = self.ports.index(owner_port)
        self.target = (self.source + 1) % len(self.nodes)

    def start(self) -> list[bytes]:
        """Mark the slot migrating and move every key in it; returns the keys moved."""
        source, target = self.nodes[self.source], self.nodes[self.target]
        target.cluster("SETSLOT", self.slot, "IMPORTING", self.ids[self.source])
        source.cluster("SETSLOT", self.slot, "MIGRATING", self.ids[self.target])
        keys: list[bytes] = source.cluster("GETKEYSINSLOT", self.slot, 1000)
        if keys:
            source.execute_command("MIGRATE", "127.0.0.1", self.ports[self.target], "", 0, 5000, "KEYS", *keys)
        return keys

    def finish(self) -> None:
        """Give the slot to the target, on every master."""
        for node in self.nodes:
            node.cluster("SETSLOT", self.slot, "NODE", self.ids[self.target])

    def keys_on(self, which: int) -> int:
        return int(self.nodes[which].cluster("COUNTKEYSINSLOT", self.slot))


@pytest.fixture
def cluster_server(cluster_url: str, tmp_path: Path) -> Iterator[ServerThread]:
    """A live assignsvc server on the session cluster."""
    with running_server(cluster_config(cluster_url, tmp_path)) as thread:
        yield thread


@pytest.fixture
def cluster_client(cluster_server: ServerThread) -> Iterator[Client]:
    """Stubs connected to the live cluster server."""
    c = Client.connect(cluster_server.target)
    yield c
    c.channel.close()


def batch_assign(client: Client, experiment: str, ids: list[str]) -> list[apb.Assignment]:
    """BatchAssign in chunks of 1000 (its limit); every item must succeed."""
    out = []
    for start in range(0, len(ids), 1000):
        requests = [apb.AssignRequest(experiment_id=experiment, participant_id=p) for p in ids[start : start + 1000]]
        results = client.assignments.BatchAssign(apb.BatchAssignRequest(requests=requests)).results
        assert all(r.WhichOneof("result") == "assignment" for r in results), [r.error for r in results if r.error.code]
        out += [r.assignment for r in results]
    return out


def stream_assign(client: Client, experiment: str, ids: list[str]) -> list[apb.Assignment]:
    requests = iter([apb.StreamAssignRequest(experiment_id=experiment, participant_id=p) for p in ids])
    return [response.result.assignment for response in client.assignments.StreamAssign(requests)]


class TestClusterUrl:
    """redis+cluster:// names one or more startup nodes; a malformed list fails at start."""

    def test_nodes_credentials_and_options(self) -> None:
        assert split_cluster_url("redis+cluster://a:7000,b:7001") == ("redis://a:7000", [("a", 7000), ("b", 7001)])
        first, nodes = split_cluster_url("rediss+cluster://u:p%40ss@[::1]:7000,h:7001/?ssl_cert_reqs=none")
        assert first == "rediss://u:p%40ss@[::1]:7000/?ssl_cert_reqs=none"
        assert nodes == [("::1", 7000), ("h", 7001)]

    @pytest.mark.parametrize("url", ["redis+cluster://h", "redis+cluster://h:x", "redis+cluster://a:1,,b:2"])
    def test_malformed_node_lists_are_refused(self, url: str) -> None:
        with pytest.raises(ConfigError, match="ASSIGNSVC_REDIS_URL"):
            ServerConfig.load({}, redis_url=url)

    def test_accepted_by_config(self) -> None:
        assert ServerConfig.load({"ASSIGNSVC_REDIS_URL": "rediss+cluster://h:1"}).redis_url == "rediss+cluster://h:1"


def run_on(url: str, scenario: Callable[[RedisCluster], Awaitable[Any]], **connect_args: Any) -> Any:
    """Run `scenario` on a fresh cluster client; its result is whatever the test unpacks."""

    async def main() -> Any:
        cluster = connect(url, timeout_s=2.0, **connect_args)
        assert isinstance(cluster, RedisCluster)
        try:
            return await scenario(cluster)
        finally:
            await cluster.aclose()

    return asyncio.run(main())


class TestClusterStores:
    """The stores on a cluster: scripts reloaded where missing, bounded connections, a change
    feed that survives losing its node."""

    def test_claim_many_reloads_a_script_that_a_node_lost(self, cluster_url: str) -> None:
        async def scenario(cluster: RedisCluster) -> list[list[Any]]:
            store = ClusterAssignmentStore(cluster, Keyspace())
            first = await store.claim_many([(EXPERIMENT, f"p{i}", i % 2, 1) for i in range(300)])
            for node in nodes_of(cluster_url):
                node.script_flush()
            again = await store.claim_many([(EXPERIMENT, f"p{i}", 0, 2) for i in range(300)])
            return [first, again, [await store.arm_counts(EXPERIMENT, 0)]]

        first, again, [counts] = run_on(cluster_url, scenario)
        assert {c.kind for c in first} == {ClaimKind.CREATED}
        assert {c.kind for c in again} == {ClaimKind.EXISTING}
        assert [c.arm_index for c in again] == [i % 2 for i in range(300)]
        assert counts == [150, 150]

    def test_a_burst_waits_for_a_connection_instead_of_failing(self, cluster_url: str) -> None:
        async def scenario(cluster: RedisCluster) -> tuple[list[object], list[int]]:
            store = ClusterAssignmentStore(cluster, Keyspace())
            claims = await asyncio.gather(*(store.claim(EXPERIMENT, f"b{i}", 1, 1) for i in range(400)))
            looked = await asyncio.gather(*(store.lookup(EXPERIMENT, f"b{i}") for i in range(400)))
            pools = [len(node._connections) for node in cluster.get_nodes()]  # redis-py's per-node pool
            return [*claims, *looked], pools

        results, pools = run_on(cluster_url, scenario, max_connections=4)
        assert {c.arm_index for c in results} == {1}
        assert max(pools) <= 4

    def test_an_unreachable_cluster_is_store_unavailable(self) -> None:
        async def scenario(cluster: RedisCluster) -> None:
            await ClusterAssignmentStore(cluster, Keyspace()).claim(EXPERIMENT, "x", 0, 1)

        with pytest.raises(StoreUnavailableError, match="claim"):
            run_on("redis+cluster://127.0.0.1:1", scenario)

    def test_the_change_feed_moves_to_another_node_when_its_connection_dies(self, cluster_url: str) -> None:
        def subscribed_node() -> int:
            channel = Keyspace().experiment_changes
            counts = [dict(node.pubsub_numsub(channel))[channel.encode()] for node in nodes_of(cluster_url)]
            assert sum(counts) == 1
            return counts.index(1)

        async def scenario(cluster: RedisCluster) -> list[object]:
            store = RedisExperimentStore(cluster, Keyspace())
            feed = store.changes()
            assert await anext(feed) == SUBSCRIBED
            first = subscribed_node()
            nodes_of(cluster_url)[first].client_kill_filter(_type="pubsub")
            with pytest.raises(StoreUnavailableError):
                await asyncio.wait_for(anext(feed), 5)
            feed = store.changes()  # what the registry does after a loss
            assert await anext(feed) == SUBSCRIBED
            second = subscribed_node()
            await store.write([(dataclasses.replace(EXPERIMENT, revision=1), MUST_BE_NEW)])
            notice = await asyncio.wait_for(anext(feed), 5)
            assert isinstance(feed, AsyncGenerator)  # an async generator, so it can be closed
            await feed.aclose()
            return [first, second, notice]

        first, second, notice = run_on(cluster_url, scenario)
        assert first != second
        assert notice.experiment_ids == ("exp",)


class TestClusterServer:
    """A live server on the cluster behaves as on one Redis, and one experiment's rows are
    spread over every master."""

    @pytest.mark.slow
    def test_lifecycle_assign_sticky_batch_stream_and_stats(self, cluster_client: Client, cluster_url: str) -> None:
        client = cluster_client
        client.create("spread", weights=(0.2, 0.3, 0.5), status=epb.EXPERIMENT_STATUS_DRAFT)
        changed = epb.Experiment(
            id="spread",
            name="Spread",
            arms=[epb.Arm(id="a0", weight=0.25), epb.Arm(id="a1", weight=0.25), epb.Arm(id="a2", weight=0.5)],
        )
        request = espb.UpdateExperimentRequest(experiment=changed, update_mask=FieldMask(paths=["name", "arms"]))
        assert client.experiments.UpdateExperiment(request).experiment.name == "Spread"
        client.experiments.StartExperiment(espb.StartExperimentRequest(experiment_id="spread"))

        ids = [f"user-{i}" for i in range(2000)]
        first = assign_all(client, "spread", ids)
        assert {a.reason for a in first.values()} == {apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT}
        again = assign_all(client, "spread", ids)
        assert {a.reason for a in again.values()} == {apb.ASSIGNMENT_REASON_STICKY}
        arms = {p: a.arm.index for p, a in first.items()}
        assert {p: a.arm.index for p, a in again.items()} == arms
        assert [a.arm.index for a in batch_assign(client, "spread", ids)] == [arms[p] for p in ids]
        assert [a.arm.index for a in stream_assign(client, "spread", ids)] == [arms[p] for p in ids]

        counted = stats(client, "spread")
        per_arm = Counter(arms.values())
        assert counted.total_assignments == 2000
        assert [arm.assignments for arm in counted.arms] == [per_arm[0], per_arm[1], per_arm[2]]

        rows_per_node = [
            sum(1 for _ in node.scan_iter(match="as:a:{spread:*", count=1000)) for node in nodes_of(cluster_url)
        ]
        assert all(rows > 100 for rows in rows_per_node), rows_per_node  # ~1/3 each of the shards hit
        assert sum(rows_per_node) == len({storage_shard(p, SHARDS) for p in ids})

    def test_rerandomize_and_min_bucket_version_block(self, cluster_client: Client) -> None:
        client = cluster_client
        client.create("mbv")
        old = [f"old-{i}" for i in range(200)]
        assign_all(client, "mbv", old)
        request = espb.RerandomizeExperimentRequest(experiment_id="mbv", seed="s2", block_previous_participants=True)
        assert client.experiments.RerandomizeExperiment(request).experiment.min_bucket_version == 1
        blocked = assign_all(client, "mbv", old)
        assert {(a.in_experiment, a.reason, a.bucket_version) for a in blocked.values()} == {
            (False, apb.ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION, 0)
        }
        fresh = assign_all(client, "mbv", [f"new-{i}" for i in range(100)])
        assert {(a.reason, a.bucket_version) for a in fresh.values()} == {(apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT, 1)}
        assert (stats(client, "mbv", 0).total_assignments, stats(client, "mbv").total_assignments) == (200, 100)

    def test_delete_is_not_found(self, cluster_client: Client) -> None:
        cluster_client.create("gone")
        assign(cluster_client, "gone", "alice")
        cluster_client.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="gone"))
        with pytest.raises(grpc.RpcError) as err:
            assign(cluster_client, "gone", "alice")
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

    def test_changes_reach_another_server_by_pub_sub(self, cluster_url: str, tmp_path: Path) -> None:
        push_only = cluster_config(cluster_url, tmp_path, refresh_interval_s=3600.0)  # no polling to fall back on
        with running_server(push_only) as one, running_server(push_only) as two:
            a, b = Client.connect(one.target), Client.connect(two.target)
            a.create("pushed")
            assert two.running is not None
            registry = two.running.registry
            wait_until(lambda: registry.get("pushed") is not None, 5)
            arm = assign(b, "pushed", "alice").arm.index
            a.experiments.PauseExperiment(espb.PauseExperimentRequest(experiment_id="pushed"))
            wait_until(lambda: registry.get("pushed").experiment.status is ExperimentStatus.PAUSED, 5)  # type: ignore[union-attr]
            assert assign(b, "pushed", "bob").reason == apb.ASSIGNMENT_REASON_EXPERIMENT_NOT_RUNNING
            assert assign(a, "pushed", "alice").arm.index == arm  # stored through two, read through one
            a.experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="pushed"))
            wait_until(lambda: registry.get("pushed") is None, 5)
            a.channel.close()
            b.channel.close()


@pytest.mark.slow
class TestResharding:
    """A slot moves between masters under a running server: ASK while it moves, MOVED after;
    the server follows both, with no error and no arm changed."""

    def test_a_slot_with_rows_moves_to_another_master(self, cluster_client: Client, cluster_url: str) -> None:
        client = cluster_client
        client.create("mv")
        # 40 participants in one storage shard, so one slot, and 1000 anywhere.
        in_slot = [p for p in (f"m{i}" for i in range(400_000)) if storage_shard(p, SHARDS) == 7][:41]
        in_slot, newcomer = in_slot[:40], in_slot[40]
        others = [f"o{i}" for i in range(1000)]
        arms = {a.participant_id: a.arm.index for a in batch_assign(client, "mv", in_slot + others)}
        move = SlotMove(cluster_url, key_slot(Keyspace().assignments("mv", 7, 0).encode()))
        assert len(move.start()) == 2  # the shard's rows and its counters

        def check(phase: str) -> None:
            sticky = assign_all(client, "mv", in_slot + others)  # concurrent: pipelined claims
            assert {p: a.arm.index for p, a in sticky.items()} == arms, phase
            assert {a.reason for a in sticky.values()} == {apb.ASSIGNMENT_REASON_STICKY}, phase
            assert [a.arm.index for a in batch_assign(client, "mv", in_slot)] == [arms[p] for p in in_slot], phase
            looked = client.assignments.GetAssignment(
                apb.GetAssignmentRequest(experiment_id="mv", participant_id=in_slot[0])
            )
            assert looked.assignment.arm.index == arms[in_slot[0]], phase

        check("ASK: the slot is half-way")  # the source answers ASK for the moved keys
        assert assign(client, "mv", newcomer).reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT  # written on the target
        assert stats(client, "mv").total_assignments == 1041
        move.finish()
        check("MOVED: the slot has moved")  # the server's slot map still names the source
        assert assign(client, "mv", newcomer).reason == apb.ASSIGNMENT_REASON_STICKY
        assert stats(client, "mv").total_assignments == 1041
        assert (move.keys_on(move.source), move.keys_on(move.target)) == (0, 2)

    def test_the_experiment_slot_moves_under_concurrent_reads_and_writes(self, cluster_url: str) -> None:
        keys = Keyspace()

        async def burst(store: RedisExperimentStore, base: int) -> list[object]:
            # Concurrent, so that redis-py's pool for the target holds several idle connections.
            reads = [store.get("exp"), store.revision(), store.load_all(), store.get_archived("exp")] * 8
            updated = dataclasses.replace(EXPERIMENT, revision=base + 1)
            return [*await asyncio.gather(*reads), await store.write([(updated, base)])]

        async def scenario(cluster: RedisCluster) -> list[object]:
            store = RedisExperimentStore(cluster, keys)
            await store.write([(dataclasses.replace(EXPERIMENT, revision=1), MUST_BE_NEW)])
            # Every {meta} key exists (an archived experiment too): a multi-key script on a
            # slot half-way through a move gets TRYAGAIN if some of its keys are missing.
            await store.write([(dataclasses.replace(EXPERIMENT, id="old", revision=1), MUST_BE_NEW)])
            await store.archive("old", None)
            await burst(store, 1)
            move = SlotMove(cluster_url, key_slot(keys.experiments.encode()))
            moved = await asyncio.to_thread(move.start)
            during = await burst(store, 2)  # ASK
            await asyncio.to_thread(move.finish)
            after = await burst(store, 3)  # MOVED
            return [moved, during[-1], after[-1], await store.get("exp")]

        moved, during, after, final = run_on(cluster_url, scenario)
        assert len(moved) == 4  # experiments, archive, revision, events
        assert during is None and after is None  # both compare-and-set writes went through
        assert final.revision == 4


class TestClusterBulk:
    """Export and preassign on the cluster: one experiment's shards live on every master."""

    def test_preassign_then_export_every_row_once(self, cluster_client: Client) -> None:
        client = cluster_client
        client.create("pre", weights=(0.5, 0.5), type=epb.EXPERIMENT_TYPE_PREASSIGNED)
        ids = [f"user-{i}" for i in range(6000)]
        groups = [
            bpb.ParticipantGroup(strata={"plan": plan}, participant_ids=ids[k::2])
            for k, plan in enumerate(("free", "pro"))
        ]
        reply = client.bulk.PreassignParticipants(
            iter([bpb.PreassignParticipantsRequest(experiment_id="pre", groups=groups)]), timeout=60
        )
        assert reply.created_count == 6000
        assert sorted(a.assignments for s in reply.strata for a in s.arms) == [1500] * 4
        again = client.bulk.PreassignParticipants(
            iter([bpb.PreassignParticipantsRequest(experiment_id="pre", groups=groups)]), timeout=60
        )
        assert again.already_assigned_count == 6000
        rows, token = {}, ""
        for _ in range(3):  # three streams, each dropped after two chunks, then one to the end
            stream = client.bulk.ExportAssignments(
                bpb.ExportAssignmentsRequest(experiment_id="pre", chunk_size=500, resume_token=token), timeout=60
            )
            for i, chunk in enumerate(stream):
                for row in chunk.assignments:
                    assert row.participant_id not in rows
                    rows[row.participant_id] = (row.arm_id, dict(row.strata))
                token = chunk.resume_token
                if i == 1:
                    stream.cancel()
                    break
        for chunk in client.bulk.ExportAssignments(
            bpb.ExportAssignmentsRequest(experiment_id="pre", resume_token=token), timeout=60
        ):
            for row in chunk.assignments:
                assert row.participant_id not in rows
                rows[row.participant_id] = (row.arm_id, dict(row.strata))
        assert set(rows) == set(ids)
        assert {p: s["plan"] for p, (_, s) in rows.items()} == {p: ("free", "pro")[i % 2] for i, p in enumerate(ids)}
        assert all(assign(client, "pre", p).arm.id == rows[p][0] for p in ids[:50])
