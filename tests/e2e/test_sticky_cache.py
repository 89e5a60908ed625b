"""The per-process cache of stored assignments: a hit makes no Redis call, and it can
never answer what Redis would not (bucket version and min_bucket_version are in the key)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from assignsvc.config import ServerConfig
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.store.sticky_cache import StickyCache
from assignsvc.v1 import assignment_service_pb2 as apb
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
                with pytest.raises(grpc.RpcError) as err:
                    assign(client, "c", "bob")
                assert err.value.code() is grpc.StatusCode.UNAVAILABLE
                redis_proc.start()
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
