"""The per-process cache of stored assignments: a hit makes no Redis call, and it can
never answer what Redis would not (bucket version and min_bucket_version are in the key)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from assignsvc.config import ServerConfig
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.store.sticky_cache import StickyCache
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, assign, free_port, running_server


class TestLru:
    def test_evicts_the_least_recently_used(self) -> None:
        cache = StickyCache(2)
        cache.put(("e", 0, 0, "a"), (0, 1))
        cache.put(("e", 0, 0, "b"), (1, 2))
        assert cache.get(("e", 0, 0, "a")) == (0, 1)  # a is now the most recent
        cache.put(("e", 0, 0, "c"), (1, 3))
        assert cache.get(("e", 0, 0, "b")) is None
        assert cache.get(("e", 0, 0, "a")) == (0, 1) and cache.get(("e", 0, 0, "c")) == (1, 3)
        assert len(cache) == 2 and (cache.hits, cache.misses) == (3, 1)

    def test_size_zero_disables(self) -> None:
        cache = StickyCache(0)
        cache.put(("e", 0, 0, "a"), (0, 1))
        assert cache.get(("e", 0, 0, "a")) is None and len(cache) == 0


class TestKeptReplies:
    """A reply is kept only beside its own row, answered only for the object it was built
    from, and goes when its row goes."""

    def test_kept_beside_the_same_row_only(self) -> None:
        cache, owner = StickyCache(4), object()
        cache.keep_reply(("e", 0, 0, "a"), (0, 1), (owner, "a0", b"reply"))  # no row cached: not kept
        assert cache.kept_reply(("e", 0, 0, "a"), owner) is None
        cache.put(("e", 0, 0, "a"), (0, 1))
        cache.keep_reply(("e", 0, 0, "a"), (1, 1), (owner, "a1", b"other"))  # another row: not kept
        assert cache.kept_reply(("e", 0, 0, "a"), owner) is None
        cache.keep_reply(("e", 0, 0, "a"), (0, 1), (owner, "a0", b"reply"))
        assert cache.kept_reply(("e", 0, 0, "a"), owner) == (owner, "a0", b"reply")
        assert cache.kept_reply(("e", 0, 0, "a"), object()) is None  # built from another experiment
        assert (cache.hits, cache.misses) == (1, 0)

    def test_dropped_when_its_row_is_replaced(self) -> None:
        cache, owner = StickyCache(2), object()
        cache.put(("e", 0, 0, "a"), (0, 1))
        cache.keep_reply(("e", 0, 0, "a"), (0, 1), (owner, "a0", b"reply"))
        cache.put(("e", 0, 0, "a"), (0, 1))  # the same row again: the reply stays
        assert cache.kept_reply(("e", 0, 0, "a"), owner) is not None
        cache.put(("e", 0, 0, "a"), (1, 5))
        assert cache.kept_reply(("e", 0, 0, "a"), owner) is None

    def test_evicted_with_its_row(self) -> None:
        cache, owner = StickyCache(1), object()
        cache.put(("e", 0, 0, "a"), (0, 1))
        cache.keep_reply(("e", 0, 0, "a"), (0, 1), (owner, "a0", b"reply"))
        cache.put(("e", 0, 0, "b"), (0, 2))
        cache.put(("e", 0, 0, "a"), (0, 1))
        assert cache.kept_reply(("e", 0, 0, "a"), owner) is None


class TestThroughTheServer:
    """With Redis stopped, cached participants are still answered; nothing else is."""

    def test_hits_need_no_redis_and_versions_miss(self, tmp_path: Path) -> None:
        redis_proc = RedisServerProcess(tmp_path / "r", port=free_port(), appendonly=True)
        redis_proc.start()
        config = ServerConfig(port=0, redis_url=redis_proc.url, redis_timeout_s=0.5, refresh_interval_s=0.2)
        try:
            with running_server(config) as server:
                client = Client.connect(server.target)
                client.create("c")
                alice = assign(client, "c", "alice")
                redis_proc.stop()
                again = assign(client, "c", "alice")  # from the cache: Redis is down
                assert (again.arm, again.reason) == (alice.arm, apb.ASSIGNMENT_REASON_STICKY)
                assert again.first_seen_time == alice.first_seen_time
                thrice = client.assignments.Assign(apb.AssignRequest(experiment_id="c", participant_id="alice"))
                assert thrice.assignment == again  # the reply kept with the row: the same answer
                with pytest.raises(grpc.RpcError) as err:
                    assign(client, "c", "bob")
                assert err.value.code() is grpc.StatusCode.UNAVAILABLE
                redis_proc.start()
                # a changed experiment is a new object: the reply kept for the old one is not sent
                client.experiments.UpdateExperiment(
                    espb.UpdateExperimentRequest(
                        experiment=epb.Experiment(
                            id="c", forced_arms={"alice": "a1" if alice.arm.id == "a0" else "a0"}
                        ),
                        update_mask=FieldMask(paths=["forced_arms"]),
                    )
                )
                forced = assign(client, "c", "alice")
                assert forced.reason == apb.ASSIGNMENT_REASON_FORCED and forced.arm.id != alice.arm.id
                client.experiments.UpdateExperiment(
                    espb.UpdateExperimentRequest(
                        experiment=epb.Experiment(id="c"), update_mask=FieldMask(paths=["forced_arms"])
                    )
                )
                assert (assign(client, "c", "alice").reason, assign(client, "c", "alice").arm) == (
                    apb.ASSIGNMENT_REASON_STICKY,
                    alice.arm,
                )
                # a new bucket version is a different cache key: alice is bucketed afresh
                client.experiments.RerandomizeExperiment(
                    espb.RerandomizeExperimentRequest(experiment_id="c", block_previous_participants=False)
                )
                fresh = assign(client, "c", "alice")
                assert (fresh.reason, fresh.bucket_version) == (apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT, 1)
                # raising min_bucket_version changes the key too: alice (holding a v0 row) is blocked
                client.experiments.RerandomizeExperiment(
                    espb.RerandomizeExperimentRequest(experiment_id="c", block_previous_participants=True)
                )
                assert assign(client, "c", "alice").reason == apb.ASSIGNMENT_REASON_BLOCKED_BY_MIN_BUCKET_VERSION
                client.channel.close()
        finally:
            redis_proc.stop()
