"""Assign load with deadlines while a test breaks Redis, and the checks made on what it saw.

The load runs in a process of its own (grpc.aio clients; the spawn start method), so the
test's thread is free to SIGKILL / SIGSTOP Redis on a schedule, and a call's measured time
is the client's alone: in the test's process, the server thread's share of the GIL showed
up as client latency. Every call is recorded: when it started (CLOCK_MONOTONIC, the same in
every process), how long it took, its code, and the arm and `persisted` flag of an answer.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import time
from collections import defaultdict
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event

import grpc
from google.rpc import code_pb2

from assignsvc.v1 import assignment_service_pb2 as apb
from assignsvc.v1 import assignment_service_pb2_grpc as agrpc
from assignsvc.v1 import bulk_assignment_service_pb2 as bpb
from tests.support import Client

# Slack on top of a call's deadline: a failing call must have returned by then.
DEADLINE_SLACK_S = 0.05
ACCEPTED_FAILURES = {"UNAVAILABLE", "DEADLINE_EXCEEDED"}
GET = "GetAssignment"  # Call.method of lookups: NOT_FOUND is an answer, and they never write


@dataclass(frozen=True, slots=True)
class Call:
    """One Assign, item of a BatchAssign, or GetAssignment, as the client saw it."""

    experiment: str
    participant: str
    started: float  # time.monotonic()
    elapsed: float
    code: str  # grpc.StatusCode name, or a google.rpc code name for a batch item
    arm: str = ""
    persisted: bool = False
    details: str = ""
    method: str = "Assign"


@dataclass
class ChaosLoad:
    """`workers` Assign loops, one BatchAssign and one GetAssignment loop (the latter on the
    redis-py pool, the others on the claim pipe) over the experiments, in a child process
    from `with` until the block ends; then `calls` holds every call."""

    target: str
    experiments: tuple[str, ...]
    deadline_s: float = 0.3
    workers: int = 6
    participants: int = 3000  # ids drawn at random: early draws are new, later ones mostly repeat
    pause_s: float = 0.005  # between a worker's calls: leaves CPU to the server on a small machine
    calls: list[Call] = field(default_factory=list)

    def __enter__(self) -> ChaosLoad:
        context = multiprocessing.get_context("spawn")  # never fork a process running gRPC
        self._stop, ready = context.Event(), context.Event()
        self._results, sender = context.Pipe(duplex=False)
        self._process = context.Process(target=_run_load, args=(self, self._stop, ready, sender), daemon=True)
        self._process.start()
        assert ready.wait(60), "the load process did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._results.poll(30), "the load did not stop: a call hung"
        self.calls = self._results.recv()
        self._process.join(10)

    def __getstate__(self) -> dict[str, object]:
        """What the child needs: the settings (not the parent's process handles)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    async def main(self, stop: Event, ready: Event) -> None:
        """Run the loops (in the child) until `stop` is set."""
        self._stop = stop
        async with grpc.aio.insecure_channel(self.target) as channel:
            await channel.channel_ready()
            ready.set()
            stub = agrpc.AssignmentServiceStub(channel)
            loops = [self._assign_loop(stub, random.Random(i)) for i in range(self.workers)]
            await asyncio.gather(
                *loops, self._batch_loop(stub, random.Random(-1)), self._get_loop(stub, random.Random(-2))
            )

    async def _assign_loop(self, stub: agrpc.AssignmentServiceStub, rng: random.Random) -> None:
        while not self._stop.is_set():
            experiment = rng.choice(self.experiments)
            participant = f"p{rng.randrange(self.participants)}"
            started = time.monotonic()
            try:
                reply = await stub.Assign(
                    apb.AssignRequest(experiment_id=experiment, participant_id=participant), timeout=self.deadline_s
                )
            except grpc.aio.AioRpcError as error:
                self.calls.append(
                    Call(
                        experiment,
                        participant,
                        started,
                        time.monotonic() - started,
                        error.code().name,
                        details=error.details() or "",
                    )
                )
            else:
                a = reply.assignment
                self.calls.append(
                    Call(
                        experiment,
                        participant,
                        started,
                        time.monotonic() - started,
                        "OK",
                        a.arm.id if a.in_experiment else "",
                        a.persisted,
                    )
                )
            await asyncio.sleep(self.pause_s)

    async def _batch_loop(self, stub: agrpc.AssignmentServiceStub, rng: random.Random) -> None:
        while not self._stop.is_set():
            items = [(rng.choice(self.experiments), f"p{rng.randrange(self.participants)}") for _ in range(8)]
            request = apb.BatchAssignRequest(
                requests=[apb.AssignRequest(experiment_id=e, participant_id=p) for e, p in items]
            )
            started = time.monotonic()
            try:
                reply = await stub.BatchAssign(request, timeout=self.deadline_s)
            except grpc.aio.AioRpcError as error:
                elapsed = time.monotonic() - started
                self.calls += [
                    Call(e, p, started, elapsed, error.code().name, details=error.details() or "") for e, p in items
                ]
            else:
                elapsed = time.monotonic() - started
                for (e, p), result in zip(items, reply.results, strict=True):
                    if result.HasField("error"):
                        code = code_pb2.Code.Name(result.error.code)
                        self.calls.append(Call(e, p, started, elapsed, code, details=result.error.message))
                    else:
                        a = result.assignment
                        self.calls.append(
                            Call(e, p, started, elapsed, "OK", a.arm.id if a.in_experiment else "", a.persisted)
                        )
            await asyncio.sleep(self.pause_s * 4)

    async def _get_loop(self, stub: agrpc.AssignmentServiceStub, rng: random.Random) -> None:
        while not self._stop.is_set():
            experiment = rng.choice(self.experiments)
            participant = f"p{rng.randrange(self.participants)}"
            started = time.monotonic()
            request = apb.GetAssignmentRequest(experiment_id=experiment, participant_id=participant)
            try:
                reply = await stub.GetAssignment(request, timeout=self.deadline_s)
            except grpc.aio.AioRpcError as error:
                self.calls.append(
                    Call(
                        experiment,
                        participant,
                        started,
                        time.monotonic() - started,
                        error.code().name,
                        details=error.details() or "",
                        method=GET,
                    )
                )
            else:
                a = reply.assignment
                self.calls.append(
                    Call(
                        experiment,
                        participant,
                        started,
                        time.monotonic() - started,
                        "OK",
                        a.arm.id,
                        a.persisted,
                        method=GET,
                    )
                )
            await asyncio.sleep(self.pause_s)


def _run_load(load: ChaosLoad, stop: Event, ready: Event, results: Connection) -> None:
    """The load process: run, then send every call back."""
    asyncio.run(load.main(stop, ready))
    results.send(load.calls)


def export_arms(client: Client, experiment: str) -> dict[str, str]:
    """participant -> stored arm id, from ExportAssignments."""
    request = bpb.ExportAssignmentsRequest(experiment_id=experiment, chunk_size=10000)
    return {
        row.participant_id: row.arm_id
        for chunk in client.bulk.ExportAssignments(request, timeout=60)
        for row in chunk.assignments
    }


def check_outage(calls: list[Call], deadline_s: float) -> None:
    """No call failed outside the expected codes, or later than its deadline plus slack."""
    unexpected = [
        c
        for c in calls
        if c.code != "OK" and c.code not in ACCEPTED_FAILURES and not (c.method == GET and c.code == "NOT_FOUND")
    ]
    assert not unexpected, unexpected[:5]
    late = [c for c in calls if c.code not in ("OK", "NOT_FOUND") and c.elapsed > deadline_s + DEADLINE_SLACK_S]
    assert not late, late[:5]
    exhausted = [c for c in calls if "connection available" in c.details or "Too many connections" in c.details]
    assert not exhausted, exhausted[:5]


def check_recovery(calls: list[Call], back_at: float, within_s: float = 1.0) -> None:
    """Every call started `within_s` after Redis was back succeeded, and was stored (a lookup:
    found it or not)."""
    after = [c for c in calls if c.started >= back_at + within_s]
    assert after, "no call after the recovery window"
    answered = {("OK", True), ("NOT_FOUND", False)}  # the latter: a lookup that found nothing
    failed = [c for c in after if (c.code, c.persisted) not in answered or (c.code == "NOT_FOUND" and c.method != GET)]
    assert not failed, failed[:5]


def check_sticky(calls: list[Call], exported: dict[str, dict[str, str]], *, rows_kept: bool) -> None:
    """No participant ever got two arms: across every answer (stored or fail-open), and against
    the export. With rows_kept (no write may be lost), every stored answer is in the export."""
    arms: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in calls:
        if c.code == "OK" and c.arm:
            arms[(c.experiment, c.participant)].add(c.arm)
    assert not [key for key, seen in arms.items() if len(seen) > 1]
    for c in calls:
        if c.code == "OK" and c.arm:
            stored = exported[c.experiment].get(c.participant)
            if stored is not None:
                assert stored == c.arm, c
            elif c.persisted and rows_kept:
                raise AssertionError(f"acknowledged as stored, missing from the export: {c}")


def summary(calls: list[Call]) -> dict[str, int]:
    """Calls by (experiment, code, persisted), and the slowest failure in ms: for messages and reports."""
    out: dict[str, int] = defaultdict(int)
    for c in calls:
        out[f"{c.method}:{c.experiment}:{c.code}:{'stored' if c.persisted else 'unstored'}"] += 1
    failures = (c.elapsed for c in calls if c.code not in ("OK", "NOT_FOUND"))
    out["slowest_failure_ms"] = round(1000 * max(failures, default=0.0))
    return dict(sorted(out.items()))
