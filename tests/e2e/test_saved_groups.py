"""Saved groups through the live server and a real Redis: CRUD, uploads, $inGroup, propagation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2

from assignsvc.config import ServerConfig
from assignsvc.core.saved_groups import MemberSet
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import saved_group_service_pb2 as gpb
from tests.support import (
    Client,
    ServerThread,
    assign,
    bad_request,
    cluster_config,
    error_reason,
    running_server,
    wait_until,
)

IN_BETA = json.dumps({"id": {"$inGroup": "beta"}})


def _create(client: Client, group_id: str, ids: list[str]) -> gpb.SavedGroup:
    request = gpb.CreateSavedGroupRequest(saved_group=gpb.SavedGroup(id=group_id), ids=ids)
    return client.groups.CreateSavedGroup(request, timeout=10).saved_group


def _upload(
    client: Client,
    group_id: str,
    chunks: list[list[str]],
    mode: gpb.UploadMode = gpb.UPLOAD_MODE_REPLACE,
    etag: str = "",
) -> gpb.UploadSavedGroupIdsResponse:
    def messages() -> Iterator[gpb.UploadSavedGroupIdsRequest]:
        for i, chunk in enumerate(chunks):
            if i == 0:
                yield gpb.UploadSavedGroupIdsRequest(saved_group_id=group_id, mode=mode, etag=etag, ids=chunk)
            else:
                yield gpb.UploadSavedGroupIdsRequest(ids=chunk)

    return client.groups.UploadSavedGroupIds(messages(), timeout=60)


def _eligible(client: Client, experiment: str, member_id: str) -> bool:
    got = assign(client, experiment, f"p-{member_id}", {"id": member_id})
    assert got.reason in (apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT, apb.ASSIGNMENT_REASON_NOT_ELIGIBLE)
    return got.in_experiment


class TestSavedGroupApi:
    """Create, get, list, update and delete, with etags and validation."""

    def test_crud(self, client: Client) -> None:
        created = _create(client, "beta", ["u1", "u2", "u2"])
        assert (created.id, created.name, created.size, created.etag) == ("beta", "beta", 2, "1")
        got = client.groups.GetSavedGroup(gpb.GetSavedGroupRequest(saved_group_id="beta")).saved_group
        assert got == created
        updated = client.groups.UpdateSavedGroup(
            gpb.UpdateSavedGroupRequest(
                saved_group_id="beta",
                etag=created.etag,
                name="Beta testers",
                add_ids=["u3"],
                remove_ids=["u1"],
            )
        ).saved_group
        assert (updated.name, updated.size, updated.etag) == ("Beta testers", 2, "2")
        _create(client, "alpha", [])
        listed = client.groups.ListSavedGroups(gpb.ListSavedGroupsRequest(page_size=1))
        assert [g.id for g in listed.saved_groups] == ["alpha"] and listed.next_page_token
        rest = client.groups.ListSavedGroups(gpb.ListSavedGroupsRequest(page_token=listed.next_page_token))
        assert [g.id for g in rest.saved_groups] == ["beta"] and not rest.next_page_token
        client.groups.DeleteSavedGroup(gpb.DeleteSavedGroupRequest(saved_group_id="alpha"))
        with pytest.raises(grpc.RpcError) as err:
            client.groups.GetSavedGroup(gpb.GetSavedGroupRequest(saved_group_id="alpha"))
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

    def test_stale_etag_and_duplicates(self, client: Client) -> None:
        _create(client, "g", ["a"])
        with pytest.raises(grpc.RpcError) as err:
            _create(client, "g", [])
        assert err.value.code() is grpc.StatusCode.ALREADY_EXISTS
        with pytest.raises(grpc.RpcError) as err:
            client.groups.UpdateSavedGroup(gpb.UpdateSavedGroupRequest(saved_group_id="g", etag="7", add_ids=["b"]))
        assert err.value.code() is grpc.StatusCode.ABORTED

    def test_bad_input(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            _create(client, "bad id", ["", "x" * 300])
        assert list(bad_request(err.value)) == ["saved_group.id", "ids[0]", "ids[1]"]
        with pytest.raises(grpc.RpcError) as err:
            _create(client, "big", [f"u{i}" for i in range(10_001)])
        assert "UploadSavedGroupIds" in bad_request(err.value)["ids"]


class TestInGroup:
    """Conditions test membership in the live group; every replica sees each change."""

    def test_membership_and_updates(self, client: Client) -> None:
        created = _create(client, "beta", ["u1", "u2"])
        client.create("gated", condition=IN_BETA)
        client.create("open", condition=json.dumps({"id": {"$notInGroup": "beta"}}))
        assert _eligible(client, "gated", "u1") and not _eligible(client, "gated", "u9")
        assert _eligible(client, "open", "u9") and not _eligible(client, "open", "u2")
        client.groups.UpdateSavedGroup(
            gpb.UpdateSavedGroupRequest(saved_group_id="beta", etag=created.etag, add_ids=["u9"], remove_ids=["u2"])
        )
        assert _eligible(client, "gated", "u9b") is False  # another id, still out
        assert assign(client, "gated", "q1", {"id": "u9"}).in_experiment  # same replica: at once
        assert not assign(client, "gated", "q2", {"id": "u2"}).in_experiment

    def test_unknown_group_refused(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            client.create("nogroup", condition=json.dumps({"id": {"$inGroup": "nope"}}))
        assert "do not exist: 'nope'" in bad_request(err.value)["experiment.condition"]

    def test_delete_refused_while_named(self, client: Client) -> None:
        _create(client, "beta", ["u1"])
        created = client.create("gated", condition=IN_BETA)
        with pytest.raises(grpc.RpcError) as err:
            client.groups.DeleteSavedGroup(gpb.DeleteSavedGroupRequest(saved_group_id="beta"))
        assert err.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(err.value) == "SAVED_GROUP_IN_USE"
        client.experiments.UpdateExperiment(
            espb.UpdateExperimentRequest(
                experiment=epb.Experiment(id="gated", etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["condition"]),
            )
        )
        client.groups.DeleteSavedGroup(gpb.DeleteSavedGroupRequest(saved_group_id="beta"))

    def test_propagates_to_another_replica(self, client: Client, server_config: ServerConfig) -> None:
        created = _create(client, "beta", ["u1"])
        client.create("gated", condition=IN_BETA)
        with running_server(server_config) as other:
            second = Client.connect(other.target)
            assert _eligible(second, "gated", "u1") and not _eligible(second, "gated", "u5")
            client.groups.UpdateSavedGroup(
                gpb.UpdateSavedGroupRequest(saved_group_id="beta", etag=created.etag, add_ids=["u5"])
            )
            wait_until(lambda: assign(second, "gated", "late", {"id": "u5"}).in_experiment)
            second.channel.close()


class TestUpload:
    """Big lists stream in chunks and become visible at once, all or nothing."""

    def test_200k_ids_replace_then_add(self, client: Client, server: ServerThread, server_config: ServerConfig) -> None:
        created = _create(client, "big", ["old"])
        ids = [f"user-{i:07d}" for i in range(200_000)]
        reply = _upload(client, "big", [ids[i : i + 10_000] for i in range(0, len(ids), 10_000)], etag=created.etag)
        assert (reply.received_ids, reply.saved_group.size, reply.saved_group.etag) == (200_000, 200_000, "2")
        client.create("gated", condition=json.dumps({"id": {"$inGroup": "big"}}))
        assert _eligible(client, "gated", "user-0199999") and not _eligible(client, "gated", "old")
        added = _upload(client, "big", [["old", "user-0000001"]], mode=gpb.UPLOAD_MODE_ADD)
        assert added.saved_group.size == 200_001
        members = server.running.registry.groups["big"] if server.running else None
        assert isinstance(members, MemberSet) and len(members) == 200_001
        with running_server(server_config) as other:  # a fresh replica loads it whole
            second = Client.connect(other.target)
            assert _eligible(second, "gated", "old") and _eligible(second, "gated", "user-0123456")
            second.channel.close()

    def test_a_bad_chunk_changes_nothing(self, client: Client) -> None:
        _create(client, "keep", ["a", "b"])
        with pytest.raises(grpc.RpcError) as err:
            _upload(client, "keep", [["c", "d"], ["e", ""]])
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        got = client.groups.GetSavedGroup(gpb.GetSavedGroupRequest(saved_group_id="keep")).saved_group
        assert (got.size, got.etag) == (2, "1")

    def test_unknown_group(self, client: Client) -> None:
        with pytest.raises(grpc.RpcError) as err:
            _upload(client, "ghost", [["a"]])
        assert err.value.code() is grpc.StatusCode.NOT_FOUND


class TestOnRedisCluster:
    """Groups and targeting work unchanged on a real 3-master Redis Cluster ({meta} slot)."""

    def test_groups_conditions_and_propagation(self, cluster_url: str, tmp_path: Path) -> None:
        with running_server(cluster_config(cluster_url, tmp_path)) as first:
            client = Client.connect(first.target)
            created = _create(client, "beta", ["u1"])
            ids = [f"c-{i}" for i in range(20_000)]
            reply = _upload(client, "beta", [ids[:10_000], ids[10_000:], ["u1"]], etag=created.etag)
            assert reply.saved_group.size == 20_001
            client.create("gated", condition=IN_BETA)
            assert _eligible(client, "gated", "c-19999") and not _eligible(client, "gated", "zz")
            kept = assign(client, "gated", "p1", {"id": "u1"})
            with running_server(cluster_config(cluster_url, tmp_path / "2")) as second_server:
                second = Client.connect(second_server.target)
                moved = assign(second, "gated", "p1", {"id": "not-a-member"})  # no cache: read from Redis
                assert (moved.arm.id, moved.reason) == (kept.arm.id, apb.ASSIGNMENT_REASON_STICKY)
                client.groups.UpdateSavedGroup(gpb.UpdateSavedGroupRequest(saved_group_id="beta", add_ids=["zz"]))
                wait_until(lambda: assign(second, "gated", "late", {"id": "zz"}).in_experiment)
                second.channel.close()
            client.channel.close()


class TestRegistryConsistency:
    """What a replica holds after missing notices (found in review)."""

    def test_a_recreated_group_is_reloaded_even_at_a_lower_revision(
        self, client: Client, server: ServerThread, redis_url: str
    ) -> None:
        import asyncio  # noqa: PLC0415

        from assignsvc.app.registry import ExperimentRegistry  # noqa: PLC0415
        from assignsvc.store import RedisExperimentStore  # noqa: PLC0415
        from assignsvc.store.connection import connect  # noqa: PLC0415
        from assignsvc.store.keys import Keyspace  # noqa: PLC0415
        from assignsvc.store.saved_groups import RedisSavedGroupStore  # noqa: PLC0415

        created = _create(client, "beta", ["alice"])
        for name in ("one", "two"):  # revision 3
            created = client.groups.UpdateSavedGroup(
                gpb.UpdateSavedGroupRequest(saved_group_id="beta", etag=created.etag, name=name)
            ).saved_group

        async def scenario() -> tuple[bool, bool]:
            redis = connect(redis_url, 2.0)
            keys = Keyspace()
            registry = ExperimentRegistry(RedisExperimentStore(redis, keys), 3600, RedisSavedGroupStore(redis, keys))
            await registry.refresh()  # holds beta at revision 3, then misses every notice
            assert "alice" in registry.groups["beta"]
            await asyncio.to_thread(client.groups.DeleteSavedGroup, gpb.DeleteSavedGroupRequest(saved_group_id="beta"))
            await asyncio.sleep(0.01)  # a later creation time
            await asyncio.to_thread(_create, client, "beta", ["bob"])  # revision 1 again
            await registry.refresh()
            members = registry.groups["beta"]
            await redis.aclose()
            return "alice" in members, "bob" in members

        assert asyncio.run(scenario()) == (False, True)
