"""Drain and rolling restarts of real `assignsvc serve` processes on one Redis.

SIGTERM: health turns NOT_SERVING at once, calls in flight finish, new calls are refused
with UNAVAILABLE (never left hanging), the process exits within the grace period; a
client with the shipped retry service config sees no error through a rolling restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from assignsvc.config import client_channel_options
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import assignment_service_pb2 as apb
from tests.support import Client, free_port, wait_until
from tests.support.http import call
from tests.support.processes import ServeProcess

SERVING = health_pb2.HealthCheckResponse.SERVING


def wait_serving(port: int, timeout_s: float = 30.0) -> None:
    """Poll grpc.health.v1 on port until it answers SERVING."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == SERVING:
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, f"port {port} never SERVING"
            time.sleep(0.05)


class Load:
    """Threads calling Assign in a loop on one channel until stopped; every error kept."""

    def __init__(self, channel: grpc.Channel, experiment: str, threads: int = 8) -> None:
        self.client = Client.on(channel)
        self.experiment = experiment
        self.calls = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            request = apb.AssignRequest(experiment_id=self.experiment, participant_id=f"t{index}-{n % 500}")
            try:
                self.client.assignments.Assign(request, timeout=10)
                with self._lock:
                    self.calls += 1
            except grpc.RpcError as error:
                with self._lock:
                    self.errors.append(f"{time.monotonic():.3f} {error.code()}: {error.details()}")

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def calls_now(self) -> int:
        with self._lock:
            return self.calls


def _restart(proc: ServeProcess, port: int, redis_url: str) -> tuple[ServeProcess, float]:
    """SIGTERM proc, wait for its exit (seconds taken), start a new one on the same port."""
    started = time.monotonic()
    assert proc.stop() == 0, "".join(proc.log)
    took = time.monotonic() - started
    fresh = ServeProcess("--redis-url", redis_url, "--port", str(port))
    wait_serving(port)
    return fresh, took


class TestRollingRestart:
    """Two replicas restarted one after the other under load: 0 errors for a retrying client."""

    def test_no_client_errors(self, redis_url: str) -> None:
        ports = [free_port(), free_port()]
        procs = [ServeProcess("--redis-url", redis_url, "--port", str(p)) for p in ports]
        try:
            Client.connect(procs[0].target).create("rolling")
            target = f"ipv4:127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
            with (
                grpc.insecure_channel(target, options=client_channel_options()) as channel,
                Load(channel, "rolling") as load,
            ):
                time.sleep(0.5)
                for i, port in enumerate(ports):
                    before = load.calls_now()
                    procs[i], took = _restart(procs[i], port, redis_url)
                    assert took < 1 + 1.5  # ASSIGNSVC_GRACE_PERIOD=1 (ServeProcess), plus process exit
                    time.sleep(1.0)  # as a rollout waits a moment after readiness (minReadySeconds)
                    assert load.calls_now() > before  # the load kept running through the restart
            assert load.errors == []
            assert load.calls > 200, load.calls
        finally:
            for proc in procs:
                proc.stop()


class TestDrain:
    """SIGTERM with a call in flight: NOT_SERVING at once, the call finishes, new calls refused."""

    def test_sigterm_drains_within_the_grace_period(self, redis_url: str) -> None:
        proc = ServeProcess("--redis-url", redis_url, "--grace-period", "3")
        try:
            client = Client.connect(proc.target)
            client.create("draining")
            watch = health_pb2_grpc.HealthStub(client.channel).Watch(health_pb2.HealthCheckRequest(), timeout=30)
            assert next(watch).status == SERVING
            more, done = threading.Event(), threading.Event()

            def requests() -> Iterator[apb.StreamAssignRequest]:
                yield apb.StreamAssignRequest(experiment_id="draining", participant_id="first")
                more.wait(20)
                yield apb.StreamAssignRequest(experiment_id="draining", participant_id="second")
                done.wait(20)

            stream = client.assignments.StreamAssign(requests(), timeout=30)
            assert next(stream).result.assignment.participant_id == "first"
            signalled = time.monotonic()
            proc.process.send_signal(15)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert time.monotonic() - signalled < 1.0
            # a new call is refused at once, not left waiting for the drain
            with grpc.insecure_channel(proc.target) as fresh, pytest_raises_rpc() as refused:
                Client.on(fresh).assignments.Assign(
                    apb.AssignRequest(experiment_id="draining", participant_id="new"), timeout=5
                )
            assert refused.code is grpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - signalled < 2.0
            more.set()  # the call in flight still gets its answer
            assert next(stream).result.assignment.participant_id == "second"
            done.set()
            assert proc.process.wait(3 + 2) == 0  # within the grace period (3 s) plus exit
            assert time.monotonic() - signalled < 3 + 2
            client.channel.close()
        finally:
            proc.stop()


class pytest_raises_rpc:  # noqa: N801 - reads as a context manager like pytest.raises
    """Expect an RpcError; its code afterwards (None if the call succeeded, which fails)."""

    code: grpc.StatusCode | None = None
    details: str | None = None

    def __enter__(self) -> pytest_raises_rpc:
        return self

    def __exit__(self, kind: object, error: object, _tb: object) -> bool:
        assert isinstance(error, grpc.RpcError), "the call was not refused"
        self.code = error.code()
        self.details = error.details()
        return True


