"""What the soak samples and how it reads drift: a process's RSS and open file
descriptors by kind (/proc/PID), Redis's used_memory, and least-squares slopes."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

from redis.asyncio import Redis


def socket_kinds(pid: int) -> dict[str, str]:
    """socket inode -> "tcp:LISTEN", "tcp:PORT" (connected, local port) or "unix", from /proc/PID/net."""
    kinds = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                kinds[fields[9]] = "tcp:LISTEN" if fields[3] == "0A" else f"tcp:{port}"
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/net/unix").read_text().splitlines()[1:]:
            kinds[line.split()[6]] = "unix"
    return kinds


def process_sample(pid: int | None) -> tuple[float | None, int | None, dict[str, int]]:
    """(RSS in MiB, open file descriptors, fds by kind) of pid from /proc; Nones without a pid.

    The kinds say what grows when the count does: file, pipe, anon_inode, and sockets by
    kind (tcp:LISTEN, tcp:PORT for a connection on local port PORT, e.g. a gRPC client on
    the server's port, unix for the embedded Redis's socket)."""
    if pid is None:
        return None, None, {}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        sockets = socket_kinds(pid)
        kinds: Counter[str] = Counter()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # closed between listdir and readlink
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    kinds["socket " + sockets.get(link[8:-1], "other")] += 1
                else:
                    kinds[link.split(":", 1)[0] if ":" in link and not link.startswith("/") else "file"] += 1
        return rss_kib / 1024, sum(kinds.values()), dict(kinds)
    except (OSError, StopIteration):
        return None, None, {}


async def redis_used_memory(redis: Redis | None) -> float | None:
    """Redis's used_memory in MiB (INFO memory), None without a Redis to ask."""
    if redis is None:
        return None
    with contextlib.suppress(Exception):
        return int((await redis.info("memory"))["used_memory"]) / 2**20
    return None


def slope_per_minute(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per minute; None under 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def drift(samples: list[dict[str, Any]], key: str, duration_s: float) -> dict[str, float | None]:
    """start, end, end - start, and the slope per minute over the second half of the run."""
    values = [(s["t_s"], s[key]) for s in samples if s[key] is not None]
    if not values:
        return {"start": None, "end": None, "delta": None, "slope_per_min_second_half": None}
    second_half = [(t, v) for t, v in values if t >= duration_s / 2]
    return {
        "start": values[0][1],
        "end": values[-1][1],
        "delta": values[-1][1] - values[0][1],
        "slope_per_min_second_half": slope_per_minute(second_half),
    }
