"""Retry delays: exponential backoff with jitter, and the server's Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before retry `attempt` (0-based): `min(max_s, base_s * 2**attempt)`, jittered.

    The jitter is "equal jitter": half the delay is fixed and half uniformly random, so
    retries of many concurrent requests spread out but never come back immediately. A
    Retry-After from the server overrides the backoff (plus up to 10% jitter), capped at
    `max_retry_after_s`.
    """

    base_s: float = 1.0
    max_s: float = 60.0
    max_retry_after_s: float = 600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.max_retry_after_s)
            return wait + rng.uniform(0.0, 0.1 * wait)
        ceiling = min(self.max_s, self.base_s * (2.0 ** min(attempt, 62)))
        return ceiling / 2.0 + rng.uniform(0.0, ceiling / 2.0)


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
