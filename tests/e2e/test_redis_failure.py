"""Redis failing under Assign load: SIGKILL + restart, SIGSTOP + SIGCONT.

A live server on a Redis of the test's own (its port, its data dir), two experiments (one
FAIL_CLOSED, one FAIL_OPEN), and ChaosLoad's Assign / BatchAssign calls with a deadline.
Asserted for both breakages: no call ends UNKNOWN or INTERNAL, a failing call returns
within its deadline + 50 ms, no pool runs dry, every call started 1 s after Redis is back
succeeds and is stored, and no participant ever gets a second arm (the export agrees with
every answer). The long runs (30 s) are `make test-long`; short ones run in `make test`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import code_pb2

from assignsvc.config import ServerConfig
from assignsvc.store.redis_server import RedisServerProcess
from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import experiment_pb2 as epb
from assignsvc.v1 import experiment_service_pb2 as espb
from tests.support import Cli, Client, ServerThread, bad_request_fields, free_port, running_server
from tests.support.redis_chaos import (
    GET,
    Call,
    ChaosLoad,
    check_outage,
    check_recovery,
    check_sticky,
    export_arms,
    summary,
)

EXPERIMENTS = ("closed", "open")
DEADLINE_S = 0.3


@contextlib.contextmanager
def service(tmp_path: Path) -> Iterator[tuple[RedisServerProcess, ServerThread, Client]]:
    """A Redis to break (fsync always: a SIGKILL may lose no acknowledged row), a server on it
    without a sticky cache (every Assign reaches Redis), and the two experiments."""
    redis_proc = RedisServerProcess(tmp_path / "redis", port=free_port(), extra_args=["--appendfsync", "always"])
    redis_proc.start()
    config = ServerConfig(
        port=0,
        redis_url=redis_proc.url,
        data_dir=tmp_path / "data",
        refresh_interval_s=0.2,
        grace_period_s=0.5,
        cache_size=0,
    )
    try:
        with running_server(config) as server:
            client = Client.connect(server.target)
            client.create("closed", redis_failure_policy=epb.REDIS_FAILURE_POLICY_FAIL_CLOSED)
            client.create("open", redis_failure_policy=epb.REDIS_FAILURE_POLICY_FAIL_OPEN)
            try:
                yield redis_proc, server, client
            finally:
                client.channel.close()
    finally:
        redis_proc.stop()


def check_policies(calls: list[Call], broken_at: float, back_at: float) -> None:
    """The outage was seen, and each experiment answered it by its policy."""
    during = [c for c in calls if broken_at + 0.05 <= c.started < back_at - DEADLINE_S]
    assert any(c.code == "UNAVAILABLE" for c in during if c.experiment == "closed" and c.method != GET), summary(calls)
    assert any(c.code == "OK" and not c.persisted for c in during if c.experiment == "open"), summary(calls)
    assert not [c for c in calls if c.experiment == "closed" and c.code == "OK" and not c.persisted]


def sigkill_and_restart(tmp_path: Path, warm_s: float, down_s: float, after_s: float) -> list[Call]:
    with service(tmp_path) as (redis_proc, server, client):
        with ChaosLoad(server.target, EXPERIMENTS, DEADLINE_S) as load:
            time.sleep(warm_s)
            assert redis_proc.pid is not None
            os.kill(redis_proc.pid, signal.SIGKILL)
            broken_at = time.monotonic()
            redis_proc.stop()  # reaps the killed child
            time.sleep(down_s)
            redis_proc.start()  # same port, same data dir (AOF); returns once it answers PING
            back_at = time.monotonic()
            time.sleep(after_s)
        exported = {e: export_arms(client, e) for e in EXPERIMENTS}
    calls = load.calls
    check_outage(calls, DEADLINE_S)
    check_policies(calls, broken_at, back_at)
    check_recovery(calls, back_at)
    check_sticky(calls, exported, rows_kept=True)
    return calls


def sigstop_and_continue(tmp_path: Path, warm_s: float, stopped_s: float, after_s: float) -> list[Call]:
    with service(tmp_path) as (redis_proc, server, client):
        pid = redis_proc.pid
        assert pid is not None
        with ChaosLoad(server.target, EXPERIMENTS, DEADLINE_S) as load:
            time.sleep(warm_s)
            os.kill(pid, signal.SIGSTOP)
            broken_at = time.monotonic()
            try:
                time.sleep(stopped_s)
            finally:
                os.kill(pid, signal.SIGCONT)
            back_at = time.monotonic()
            time.sleep(after_s)
        assert redis_proc.pid == pid  # recovered without a restart
        exported = {e: export_arms(client, e) for e in EXPERIMENTS}
    calls = load.calls
    check_outage(calls, DEADLINE_S)
    check_policies(calls, broken_at, back_at)
    check_recovery(calls, back_at)
    check_sticky(calls, exported, rows_kept=True)
    return calls


class TestSigkill:
    """Redis SIGKILLed under load and restarted on the same port and data dir."""

    def test_short(self, tmp_path: Path) -> None:
        print(summary(sigkill_and_restart(tmp_path, warm_s=1.0, down_s=1.5, after_s=2.0)))

    @pytest.mark.long
    def test_30s_load(self, tmp_path: Path) -> None:
        calls = sigkill_and_restart(tmp_path, warm_s=5.0, down_s=5.0, after_s=20.0)
        print(summary(calls))


class TestSigstop:
    """Redis stopped (SIGSTOP: connections open, nothing answered) under load, then continued."""

    def test_short(self, tmp_path: Path) -> None:
        print(summary(sigstop_and_continue(tmp_path, warm_s=1.0, stopped_s=1.5, after_s=2.0)))

    @pytest.mark.long
    def test_10s_stop_in_30s_load(self, tmp_path: Path) -> None:
        calls = sigstop_and_continue(tmp_path, warm_s=5.0, stopped_s=10.0, after_s=15.0)
        print(summary(calls))


class TestPerItem:
    """Redis down: BatchAssign and StreamAssign answer each item by its experiment's policy."""

    def test_batch_and_stream(self, tmp_path: Path) -> None:
        with service(tmp_path) as (redis_proc, _, client):
            client.create(
                "pre", type=epb.EXPERIMENT_TYPE_PREASSIGNED, redis_failure_policy=epb.REDIS_FAILURE_POLICY_FAIL_OPEN
            )
            client.create("forced", forced_arms={"qa": "a1"})
            redis_proc.stop()
            items = [("open", "p1"), ("closed", "p1"), ("pre", "p1"), ("forced", "qa"), ("open", "p2")]
            batch = client.assignments.BatchAssign(
                apb.BatchAssignRequest(
                    requests=[apb.AssignRequest(experiment_id=e, participant_id=p) for e, p in items]
                ),
                timeout=5,
            )
            stream = list(
                client.assignments.StreamAssign(
                    iter(apb.StreamAssignRequest(experiment_id=e, participant_id=p) for e, p in items), timeout=5
                )
            )
        for results in ([r for r in batch.results], [r.result for r in stream]):
            shown = [
                (r.assignment.reason, r.assignment.persisted)
                if r.HasField("assignment")
                else code_pb2.Code.Name(r.error.code)
                for r in results
            ]
            assert shown == [
                (apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT, False),
                "UNAVAILABLE",
                "UNAVAILABLE",
                (apb.ASSIGNMENT_REASON_FORCED, False),
                (apb.ASSIGNMENT_REASON_NEW_ASSIGNMENT, False),
            ]
            assert "fails closed" in results[1].error.message and "preassigned" in results[2].error.message


