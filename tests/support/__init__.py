"""Test helpers: a real assignsvc server in a background thread, stubs, error details."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from assignsvc.config import ServerConfig
from assignsvc.server import RunningServer, create_server
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import bulk_assignment_service_pb2_grpc as bgrpc
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import experiment_service_pb2_grpc as egrpc
from assignsvc.v1 import saved_group_service_pb2_grpc as ggrpc


def free_port() -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Client:
    """Stubs on one channel to a running server."""

    channel: grpc.Channel
    experiments: egrpc.ExperimentServiceStub
    assignments: agrpc.AssignmentServiceStub
    bulk: bgrpc.BulkAssignmentServiceStub

    @classmethod
    def connect(cls, target: str) -> Client:
        """Stubs on a new insecure channel to target."""
        return cls.on(grpc.insecure_channel(target))

    @classmethod
    def on(cls, channel: grpc.Channel) -> Client:
        """Stubs on an existing channel."""
        return cls(
            channel,
            egrpc.ExperimentServiceStub(channel),
            agrpc.AssignmentServiceStub(channel),
            bgrpc.BulkAssignmentServiceStub(channel),
        )

    @property
    def groups(self) -> ggrpc.SavedGroupServiceStub:
        """The SavedGroupService stub on this channel."""
        return ggrpc.SavedGroupServiceStub(self.channel)

    def create(self, experiment_id: str, weights: tuple[float, ...] = (0.5, 0.5), **fields: object) -> epb.Experiment:
        """Create a RUNNING experiment with arms a0, a1, ... (fields override)."""
        arms = [epb.Arm(id=f"a{i}", weight=w) for i, w in enumerate(weights)]
        exp = epb.Experiment(id=experiment_id, arms=arms, status=epb.EXPERIMENT_STATUS_RUNNING)
        for name, value in fields.items():
            if isinstance(value, Message):
                getattr(exp, name).CopyFrom(value)
            elif isinstance(value, dict):
                getattr(exp, name).update(value)
            else:
                setattr(exp, name, value)
        return self.experiments.CreateExperiment(espb.CreateExperimentRequest(experiment=exp)).experiment


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    """A google.protobuf.Struct holding `values` (participant attributes)."""
    message = struct_pb2.Struct()
    message.update(values)
    return message


def assign(
    client: Client, experiment: str, participant: str, attributes: dict[str, Any] | None = None
) -> apb.Assignment:
    """One unary Assign (with attributes when given); the Assignment."""
    request = apb.AssignRequest(experiment_id=experiment, participant_id=participant)
    if attributes is not None:
        request.attributes.CopyFrom(struct(attributes))
    return client.assignments.Assign(request, timeout=10).assignment


class ServerThread:
    """create_server() running on its own event loop in a daemon thread."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.running: RunningServer | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            self.running = await create_server(self._config)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.running.stop()

    def start(self) -> ServerThread:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    @property
    def target(self) -> str:
        assert self.running is not None
        return f"127.0.0.1:{self.running.port}"

    def call(self, coro: object) -> object:
        """Run a coroutine on the server's loop (to reach its registry or stores)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@contextlib.contextmanager
def running_server(config: ServerConfig) -> Iterator[ServerThread]:
    """A started ServerThread, stopped on exit."""
    thread = ServerThread(config).start()
    try:
        yield thread
    finally:
        thread.stop()


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Poll predicate until it is true; fail the test after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def bad_request_fields(error: grpc.RpcError) -> list[str]:
    """The field names of the google.rpc.BadRequest detail of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status details"
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def bad_request(error: grpc.RpcError) -> dict[str, str]:
    """Field -> description of the google.rpc.BadRequest detail of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status details"
    out: dict[str, str] = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update((v.field, v.description) for v in bad.field_violations)
    return out


def error_reason(error: grpc.RpcError) -> str:
    """The google.rpc.ErrorInfo reason of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, "no rich status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError("no ErrorInfo detail")


@dataclass(frozen=True)
class Ran:
    """What one CLI command did: exit status and what it printed."""

    code: int
    out: str
    err: str


Cli = Callable[..., Ran]  # the `cli` fixture: runs `assignsvc ARGS --target <live server>` in-process


def assign_all(client: Client, experiment: str, ids: list[str]) -> dict[str, apb.Assignment]:
    """Assign many participants, 250 calls in flight at a time."""
    out = {}
    for start in range(0, len(ids), 250):
        chunk = ids[start : start + 250]
        futures = [
            client.assignments.Assign.future(apb.AssignRequest(experiment_id=experiment, participant_id=p))
            for p in chunk
        ]
        out.update({p: f.result(timeout=30).assignment for p, f in zip(chunk, futures, strict=True)})
    return out


def stats(client: Client, experiment_id: str, bucket_version: int | None = None) -> espb.GetExperimentStatsResponse:
    request = espb.GetExperimentStatsRequest(experiment_id=experiment_id, bucket_version=bucket_version)
    return client.experiments.GetExperimentStats(request)


def cluster_config(url: str, tmp_path: Path, **fields: object) -> ServerConfig:
    """A test server on the cluster; no sticky cache, so every repeat Assign reaches Redis."""
    config = ServerConfig(
        port=0,
        redis_url=url,
        data_dir=tmp_path / "data",
        refresh_interval_s=0.2,
        grace_period_s=0.5,
        cache_size=0,
    )
    return dataclasses.replace(config, **fields)  # type: ignore[arg-type]
