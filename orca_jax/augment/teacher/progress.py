"""Progress of a run: a tqdm bar on a terminal, periodic log lines otherwise.

Both show done/total, rows per second, failures (queries given up on), rows kept apart,
the ETA, and the failed attempts being retried, by kind, counted as they happen (so an
endpoint that refuses every connection shows errors at once, not after the backoff).
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import IO

log = logging.getLogger("orca_jax.augment.progress")


def _eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    return str(_dt.timedelta(seconds=int(seconds)))


class Progress:
    """Counts finished queries and shows them; call `update` after each flush."""

    def __init__(
        self,
        total: int,
        *,
        stream: IO[str] | None = None,
        use_tqdm: bool | None = None,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = self.failures = self.kept_apart = 0
        self.attempt_errors: Counter[str] = Counter()
        self.interval_s = interval_s
        self._clock = clock
        self._start = clock()
        self._last_log = self._start
        stream = stream if stream is not None else sys.stderr
        if use_tqdm is None:
            use_tqdm = bool(getattr(stream, "isatty", lambda: False)())
        self._bar = None
        if use_tqdm:
            from tqdm import tqdm

            self._bar = tqdm(total=total, file=stream, unit="row", dynamic_ncols=True, smoothing=0.05)

    @property
    def rate(self) -> float:
        elapsed = self._clock() - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """One human-readable status line."""
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.done}/{self.total} ({pct:.1f}%) | {rate:.1f} rows/s | failures {self.failures} | "
            f"kept apart {self.kept_apart} | ETA {_eta(eta)}" + self._errors_text()
        )

    def _errors_text(self) -> str:
        if not self.attempt_errors:
            return ""
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.attempt_errors.items()))
        return f" | failed attempts {sum(self.attempt_errors.values())} ({kinds})"

    def attempt_failed(self, kind: str) -> None:
        """Count one failed attempt (to be retried or given up) as it happens."""
        self.attempt_errors[kind] += 1
        if self._bar is not None:
            self._bar.set_postfix(
                failures=self.failures, failed_attempts=sum(self.attempt_errors.values()), refresh=False
            )
            return
        self._maybe_log()

    def _maybe_log(self) -> None:
        now = self._clock()
        if now - self._last_log >= self.interval_s:
            self._last_log = now
            log.info("progress: %s", self.line())

    def update(self, done: int, failures: int = 0, kept_apart: int = 0) -> None:
        """Add newly finished queries (`done` includes failures and rows kept apart)."""
        self.done += done
        self.failures += failures
        self.kept_apart += kept_apart
        if self._bar is not None:
            self._bar.set_postfix(failures=self.failures, kept_apart=self.kept_apart, refresh=False)
            self._bar.update(done)
            return
        self._maybe_log()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        log.info("progress: %s", self.line())
