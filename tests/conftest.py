"""Fixtures: a private, real Redis-protocol server on a free port (never 6379), and a
live assignsvc server in a thread against it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from assignsvc.cli.main import main
from assignsvc.config import ServerConfig
from assignsvc.store.redis_server import LocalCluster, RedisServerProcess
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc
from tests.support import Cli, Client, Ran, ServerThread, free_port, running_server


@pytest.fixture(scope="session")
def redis_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServerProcess]:
    """One real server for the session; tests isolate themselves with `redis_url`."""
    process = RedisServerProcess(tmp_path_factory.mktemp("redis"), port=free_port(), appendonly=False)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def redis_url(redis_process: RedisServerProcess) -> str:
    """The session server's URL, emptied before the test."""
    client = redis.Redis.from_url(redis_process.url)
    client.flushall()
    client.close()
    return redis_process.url


@pytest.fixture
def server_config(redis_url: str, tmp_path: Path) -> ServerConfig:
    """A config for a test server: free port, the test Redis, fast refresh."""
    return ServerConfig(
        port=0,
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        refresh_interval_s=0.2,
        grace_period_s=0.5,
    )


@pytest.fixture
def server(server_config: ServerConfig) -> Iterator[ServerThread]:
    """A live assignsvc server."""
    with running_server(server_config) as thread:
        yield thread


@pytest.fixture
def webhook_config(server_config: ServerConfig) -> ServerConfig:
    """A server config that may reach loopback webhooks, polls fast and checks SRM often."""
    return dataclasses.replace(
        server_config,
        webhook_allow_networks=("127.0.0.0/8",),
        webhook_poll_interval_s=0.05,
        webhook_timeout_s=1.0,
        srm_threshold=0.01,
        srm_check_interval_s=0.3,
    )


@pytest.fixture
def live_server(webhook_config: ServerConfig) -> Iterator[ServerThread]:
    """A live server for webhook tests (webhook_config)."""
    with running_server(webhook_config) as thread:
        yield thread


@pytest.fixture
def live(live_server: ServerThread) -> Iterator[tuple[Client, wgrpc.WebhookServiceStub]]:
    """Stubs of the webhook test server: experiments and assignments, and webhooks."""
    client = Client.connect(live_server.target)
    yield client, wgrpc.WebhookServiceStub(client.channel)
    client.channel.close()


@pytest.fixture
def base(server: ServerThread) -> str:
    """The live server's HTTP address (a module turns HTTP on in its server_config)."""
    assert server.running is not None and server.running.http is not None
    return f"http://127.0.0.1:{server.running.http.port}"


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    """Stubs connected to the live server."""
    c = Client.connect(server.target)
    yield c
    c.channel.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One real 3-master Redis Cluster for the session (same binary as `redis_process`)."""
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), masters=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: LocalCluster) -> str:
    """The session cluster's redis+cluster:// URL, every master emptied before the test."""
    for node in redis_cluster.nodes:
        client = redis.Redis.from_url(node.url)
        client.flushall()
        client.close()
    return redis_cluster.url


@pytest.fixture
def cli(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    """Runs `assignsvc ARGS --target <live server>` in-process."""

    def run(*argv: str) -> Ran:
        capsys.readouterr()
        code = main([*argv, "--target", server.target])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    yield run
