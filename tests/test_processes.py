"""`assignsvc serve` as real processes: shared Redis across replicas, the embedded
Redis with persistence across restarts, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, wait_until

SERVING = re.compile(r"serving on [\d.]+:(\d+)")


class ServeProcess:
    """`python -m assignsvc serve` in a child process; its port read from its log."""

    def __init__(self, *args: str, refresh_interval: str = "0.2") -> None:
        env = {**os.environ, "ASSIGNSVC_REFRESH_INTERVAL": refresh_interval, "ASSIGNSVC_GRACE_PERIOD": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assignsvc", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.log: list[str] = []
        self.port = self._read_port()
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()

    def _read_port(self) -> int:
        assert self.process.stderr is not None
        timer = threading.Timer(30, self.process.kill)
        timer.start()
        try:
            for line in self.process.stderr:
                self.log.append(line)
                if match := SERVING.search(line):
                    return int(match.group(1))
        finally:
            timer.cancel()
        self.process.wait()
        self.process.stderr.close()
        raise AssertionError("server did not start:\n" + "".join(self.log))

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(15)
        self._drainer.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@contextmanager
def serve(*args: str, refresh_interval: str = "0.2") -> Iterator[ServeProcess]:
    proc = ServeProcess(*args, refresh_interval=refresh_interval)
    try:
        yield proc
    finally:
        proc.stop()


@contextmanager
def serve_many(count: int, *args: str, refresh_interval: str = "0.2") -> Iterator[list[ServeProcess]]:
    """`count` serve processes started side by side (each takes about a second)."""
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(ServeProcess, *args, refresh_interval=refresh_interval) for _ in range(count)]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        for f in futures:
            if (error := f.exception()) is not None:
                raise error
        yield started
    finally:
        for proc in started:
            proc.stop()


class TestReplicas:
    """Two server processes on one Redis behave as one service."""

    def test_64_concurrent_first_assigns_over_two_processes_get_one_arm(self, redis_url: str) -> None:
        with serve("--redis-url", redis_url) as one, serve("--redis-url", redis_url) as two:
            clients = [Client.connect(one.target), Client.connect(two.target)]
            clients[0].create("race", weights=(0.25, 0.25, 0.25, 0.25))
            request = espb.GetExperimentRequest(experiment_id="race")
            wait_until(lambda: _exists(clients[1], request))
            barrier = threading.Barrier(64)

            def first_assign(i: int) -> apb.Assignment:
                barrier.wait()
                call = clients[i % 2].assignments.Assign
                return call(apb.AssignRequest(experiment_id="race", participant_id="zoe"), timeout=15).assignment

            with ThreadPoolExecutor(64) as pool:
                results = list(pool.map(first_assign, range(64)))
            assert len({(r.arm.id, r.first_seen_time.ToMilliseconds()) for r in results}) == 1
            reasons = [r.reason for r in results]
            assert reasons.count(apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT) == 1
            assert reasons.count(apb.ASSIGNMENT_REASON_STICKY) == 63
            for c in clients:
                c.channel.close()
        assert one.process.returncode == 0 and two.process.returncode == 0


    def test_a_new_experiment_is_pushed_to_the_other_replica(self, redis_url: str) -> None:
        # Revision polling every hour: only the pub/sub push can deliver it in time.
        with serve("--redis-url", redis_url, refresh_interval="3600") as one, \
                serve("--redis-url", redis_url, refresh_interval="3600") as two:
            writer, reader = Client.connect(one.target), Client.connect(two.target)
            writer.create("pushed")
            wait_until(lambda: _exists(reader, espb.GetExperimentRequest(experiment_id="pushed")), timeout_s=2.0)
            writer.channel.close()
            reader.channel.close()

    def test_an_update_and_a_delete_are_pushed_to_every_other_replica(self, redis_url: str) -> None:
        # Revision polling every hour: only the pub/sub push can deliver the changes.
        with serve_many(3, "--redis-url", redis_url, refresh_interval="3600") as replicas:
            clients = [Client.connect(r.target) for r in replicas]
            created = clients[0].create("pushed-update")
            get = espb.GetExperimentRequest(experiment_id="pushed-update")
            for reader in clients[1:]:
                wait_until(lambda c=reader: _exists(c, get), timeout_s=2.0)
            before = apb.AssignRequest(experiment_id="pushed-update", participant_id="before")
            assert clients[1].assignments.Assign(before).assignment.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT

            updated = clients[0].experiments.UpdateExperiment(espb.UpdateExperimentRequest(
                experiment=epb.Experiment(id="pushed-update", coverage=0.0, etag=created.etag),
                update_mask=field_mask_pb2.FieldMask(paths=["coverage"]),
            )).experiment
            assert updated.etag != created.etag
            assert updated.HasField("coverage") and updated.coverage == 0.0
            for reader in clients[1:]:
                wait_until(lambda c=reader: _etag_and_coverage(c, get) == (updated.etag, 0.0), timeout_s=2.0)
            # Assign reads the same in-memory definition: nobody new gets in, stored arms stay.
            for i, reader in enumerate(clients[1:], 1):
                after = apb.AssignRequest(experiment_id="pushed-update", participant_id=f"after-{i}")
                assert reader.assignments.Assign(after).assignment.reason == apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE
            assert clients[2].assignments.Assign(before).assignment.reason == apb.ASSIGNMENT_REASON_STICKY

            clients[1].experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="pushed-update"))
            for other in (clients[0], clients[2]):
                wait_until(lambda c=other: _assign_code(c, before) is grpc.StatusCode.NOT_FOUND, timeout_s=2.0)
                assert not _exists(other, get)
            for c in clients:
                c.channel.close()
        assert [r.process.returncode for r in replicas] == [0, 0, 0]


class TestEmbeddedRedis:
    """With no Redis URL, serve runs its own Redis with AOF; assignments survive restarts."""

    def test_assignments_survive_a_restart(self, tmp_path: Path) -> None:
        data_dir = str(tmp_path / "data")
        with serve("--data-dir", data_dir) as first:
            client = Client.connect(first.target)
            client.create("persist")
            request = apb.AssignRequest(experiment_id="persist", participant_id="ann")
            before = client.assignments.Assign(request).assignment
            client.channel.close()
            assert first.stop() == 0
        assert (tmp_path / "data" / "appendonlydir").is_dir()
        with serve("--data-dir", data_dir) as second:
            client = Client.connect(second.target)
            looked = client.assignments.GetAssignment(
                apb.GetAssignmentRequest(experiment_id="persist", participant_id="ann")).assignment
            assert (looked.arm, looked.first_seen_time) == (before.arm, before.first_seen_time)
            client.channel.close()

    def test_a_second_serve_on_the_same_data_dir_is_refused(self, tmp_path: Path) -> None:
        data_dir = str(tmp_path / "data")
        with serve("--data-dir", data_dir):
            refused = subprocess.run(
                [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--data-dir", data_dir],
                capture_output=True, text=True, timeout=60, check=False,
            )
        assert refused.returncode == 2
        assert "in use by another" in refused.stderr

    def test_bad_configuration_fails_at_start_with_a_clear_message(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "assignsvc", "serve", "--redis-url", "http://x"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert result.returncode == 2
        assert "ASSIGNSVC_REDIS_URL must start with" in result.stderr


def _exists(client: Client, request: espb.GetExperimentRequest) -> bool:
    try:
        client.experiments.GetExperiment(request)
    except grpc.RpcError as error:
        assert error.code() is grpc.StatusCode.NOT_FOUND
        return False
    return True


def _etag_and_coverage(client: Client, request: espb.GetExperimentRequest) -> tuple[str, float]:
    experiment = client.experiments.GetExperiment(request).experiment
    return experiment.etag, experiment.coverage


def _assign_code(client: Client, request: apb.AssignRequest) -> grpc.StatusCode:
    try:
        client.assignments.Assign(request)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK
