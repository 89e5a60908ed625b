"""A real HTTP receiver on loopback for webhook tests: records every request and
answers as scripted (status, headers, delay, a huge body, a connection reset)."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Answer:
    """How to answer one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body_bytes: int = 0
    reset: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    time: float


class Receiver:
    """ThreadingHTTPServer on 127.0.0.1:free port; `answers` are used in order, then 200."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.answers: list[Answer] = []
        # When set: the first request carrying each webhook-id gets this answer (then `answers`).
        self.first_per_id: Answer | None = None
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                    )
                    answer = receiver.answers.pop(0) if receiver.answers else Answer()
                    message_id = self.headers.get("webhook-id", "")
                    if receiver.first_per_id is not None and message_id not in receiver._seen:
                        answer = receiver.first_per_id
                    receiver._seen.add(message_id)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if answer.reset:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                with contextlib.suppress(OSError):
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(answer.body_bytes))
                    self.end_headers()
                    chunk = b"x" * 65536
                    left = answer.body_bytes
                    while left > 0:
                        self.wfile.write(chunk[: min(left, len(chunk))])
                        left -= len(chunk)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *answers: Answer) -> None:
        """Answer the next requests so (then 200)."""
        with self._lock:
            self.answers.extend(answers)

    def received(self) -> list[Received]:
        """A snapshot of every request so far."""
        with self._lock:
            return list(self.requests)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    """A started Receiver, stopped on exit."""
    with Receiver() as r:
        yield r


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: 40 deliveries arriving at once then
    # lose SYNs, and the kernel's 1 s SYN retry outlasts a 1 s webhook timeout.
    request_queue_size = 128
