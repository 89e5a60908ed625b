"""`python -m assignsvc serve` as child processes, its port read from its log."""

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

SERVING = re.compile(r"serving on [\d.]+:(\d+)")


class ServeProcess:
    """`python -m assignsvc serve` in a child process; its port read from its log."""

    def __init__(self, *args: str, refresh_interval: str = "0.2") -> None:
        env = {**os.environ, "ASSIGNSVC_REFRESH_INTERVAL": refresh_interval, "ASSIGNSVC_GRACE_PERIOD": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "assignsvc", "serve", "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
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
