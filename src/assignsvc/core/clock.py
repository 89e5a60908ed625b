"""The clock every use case is handed: milliseconds since the Unix epoch.

The one module of core that reads the time: the rest of core takes the time as an
argument, and use cases take a `Clock` so that tests pass their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000
