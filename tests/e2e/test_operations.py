"""Operations on a live server: the Prometheus endpoint over real HTTP, JSON logs with
request ids and no secrets, and load shedding past the concurrency cap."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from assignsvc import logs
from assignsvc.config import ConfigError, ServerConfig
from assignsvc.core.access import new_key
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from assignsvc.v1 import webhook_service_pb2 as wpb
from assignsvc.v1 import webhook_service_pb2_grpc as wgrpc
from tests.support import Client, ServerThread, assign, error_reason, free_port, running_server
from tests.support.metrics import scrape, value


@pytest.fixture
def metrics_server(server_config: ServerConfig) -> Iterator[tuple[ServerThread, int]]:
    port = free_port()
    with running_server(dataclasses.replace(server_config, metrics_port=port)) as thread:
        yield thread, port


class TestMetricsEndpoint:
    """Prometheus reads RPCs, assignments, cache, Redis and export figures over HTTP."""

    def test_counts_follow_the_calls_made(self, metrics_server: tuple[ServerThread, int]) -> None:
        server, port = metrics_server
        client = Client.connect(server.target)
        client.create("metered", weights=(1.0, 0.0))
        before = scrape(port)
        for participant in ("ann", "bob", "ann"):
            assign(client, "metered", participant)
        with pytest.raises(grpc.RpcError):
            assign(client, "no-such-experiment", "ann")
        after = scrape(port)
        rpc = "assignsvc_rpc_duration_seconds_count"
        assert value(after, rpc, method="Assign", code="OK") - value(before, rpc, method="Assign", code="OK") == 3
        assert (
            value(after, rpc, method="Assign", code="NOT_FOUND") - value(before, rpc, method="Assign", code="NOT_FOUND")
            == 1
        )
        assert value(after, "assignsvc_assignments_total", experiment="metered", arm="a0") == 3
        # ann's second call is answered from the sticky cache; the two first calls missed it
        assert value(after, "assignsvc_sticky_cache_lookups_total", result="hit") >= 1
        assert value(after, "assignsvc_sticky_cache_lookups_total", result="miss") >= 2
        assert value(after, "assignsvc_redis_claim_duration_seconds_count") > value(
            before, "assignsvc_redis_claim_duration_seconds_count"
        )
        rows_before = value(after, "assignsvc_export_rows_total")
        list(client.bulk.ExportAssignments(bpb.ExportAssignmentsRequest(experiment_id="metered")))
        assert value(scrape(port), "assignsvc_export_rows_total") - rows_before == 2
        client.channel.close()

    def test_off_by_default(self, server: ServerThread) -> None:
        assert server.running is not None and server.running.metrics is None


class TestLogs:
    """JSON lines carry the caller's request id and never a webhook secret or Redis password."""

    def test_json_lines_with_request_ids_and_no_secrets(self, server_config: ServerConfig) -> None:
        config = dataclasses.replace(server_config, webhook_allow_networks=("127.0.0.0/8",))
        with running_server(config) as server:
            client = Client.connect(server.target)
            self._check_logs(client)
            client.channel.close()

    @staticmethod
    def _check_logs(client: Client) -> None:
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logs.JsonFormatter())
        root = logging.getLogger()
        root.addHandler(handler)
        level = root.level
        root.setLevel(logging.INFO)
        try:
            experiment = epb.Experiment(id="logged", arms=[epb.Arm(id="a", weight=0.5), epb.Arm(id="b", weight=0.5)])
            client.experiments.CreateExperiment(
                espb.CreateExperimentRequest(experiment=experiment), metadata=[("x-request-id", "req-123")]
            )
            hooks = wgrpc.WebhookServiceStub(client.channel)
            created = hooks.CreateWebhook(
                wpb.CreateWebhookRequest(
                    webhook=wpb.Webhook(
                        url="https://127.0.0.1:9/hook", events=["experiment.created"], token="tok-secret-9"
                    )
                )
            ).webhook
            rotated = hooks.RotateWebhookSecret(wpb.RotateWebhookSecretRequest(webhook_id=created.id)).webhook
            secrets = (created.secret, rotated.secret, "tok-secret-9")
            api_key = new_key()
            logging.getLogger("assignsvc.test").info(
                "connecting to redis://user:hunter2@db:6379/0 with %s and key %s", created.secret, api_key
            )
        finally:
            root.removeHandler(handler)
            root.setLevel(level)
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        create = [line for line in lines if line["msg"].startswith("CreateExperiment OK")]
        assert create and create[0]["request_id"] == "req-123"
        webhook = [line for line in lines if line["msg"].startswith("CreateWebhook OK")]
        assert webhook and webhook[0]["request_id"] not in ("", "req-123")  # generated
        text = stream.getvalue()
        assert all(secret.startswith("whsec_") for secret in secrets[:2])
        assert not [secret for secret in (*secrets, "hunter2", api_key) if secret in text]
        assert "redis://***@db:6379/0" in text and "whsec_***" in text and "asv_***" in text


