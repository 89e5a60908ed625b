"""`assignsvc serve` as real processes: shared Redis across replicas, the embedded
Redis with persistence across restarts, a clean stop on SIGTERM, and `--workers`."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from assignsvc.config import ServerConfig
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Client, free_port, wait_until
from tests.support.http import call
from tests.support.metrics import scrape, value
from tests.support.processes import ServeProcess, serve, serve_many


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
        with (
            serve("--redis-url", redis_url, refresh_interval="3600") as one,
            serve("--redis-url", redis_url, refresh_interval="3600") as two,
        ):
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
                wait_until(functools.partial(_exists, reader, get), timeout_s=2.0)
            before = apb.AssignRequest(experiment_id="pushed-update", participant_id="before")
            assert clients[1].assignments.Assign(before).assignment.reason == apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT

            updated = (
                clients[0]
                .experiments.UpdateExperiment(
                    espb.UpdateExperimentRequest(
                        experiment=epb.Experiment(id="pushed-update", coverage=0.0, etag=created.etag),
                        update_mask=field_mask_pb2.FieldMask(paths=["coverage"]),
                    )
                )
                .experiment
            )
            assert updated.etag != created.etag
            assert updated.HasField("coverage") and updated.coverage == 0.0
            for reader in clients[1:]:

                def caught_up(c: Client = reader) -> bool:
                    return _etag_and_coverage(c, get) == (updated.etag, 0.0)

                wait_until(caught_up, timeout_s=2.0)
            # Assign reads the same in-memory definition: nobody new gets in, stored arms stay.
            for i, reader in enumerate(clients[1:], 1):
                after = apb.AssignRequest(experiment_id="pushed-update", participant_id=f"after-{i}")
                assert reader.assignments.Assign(after).assignment.reason == apb.ASSIGNMENT_REASON_EXCLUDED_BY_COVERAGE
            assert clients[2].assignments.Assign(before).assignment.reason == apb.ASSIGNMENT_REASON_STICKY

            clients[1].experiments.DeleteExperiment(espb.DeleteExperimentRequest(experiment_id="pushed-update"))
            for other in (clients[0], clients[2]):

                def deleted(c: Client = other) -> bool:
                    return _assign_code(c, before) is grpc.StatusCode.NOT_FOUND

                wait_until(deleted, timeout_s=2.0)
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
                apb.GetAssignmentRequest(experiment_id="persist", participant_id="ann")
            ).assignment
            assert (looked.arm, looked.first_seen_time) == (before.arm, before.first_seen_time)
            client.channel.close()

    def test_a_second_serve_on_the_same_data_dir_is_refused(self, tmp_path: Path) -> None:
        data_dir = str(tmp_path / "data")
        with serve("--data-dir", data_dir):
            refused = subprocess.run(
                [sys.executable, "-m", "assignsvc", "serve", "--port", "0", "--data-dir", data_dir],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert refused.returncode == 2
        assert "in use by another" in refused.stderr

    def test_a_second_serve_on_a_busy_port_is_refused(self, tmp_path: Path, redis_url: str) -> None:
        """Not silently shared (gRPC's default SO_REUSEPORT): it could hold other arms."""
        with serve("--data-dir", str(tmp_path / "one")) as first:
            refused = subprocess.run(
                [sys.executable, "-m", "assignsvc", "serve", "--port", str(first.port), "--redis-url", redis_url],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert refused.returncode == 2
        assert f"cannot listen on 127.0.0.1:{first.port}" in refused.stderr

    def test_bad_configuration_fails_at_start_with_a_clear_message(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "assignsvc", "serve", "--redis-url", "http://x"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
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


WORKER_READY = re.compile(r"worker (\d+) \(pid (\d+)\) ready")


class TestWorkers:
    """`serve --workers N`: N processes on one port under a supervisor that owns the embedded Redis."""

    def test_three_workers_share_one_port_and_every_participant_keeps_one_arm(self, tmp_path: Path) -> None:
        http_port = free_port()
        with serve("--workers", "3", "--data-dir", str(tmp_path / "data"), "--http-port", str(http_port)) as supervisor:
            workers = _worker_pids(supervisor)
            assert sorted(workers) == [1, 2, 3] and len(set(workers.values())) == 3
            for pid in workers.values():  # each worker holds its own listening sockets on the ports
                assert _listening(supervisor.port) & _socket_inodes(pid), f"worker pid {pid} does not listen"
                assert _listening(http_port) & _socket_inodes(pid), f"worker pid {pid} does not serve HTTP"
            descendants = _children(supervisor.process.pid)
            assert set(workers.values()) < descendants  # the embedded Redis is a child too

            by_worker = _clients_on_every_worker(supervisor.port, set(workers.values()))
            # 100 participants x 3 Assigns at once, each participant's through the 3 workers.
            _assert_one_arm_each(by_worker, "spread", [f"p{i}" for i in range(100)])
            stats = by_worker[workers[3]][0].experiments.GetExperimentStats(
                espb.GetExperimentStatsRequest(experiment_id="spread")
            )
            assert stats.total_assignments == 100
            lookup = by_worker[workers[1]][0].assignments.GetAssignment
            for i in range(30):  # a connection each: the kernel spreads them over the workers' HTTP edges
                path = f"/v1/experiments/spread/participants/p{i}:getAssignment"
                reply = call("POST", f"http://127.0.0.1:{http_port}{path}", {})
                stored = lookup(apb.GetAssignmentRequest(experiment_id="spread", participant_id=f"p{i}")).assignment
                assert reply.status == 200, reply.body
                assert reply.json()["assignment"]["arm"]["id"] == stored.arm.id
            _close(by_worker)

            assert supervisor.stop() == 0
        wait_until(lambda: not any(_alive(pid) for pid in descendants), timeout_s=10)
        log = "".join(supervisor.log)
        assert "with 3 workers" in log and log.rstrip().endswith("stopped")
        assert f"HTTP/JSON on http://127.0.0.1:{http_port} in every worker" in log

    def test_a_killed_worker_is_restarted_and_workers_die_with_the_supervisor(self, tmp_path: Path) -> None:
        with serve("--workers", "2", "--data-dir", str(tmp_path / "data")) as supervisor:
            workers = _worker_pids(supervisor)
            client = Client.connect(supervisor.target)
            client.create("survive")
            ann = apb.AssignRequest(experiment_id="survive", participant_id="ann")
            before = client.assignments.Assign(ann).assignment  # the worker that created it knows it
            client.channel.close()

            os.kill(workers[1], signal.SIGKILL)
            wait_until(lambda: _worker_pids(supervisor)[1] != workers[1], timeout_s=15)
            restarted = _worker_pids(supervisor)
            assert restarted[2] == workers[2] and not _alive(workers[1])
            assert any("worker 1" in line and "killed by SIGKILL" in line for line in supervisor.log)
            for pid in restarted.values():
                assert _listening(supervisor.port) & _socket_inodes(pid)
            # The service goes on through both workers, the restarted one included.
            by_worker = _clients_on_every_worker(supervisor.port, set(restarted.values()), experiment="survive")
            for clients in by_worker.values():
                again = clients[0].assignments.Assign(ann, timeout=10).assignment
                assert (again.arm, again.first_seen_time) == (before.arm, before.first_seen_time)
                assert again.reason == apb.ASSIGNMENT_REASON_STICKY
            _close(by_worker)

            descendants = _children(supervisor.process.pid)
            assert set(restarted.values()) < descendants
            supervisor.process.kill()  # no cleanup at all: the children must go anyway
            supervisor.process.wait(15)
            wait_until(lambda: not any(_alive(pid) for pid in descendants), timeout_s=15)
            assert supervisor.stop() == -signal.SIGKILL  # the log pipe is closed once they are gone

    def test_workers_on_an_external_redis(self, redis_url: str) -> None:
        with serve("--workers", "2", "--redis-url", redis_url) as supervisor:
            workers = _worker_pids(supervisor)
            assert sorted(workers) == [1, 2] and len(set(workers.values())) == 2
            assert any(f"redis {redis_url})" in line for line in supervisor.log)
            by_worker = _clients_on_every_worker(supervisor.port, set(workers.values()))
            _assert_one_arm_each(by_worker, "spread", [f"u{i}" for i in range(50)])
            _close(by_worker)
            assert supervisor.stop() == 0

    def test_metrics_are_summed_over_the_workers_and_kept_across_a_restart(self, redis_url: str) -> None:
        metrics_port = free_port()
        with serve("--workers", "2", "--redis-url", redis_url, "--metrics-port", str(metrics_port)) as supervisor:
            workers = _worker_pids(supervisor)
            assert any(f"metrics on http://127.0.0.1:{metrics_port}/metrics" in line for line in supervisor.log)
            by_worker = _clients_on_every_worker(supervisor.port, set(workers.values()))
            _assign_through_each(by_worker, "m", 5)  # 5 per worker: the scrape is the supervisor's
            wait_until(lambda: _assign_figures(metrics_port) == (10, 10, 0), timeout_s=10)
            samples = scrape(metrics_port)
            assert value(samples, "assignsvc_sticky_cache_lookups_total", result="miss") >= 10
            assert value(samples, "assignsvc_redis_claim_duration_seconds_count") >= 2  # one per worker at least
            _close(by_worker)

            os.kill(workers[1], signal.SIGKILL)
            wait_until(lambda: _worker_pids(supervisor)[1] != workers[1], timeout_s=15)
            restarted = _worker_pids(supervisor)
            by_worker = _clients_on_every_worker(supervisor.port, set(restarted.values()), experiment="spread")
            _assign_through_each(by_worker, "after", 1)
            # the killed worker's counts stay in the sums; the new one adds to them
            wait_until(lambda: _assign_figures(metrics_port) == (12, 12, 0), timeout_s=10)
            _close(by_worker)
            assert supervisor.stop() == 0

    def test_a_port_in_use_stops_everything_with_a_clear_message(self, redis_url: str) -> None:
        with socket.socket() as taken:  # no SO_REUSEPORT: nobody can share it
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "assignsvc",
                    "serve",
                    "--workers",
                    "2",
                    "--port",
                    str(port),
                    "--redis-url",
                    redis_url,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert result.returncode == 1
        assert "could not start" in result.stderr and f"cannot listen on 127.0.0.1:{port}" in result.stderr
        assert "giving up" in result.stderr and "serving on" not in result.stderr

    def test_workers_flag_validation_and_help(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "assignsvc", "serve", "--workers", "0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2
        assert "ASSIGNSVC_WORKERS must be between 1 and 64, got 0" in result.stderr
        assert ServerConfig.load({"ASSIGNSVC_WORKERS": "8"}).workers == 8
        assert ServerConfig.load({}).workers == 1
        help_text = subprocess.run(
            [sys.executable, "-m", "assignsvc", "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert "--workers" in help_text and "ASSIGNSVC_WORKERS" in help_text


def _worker_pids(proc: ServeProcess) -> dict[int, int]:
    """Worker number -> pid of its latest ready instance, from the supervisor's log."""
    pids: dict[int, int] = {}
    for line in list(proc.log):
        if match := WORKER_READY.search(line):
            pids[int(match.group(1))] = int(match.group(2))
    return pids


def _clients_on_every_worker(port: int, pids: set[int], experiment: str | None = None) -> dict[int, list[Client]]:
    """Clients on fresh connections, opened until every worker has accepted at least one.

    The kernel picks the worker of each connection; /proc tells which one took it. Creates
    `experiment` (unless given) through the first, then waits until every worker has it.
    """
    by_worker: dict[int, list[Client]] = {}
    for _ in range(60):
        channel, pid = _channel(port)
        assert pid in pids, f"connection accepted by pid {pid}, not a worker"
        stubs = Client.on(channel)
        by_worker.setdefault(pid, []).append(stubs)
        if by_worker.keys() == pids:
            break
    assert by_worker.keys() == pids, f"60 connections and some worker got none: {by_worker.keys()} of {pids}"
    name = experiment or "spread"
    if experiment is None:
        next(iter(by_worker.values()))[0].create(name, weights=(0.25, 0.25, 0.25, 0.25))
    for clients in by_worker.values():
        wait_until(functools.partial(_exists, clients[0], espb.GetExperimentRequest(experiment_id=name)))
    return by_worker


def _assert_one_arm_each(by_worker: dict[int, list[Client]], experiment: str, participants: list[str]) -> None:
    """Every participant assigned through every worker at once: one arm, one NEW_ASSIGNMENT."""
    workers = list(by_worker.values())
    calls = [(p, workers[w][i % len(workers[w])]) for i, p in enumerate(participants) for w in range(len(workers))]

    def assign(call: tuple[str, Client]) -> tuple[str, apb.Assignment]:
        participant, client = call
        request = apb.AssignRequest(experiment_id=experiment, participant_id=participant)
        return participant, client.assignments.Assign(request, timeout=15).assignment

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(assign, calls))
    assert len(results) == len(participants) * len(workers)
    per_participant: dict[str, list[apb.Assignment]] = {}
    for participant, assignment in results:
        per_participant.setdefault(participant, []).append(assignment)
    for participant, assignments in per_participant.items():
        assert len({(a.arm.id, a.first_seen_time.ToMilliseconds()) for a in assignments}) == 1, participant
        reasons = [a.reason for a in assignments]
        assert reasons.count(apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT) == 1, participant
        assert reasons.count(apb.ASSIGNMENT_REASON_STICKY) == len(workers) - 1, participant


def _assign_through_each(by_worker: dict[int, list[Client]], prefix: str, count: int) -> None:
    """`count` new participants of experiment "spread" through each worker."""
    for pid, clients in by_worker.items():
        for i in range(count):
            request = apb.AssignRequest(experiment_id="spread", participant_id=f"{prefix}-{pid}-{i}")
            clients[0].assignments.Assign(request, timeout=15)


def _assign_figures(metrics_port: int) -> tuple[float, float, float]:
    """(Assign calls answered OK, assignments of "spread" over its arms, RPCs in flight), scraped."""
    samples = scrape(metrics_port)
    arms = sum(
        v
        for (name, labels), v in samples.items()
        if name == "assignsvc_assignments_total" and ("experiment", "spread") in labels
    )
    return (
        value(samples, "assignsvc_rpc_duration_seconds_count", method="Assign", code="OK"),
        arms,
        value(samples, "assignsvc_rpc_in_flight"),
    )


def _close(by_worker: dict[int, list[Client]]) -> None:
    for clients in by_worker.values():
        for client in clients:
            client.channel.close()


def _tcp_sockets() -> list[tuple[int, int, str, int]]:
    """(local port, remote port, state, inode) of every TCP socket in this network namespace."""
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
                rows.append((local, remote, fields[3], int(fields[9])))
    return rows


def _listening(port: int) -> set[int]:
    return {inode for local, _, state, inode in _tcp_sockets() if local == port and state == "0A"}


def _socket_inodes(pid: int | str) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(int(target[8:-1]))
    return inodes


def _channel(port: int) -> tuple[grpc.Channel, int]:
    """A channel on a connection of its own, and the pid of the process that accepted it."""

    def mine() -> set[int]:
        own = _socket_inodes("self")
        return {
            local for local, remote, state, inode in _tcp_sockets() if remote == port and state == "01" and inode in own
        }

    before = mine()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)  # accepted and served
    new = mine() - before
    assert len(new) == 1, new
    client_port = new.pop()
    accepted = {
        inode
        for local, remote, state, inode in _tcp_sockets()
        if local == port and remote == client_port and state == "01"
    }
    owners = [
        int(p.name)
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and int(p.name) != os.getpid() and _socket_inodes(p.name) & accepted
    ]
    assert len(owners) == 1, owners
    return channel, owners[0]


def _children(pid: int) -> set[int]:
    """Pids whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