class TestPolicyField:
    """The policy through the API and the CLI: default, update, bad values."""

    def test_default_update_and_bad_value(self, client: Client) -> None:
        assert client.create("e1").redis_failure_policy == epb.REDIS_FAILURE_POLICY_FAIL_CLOSED
        patch = epb.Experiment(id="e1", redis_failure_policy=epb.REDIS_FAILURE_POLICY_FAIL_OPEN)
        updated = client.experiments.UpdateExperiment(
            espb.UpdateExperimentRequest(
                experiment=patch, update_mask=field_mask_pb2.FieldMask(paths=["redis_failure_policy"])
            )
        )
        assert updated.experiment.redis_failure_policy == epb.REDIS_FAILURE_POLICY_FAIL_OPEN
        with pytest.raises(grpc.RpcError) as caught:
            client.create("e2", redis_failure_policy=9)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert bad_request_fields(caught.value) == ["experiment.redis_failure_policy"]

    def test_cli(self, cli: Cli) -> None:
        assert cli("experiments", "create", "c1", "--arms", "a,b", "--redis-failure-policy", "fail_open").code == 0
        assert "redis_failure_policy: fail_open" in cli("experiments", "get", "c1", "-o", "yaml").out
        assert cli("experiments", "update", "c1", "--redis-failure-policy", "fail_closed").code == 0
        shown = cli("experiments", "get", "c1").out
        assert "redis_failure" in shown and "fail_closed" in shown


class TestServerChild:
    """The Redis child dies with the process that started it (PR_SET_PDEATHSIG, set after fork
    in a fresh interpreter, not in preexec_fn: see redis_server._BECOME_SERVER)."""

    def test_dies_with_its_parent(self, tmp_path: Path) -> None:
        script = (
            "import sys, time\n"
            "from pathlib import Path\n"
            "from assignsvc.store.redis_server import RedisServerProcess, free_port\n"
            "p = RedisServerProcess(Path(sys.argv[1]), port=free_port(), appendonly=False)\n"
            "p.start()\n"
            "print(p.pid, flush=True)\n"
            "time.sleep(60)\n"
        )
        parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        try:
            assert parent.stdout is not None
            child = int(parent.stdout.readline())
            assert _running(child)
        finally:
            parent.kill()
            parent.wait()
            if parent.stdout is not None:
                parent.stdout.close()
        deadline = time.monotonic() + 10
        while _running(child):
            assert time.monotonic() < deadline, "redis outlived its parent"
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