class _HeldStream:
    """A StreamAssign call kept open: one request answered, then the client waits."""

    def __init__(self, stub: agrpc.AssignmentServiceStub, experiment: str, name: str) -> None:
        self.release = threading.Event()
        self.more = threading.Event()

        def requests() -> Iterator[apb.StreamAssignRequest]:
            yield apb.StreamAssignRequest(experiment_id=experiment, participant_id=name)
            self.more.wait(30)
            if not self.release.is_set():
                yield apb.StreamAssignRequest(experiment_id=experiment, participant_id=name + "-again")
            self.release.wait(30)

        self.name = name
        self.responses = stub.StreamAssign(requests(), timeout=30)

    def first(self) -> apb.StreamAssignResponse:
        return next(self.responses)

    def close(self) -> None:
        self.release.set()
        self.more.set()
        self.responses.cancel()


def retry_delay(error: grpc.RpcError) -> float:
    status = rpc_status.from_call(error)
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return float(info.retry_delay.ToTimedelta().total_seconds())
    raise AssertionError("no RetryInfo")


class TestLoadShedding:
    """Past the cap, calls get RESOURCE_EXHAUSTED at once; admitted calls keep working."""

    def test_streams_over_the_cap_are_refused_at_once_and_admitted_ones_keep_working(
        self, server_config: ServerConfig
    ) -> None:
        cap = 4
        with running_server(dataclasses.replace(server_config, max_concurrent_rpcs=cap)) as server:
            client = Client.connect(server.target)
            client.create("busy")
            streams = [_HeldStream(client.assignments, "busy", f"p{i}") for i in range(20)]
            admitted, refused = [], []
            for stream in streams:
                started = time.monotonic()
                try:
                    stream.first()
                    admitted.append(stream)
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, error
                    assert time.monotonic() - started < 1.0
                    assert error_reason(error) == "OVERLOADED" and retry_delay(error) > 0
                    refused.append(stream)
            assert (len(admitted), len(refused)) == (cap, 20 - cap)
            with pytest.raises(grpc.RpcError) as unary:
                assign(client, "busy", "late")
            assert unary.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            health = health_pb2_grpc.HealthStub(client.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes are never shed
            for stream in admitted:  # an admitted stream still answers
                stream.more.set()
                assert next(stream.responses).result.assignment.participant_id.endswith("-again")
            for stream in streams:
                stream.close()
            # the slots come back once the streams end
            wait_until_ok = time.monotonic() + 5
            while True:
                try:
                    assert assign(client, "busy", "late").arm.id
                    break
                except grpc.RpcError as error:
                    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                    assert time.monotonic() < wait_until_ok
                    time.sleep(0.05)
            client.channel.close()


class TestOperationsConfig:
    """The new settings come from flags over ASSIGNSVC_* variables, and bad values fail at start."""

    def test_flags_environment_and_defaults(self) -> None:
        default = ServerConfig.load({})
        assert (default.metrics_port, default.log_format, default.max_concurrent_rpcs) == (0, "text", 1000)
        env = {"ASSIGNSVC_METRICS_PORT": "9100", "ASSIGNSVC_LOG_FORMAT": "JSON", "ASSIGNSVC_MAX_CONCURRENT_RPCS": "0"}
        loaded = ServerConfig.load(env, max_concurrent_rpcs=50)
        assert (loaded.metrics_port, loaded.log_format, loaded.max_concurrent_rpcs) == (9100, "json", 50)
        # with workers, the supervisor serves the workers' metrics summed (workers.py)
        assert ServerConfig.load({"ASSIGNSVC_METRICS_PORT": "9100", "ASSIGNSVC_WORKERS": "2"}).workers == 2

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            ({"ASSIGNSVC_LOG_FORMAT": "xml"}, "ASSIGNSVC_LOG_FORMAT"),
            ({"ASSIGNSVC_METRICS_PORT": "70000"}, "ASSIGNSVC_METRICS_PORT"),
            ({"ASSIGNSVC_MAX_CONCURRENT_RPCS": "-1"}, "ASSIGNSVC_MAX_CONCURRENT_RPCS"),
        ],
    )
    def test_bad_values_fail_with_the_variable_named(self, env: dict[str, str], message: str) -> None:
        with pytest.raises(ConfigError, match=re.escape(message)):
            ServerConfig.load(env)


class TestServeFlags:
    """`assignsvc serve --log-format json --metrics-port P`: JSON lines on stderr, metrics over HTTP."""

    def test_json_logs_and_metrics_from_a_real_process(self, redis_url: str) -> None:
        from tests.support.processes import ServeProcess  # noqa: PLC0415

        metrics_port = free_port()
        proc = ServeProcess("--redis-url", redis_url, "--log-format", "json", "--metrics-port", str(metrics_port))
        try:
            client = Client.connect(proc.target)
            client.create("flagged")
            assign(client, "flagged", "p1")
            samples = scrape(metrics_port)
            assert (
                value(samples, "assignsvc_assignments_total", experiment="flagged", arm="a0")
                + value(samples, "assignsvc_assignments_total", experiment="flagged", arm="a1")
                == 1
            )
            client.channel.close()
        finally:
            assert proc.stop() == 0
        lines = [json.loads(line) for line in proc.log]
        assert any(line["msg"].startswith("assignsvc serving on") for line in lines)
        assert any(line["msg"].startswith("CreateExperiment OK") and line["request_id"] for line in lines)
        assert lines[-1]["msg"] == "stopped"
