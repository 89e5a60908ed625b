"""When a failed webhook delivery is tried again.

A value object (redis-py's backoff style): the schedule is data, jitter comes in as
an argument, so tests get exact numbers. Default: 5 attempts, the waits growing
exponentially (5 s, 30 s, 3 min, 18 min), each spread by +-20% so that receivers
that came back up are not hit by every sender in the same second. A schedule of
days, like Standard Webhooks' (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), is one
setting away: ASSIGNSVC_WEBHOOK_RETRY_SCHEDULE=5s,5m,30m,2h,5h,10h,10h.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

DEFAULT_SCHEDULE_S = (5.0, 30.0, 180.0, 1080.0)  # config.DEFAULT_RETRY_SCHEDULE
MAX_RETRY_AFTER_S = 86_400.0


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Waits before attempts 2, 3, ...; attempts = len(waits) + 1."""

    waits_s: tuple[float, ...] = DEFAULT_SCHEDULE_S
    jitter: float = 0.2

    @property
    def max_attempts(self) -> int:
        """Attempts of one event before it is given up on."""
        return len(self.waits_s) + 1

    def compute(self, failures: int, rand: float) -> float | None:
        """Seconds to wait after `failures` failed attempts; None when no attempt is left.

        rand in [0, 1) spreads the wait over [1 - jitter, 1 + jitter] of the schedule.
        """
        if failures < 1 or failures > len(self.waits_s):
            return None
        return self.waits_s[failures - 1] * (1.0 - self.jitter + 2.0 * self.jitter * rand)


def parse_retry_after(value: str, now_s: float) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or HTTP-date), capped at a day."""
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when.timestamp() - now_s), MAX_RETRY_AFTER_S)
