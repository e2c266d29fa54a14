"""When to send the next request: retry delays and client-side rate limits.

Retry delays: exponential backoff with jitter, or the server's Retry-After (`BackoffPolicy`).

Rate limits (`RateLimiter`): requests and tokens per minute, shared by all workers. Each
limit is a token bucket refilled continuously at `limit / 60` per second and holding
at most `burst_s` seconds' worth. A request takes one request unit and its estimated
tokens (prompt estimate + max_tokens, as the OpenAI API counts toward TPM); once the
response reports the real usage, the difference is settled. A 429 from the server pauses
every new request until its Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Callable, Mapping
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


class TokenBucket:
    """An async token bucket: `acquire(n)` waits until `n` units are available."""

    def __init__(self, per_minute: float, burst_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError(f"a rate limit must be positive, got {per_minute}")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> None:
        amount = min(float(amount), self.capacity)
        async with self._lock:  # first come, first served
            while True:
                self._refill()
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def settle(self, delta: float) -> None:
        """Charge (`delta > 0`) or refund (`delta < 0`) units after the fact."""
        self._refill()
        self.level = min(self.capacity, self.level - delta)


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits plus a shared 429 pause."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None) -> None:
        self.requests = TokenBucket(requests_per_minute) if requests_per_minute else None
        self.tokens = TokenBucket(tokens_per_minute) if tokens_per_minute else None
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold back every new request for `seconds` (after a 429)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    async def acquire(self, estimated_tokens: float) -> None:
        while (wait := self._paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if self.requests is not None:
            await self.requests.acquire(1)
        if self.tokens is not None:
            await self.tokens.acquire(estimated_tokens)

    def settle(self, estimated_tokens: float, actual_tokens: float | None) -> None:
        if self.tokens is not None and actual_tokens is not None:
            self.tokens.settle(actual_tokens - min(estimated_tokens, self.tokens.capacity))
