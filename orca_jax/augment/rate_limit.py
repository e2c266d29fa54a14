"""Client-side request and token rate limits (per minute), shared by all workers.

Each limit is a token bucket refilled continuously at `limit / 60` per second and holding
at most `burst_s` seconds' worth. A request takes one request unit and its estimated
tokens (prompt estimate + max_tokens, as the OpenAI API counts toward TPM); once the
response reports the real usage, the difference is settled. A 429 from the server pauses
every new request until its Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


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