class TestReadiness:
    """A starting replica says SERVING only once it can answer for every stored experiment."""

    def test_first_serving_answer_means_ready(self, redis_url: str) -> None:
        with_experiment = ServeProcess("--redis-url", redis_url)
        Client.connect(with_experiment.target).create("stored-before")
        port = free_port()
        seen: list[str] = []
        stop = threading.Event()

        def watch() -> None:  # polls from before the replica starts until it says SERVING
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub, client = health_pb2_grpc.HealthStub(channel), Client.on(channel)
                while not stop.is_set():
                    try:
                        status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    except grpc.RpcError as error:
                        seen.append(error.code().name)
                        time.sleep(0.005)
                        continue
                    seen.append(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
                    if status == SERVING:  # at that very moment, the stored experiment is known
                        request = apb.AssignRequest(experiment_id="stored-before", participant_id="p")
                        seen.append("assigned:" + client.assignments.Assign(request, timeout=5).assignment.arm.id)
                        return

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            starting = ServeProcess("--redis-url", redis_url, "--port", str(port))
            watcher.join(30)
            assert seen[-1].startswith("assigned:a"), seen
            assert set(seen[:-2]) <= {"UNAVAILABLE", "NOT_SERVING"}, seen
            starting.stop()
        finally:
            stop.set()
            watcher.join(5)
            with_experiment.stop()


def _codes(errors: list[str]) -> set[str]:
    """The status codes among Load's errors ("<time> StatusCode.X: details")."""
    return {error.split()[1].rstrip(":") for error in errors}


class TestDrainUnderSteadyLoad:
    """SIGTERM while 8 clients keep calling: the drain never goes quiet, yet no call the
    server took in comes back CANCELLED (which no retry policy retries): each is answered,
    or refused with UNAVAILABLE (retried on another replica)."""

    def test_no_call_cancelled(self, redis_url: str) -> None:
        for run in range(2):  # checked 10 times by hand; two runs here keep the suite short
            proc = ServeProcess("--redis-url", redis_url, "--grace-period", "3")
            try:
                client = Client.connect(proc.target)
                client.create(f"steady-{run}")
                with grpc.insecure_channel(proc.target) as channel, Load(channel, f"steady-{run}") as load:
                    while load.calls_now() < 200:
                        time.sleep(0.05)
                    proc.process.send_signal(15)
                    assert proc.process.wait(3 + 5) == 0, "".join(proc.log)
                    answered = load.calls_now()
                client.channel.close()
            finally:
                proc.stop()
            assert answered >= 200
            assert _codes(load.errors) <= {"StatusCode.UNAVAILABLE"}, [e for e in load.errors if "UNAVAILABLE" not in e]


class TestStartWithoutRedis:
    """A replica started before its Redis keeps running NOT_SERVING, refuses calls with
    UNAVAILABLE (STARTING), and serves once Redis answers."""

    def test_serves_once_redis_answers(self, tmp_path: Path) -> None:
        redis_port, http_port = free_port(), free_port()
        proc = ServeProcess("--redis-url", f"redis://127.0.0.1:{redis_port}", "--http-port", str(http_port))
        redis_server = RedisServerProcess(tmp_path, port=redis_port, appendonly=False)
        try:
            assert "NOT_SERVING until Redis answers" in "".join(proc.log)
            wait_until(lambda: f"console http://127.0.0.1:{http_port}/ui" in "".join(proc.log), 5)
            with grpc.insecure_channel(proc.target) as channel:
                health = health_pb2_grpc.HealthStub(channel)
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
                assert status == health_pb2.HealthCheckResponse.NOT_SERVING
                with pytest_raises_rpc() as refused:
                    Client.on(channel).assignments.Assign(
                        apb.AssignRequest(experiment_id="e", participant_id="p"), timeout=5
                    )
                assert refused.code is grpc.StatusCode.UNAVAILABLE
                assert refused.details is not None and "Redis has not answered" in refused.details
            base = f"http://127.0.0.1:{http_port}"
            for method, path in (  # every route family answers as RPCs do: retry elsewhere
                ("POST", "/v1/experiments/e/participants/p:assign"),
                ("GET", "/evidential/v1/experiments/e/assignments/p"),
                ("POST", "/ofrep/v1/evaluate/flags/e"),
            ):
                reply = call(method, base + path, {"context": {"targetingKey": "p"}} if method == "POST" else None)
                assert reply.status == 503, (path, reply.body)
                assert "Redis has not answered" in reply.json()["message"], (path, reply.body)
                assert reply.headers.get("retry-after"), path
            redis_server.start()  # returns once Redis answers
            wait_serving(proc.port, timeout_s=2.0)  # START_RETRY_S backs off to 1 s at most
            client = Client.connect(proc.target)
            client.create("after-redis")
            request = apb.AssignRequest(experiment_id="after-redis", participant_id="p")
            assert client.assignments.Assign(request, timeout=5).assignment.arm.id
            client.channel.close()
            assert proc.process.poll() is None
        finally:
            assert proc.stop() == 0, "".join(proc.log)
            redis_server.stop()
