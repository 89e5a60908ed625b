"""`serve --workers N`: a supervisor process and N gRPC server processes on one port.

The supervisor serves nothing itself. Without --redis-url it owns the embedded Redis
(its data dir lock, its restarts) and gives every worker the Redis's unix-socket URL;
with --redis-url every worker connects there. Workers are "spawn" children that run
`create_server` with SO_REUSEPORT on the same host:port, so the kernel spreads
connections over them; arms stay sticky across workers exactly as across replicas,
because the claim script in Redis decides them.

- Port 0: worker 1 binds a free port and reports it; the others then bind that port.
- Ready: each worker reports ("ready", port) or ("failed", reason) on a pipe. Once
  every worker has been ready the supervisor logs "serving on HOST:PORT with N workers".
- A worker that fails before that line stops everything: exit status 1 (a port in use
  or an unreachable Redis will not mend itself). A worker that dies later is restarted
  after a backoff (0.5 s, doubling to 8 s while restarts come quickly); after
  MAX_START_FAILURES restarts in a row that never get ready, everything stops: exit 1.
- Metrics (--metrics-port): the supervisor serves them, summing the workers' multiprocess
  files in a temporary directory (metrics.py says how); a dead worker's live gauge is
  dropped, its counters stay in the sums, and the directory goes when the supervisor stops.
- SIGTERM / SIGINT: SIGTERM to every worker (each drains as a single server does),
  SIGKILL to any left after the grace period + STOP_MARGIN_S, then the embedded Redis
  stops. Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group:
  the supervisor stops them in order) and get SIGTERM if the supervisor dies
  (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from assignsvc import logs
from assignsvc.config import ConfigError, ServerConfig
from assignsvc.errors import StoreUnavailableError
from assignsvc.metrics import MultiProcessEndpoint, share_with_workers
from assignsvc.server.wiring import create_server, tune_gc
from assignsvc.store.embedded import EmbeddedRedis
from assignsvc.store.redis_server import die_with_parent

log = logging.getLogger("assignsvc")

READY_TIMEOUT_S = 60.0
RESTART_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
STABLE_AFTER_S = 30.0  # a worker that ran this long resets the backoff
MAX_START_FAILURES = 5
STOP_MARGIN_S = 5.0


async def supervise(config: ServerConfig) -> int:
    """Run config.workers server processes until SIGTERM/SIGINT; the exit status."""
    return await Supervisor(config).run()


class Supervisor:
    """Starts, watches, restarts and stops the workers; owns the embedded Redis."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.port = config.port
        self.redis_url = config.redis_url
        self.exit_code = 0
        self._context = multiprocessing.get_context("spawn")
        self._processes: dict[int, BaseProcess] = {}
        self._ready: set[int] = set()
        self._serving = False
        self._port_known = asyncio.Event()
        self._stop = asyncio.Event()
        self.metrics: MultiProcessEndpoint | None = None

    async def run(self) -> int:
        """Start the metrics endpoint if on, Redis if embedded, then the workers; stop
        everything on a signal or failure."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        if self.config.metrics_port:
            self.metrics = _metrics_endpoint(self.config)
        try:
            return await self._run()
        finally:
            if self.metrics is not None:
                self.metrics.stop()
                shutil.rmtree(self.metrics.path, ignore_errors=True)

    async def _run(self) -> int:
        embedded = None
        if self.redis_url is None:
            embedded = EmbeddedRedis(self.config.data_dir)
            self.redis_url = await embedded.start()
        if self.port:
            self._port_known.set()
        slots = [
            asyncio.create_task(self._keep_running(i), name=f"worker-{i}") for i in range(1, self.config.workers + 1)
        ]
        try:
            await self._stop.wait()
            log.info(
                "stopping: draining %d worker(s) for up to %.1fs", len(self._processes), self.config.grace_period_s
            )
        finally:
            await self._stop_workers(slots)
            if embedded is not None:
                await embedded.stop()
        log.info("stopped")
        return self.exit_code

    async def _keep_running(self, index: int) -> None:
        try:
            await self._run_slot(index)
        except Exception:
            log.exception("worker %d: supervisor error", index)
            self._give_up()

    async def _run_slot(self, index: int) -> None:
        """Worker `index`, restarted whenever it dies, until the supervisor stops."""
        loop = asyncio.get_running_loop()
        if index > 1 and not await self._until(self._port_known):  # port 0: worker 1 picks it
            return
        failures = quick_restarts = 0
        while not self._stop.is_set():
            started = loop.time()
            process, reply = self._spawn(index)
            port, reason = await self._wait_ready(process, reply)
            if port is not None:
                failures = 0
                self._on_ready(index, process, port)
            pid = process.pid
            how = _describe_exit(await self._wait_exit(index, process))
            if self.metrics is not None and pid is not None:
                self.metrics.worker_exited(pid)
            if self._stop.is_set():
                return
            if loop.time() - started >= STABLE_AFTER_S:
                quick_restarts = 0
            delay = min(RESTART_BACKOFF_S * 2**quick_restarts, MAX_BACKOFF_S)
            quick_restarts += 1
            if port is not None:
                log.error("worker %d (pid %s) %s; restarting it in %.1fs", index, pid, how, delay)
            else:
                failures += 1
                if not self._serving or failures >= MAX_START_FAILURES:
                    log.error(
                        "worker %d could not start: %s (%s); giving up after %d attempt(s)",
                        index,
                        reason,
                        how,
                        failures,
                    )
                    self._give_up()
                    return
                log.error(
                    "worker %d (pid %s) could not start: %s (%s); retry %d of %d in %.1fs",
                    index,
                    pid,
                    reason,
                    how,
                    failures,
                    MAX_START_FAILURES - 1,
                    delay,
                )
            if await self._until(self._stop, timeout_s=delay):
                return

    def _spawn(self, index: int) -> tuple[BaseProcess, Connection]:
        # Started from the event loop's (main) thread: PR_SET_PDEATHSIG follows the thread.
        config = dataclasses.replace(self.config, redis_url=self.redis_url, port=self.port)
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(config, index, sender, os.getpid()),
            name=f"assignsvc-worker-{index}",
            daemon=True,
        )
        process.start()
        sender.close()
        self._processes[index] = process
        return process, receiver

    async def _wait_ready(self, process: BaseProcess, reply: Connection) -> tuple[int | None, str]:
        """(the port, "") once the worker serves, else (None, why not)."""
        try:
            await asyncio.wait_for(_readable(reply.fileno()), READY_TIMEOUT_S)
            kind, value = reply.recv()
        except TimeoutError:
            process.kill()
            return None, f"not ready after {READY_TIMEOUT_S:.0f}s"
        except EOFError:
            return None, "exited before it was ready"
        finally:
            reply.close()
        if kind == "ready":
            return int(value), ""
        return None, str(value)

    async def _wait_exit(self, index: int, process: BaseProcess) -> int | None:
        await _readable(process.sentinel)
        process.join()
        code = process.exitcode
        del self._processes[index]
        process.close()
        return code

    def _on_ready(self, index: int, process: BaseProcess, port: int) -> None:
        if not self._port_known.is_set():
            self.port = port
            self._port_known.set()
        log.info("worker %d (pid %s) ready on %s:%d", index, process.pid, self.config.host, port)
        self._ready.add(index)
        if not self._serving and len(self._ready) == self.config.workers:
            self._serving = True
            where = self.redis_url if self.config.redis_url else f"embedded at {self.redis_url}"
            log.info(
                "assignsvc serving on %s:%d with %d workers (supervisor pid %d, redis %s)",
                self.config.host,
                self.port,
                self.config.workers,
                os.getpid(),
                where,
            )
            if self.config.http_port:
                base = f"http://{self.config.host}:{self.config.http_port}"
                log.info("HTTP/JSON on %s in every worker (OFREP %s/ofrep/v1, console %s/ui)", base, base, base)

    def _give_up(self) -> None:
        self.exit_code = 1
        self._stop.set()

    async def _until(self, event: asyncio.Event, timeout_s: float | None = None) -> bool:
        """Wait for `event`, or for a stop; True if `event` is set (False on timeout or stop)."""
        waits = {asyncio.create_task(e.wait()) for e in {event, self._stop}}
        _, pending = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return event.is_set() and (event is self._stop or not self._stop.is_set())

    async def _stop_workers(self, slots: list[asyncio.Task[None]]) -> None:
        """SIGTERM every worker, wait for the drains, SIGKILL the ones still running."""
        self._stop.set()
        for process in list(self._processes.values()):
            with contextlib.suppress(ProcessLookupError, ValueError):
                process.terminate()
        _, pending = await asyncio.wait(slots, timeout=self.config.grace_period_s + STOP_MARGIN_S)
        if pending:
            for index, process in list(self._processes.items()):
                log.error("worker %d (pid %s) did not stop in time; killing it", index, process.pid)
                with contextlib.suppress(ProcessLookupError, ValueError):
                    process.kill()
            await asyncio.wait(pending)


def _metrics_endpoint(config: ServerConfig) -> MultiProcessEndpoint:
    """The endpoint summing the workers' metrics; workers spawned after this write theirs."""
    path = Path(tempfile.mkdtemp(prefix="assignsvc-metrics-"))
    share_with_workers(path)
    try:
        endpoint = MultiProcessEndpoint(config.host, config.metrics_port, path)
    except OSError as exc:
        shutil.rmtree(path, ignore_errors=True)
        raise ConfigError(f"cannot serve metrics on {config.host}:{config.metrics_port} (in use?): {exc}") from None
    log.info("metrics on http://%s:%d/metrics (summed over the workers)", config.host, endpoint.port)
    return endpoint


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


# --- in the worker process ----------------------------------------------------------------


def _worker_main(config: ServerConfig, index: int, ready: Connection, supervisor_pid: int) -> None:
    """A worker: one server on the shared port until SIGTERM (or the supervisor's death)."""
    die_with_parent()
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        sys.exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.configure(config.log_level, config.log_format, worker=index)
    sys.exit(asyncio.run(_work(config, ready)))


async def _work(config: ServerConfig, ready: Connection) -> int:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        running = await create_server(config)
    except StoreUnavailableError as exc:
        ready.send(("failed", f"cannot reach Redis: {exc}"))
        return 1
    except ConfigError as exc:
        ready.send(("failed", str(exc)))
        return 1
    except Exception as exc:  # a port that will not bind is a RuntimeError from grpc
        ready.send(("failed", f"{type(exc).__name__}: {exc}"))
        return 1
    tune_gc()
    ready.send(("ready", running.port))
    ready.close()
    try:
        await stop.wait()
        log.info("stopping: draining for up to %.1fs", config.grace_period_s)
    finally:
        await running.stop()
    return 0
