"""Group-commit finished queries to the output files.

Workers hand over results with `add`; `flush` writes everything pending in one write
per file and fsyncs it (in a thread, off the event loop), so thousands of rows per
second cost a few fsyncs. A result counts as done only once flushed: what a crash loses
was never recorded and is simply asked again. Training rows go to data shards of this
run (`part-RUN-SHARD.jsonl`, a new shard every `shard_rows` rows), rows kept apart to
`kept_apart.jsonl`, failures to `failures.jsonl`.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from dataclasses import dataclass

from orca_jax.augment.store.durable import AppendOnlyJsonl, encode_line
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import ManifestEntry
from orca_jax.augment.store.schema import make_row
from orca_jax.augment.teacher.client import Failure
from orca_jax.augment.teacher.completion import Completion
from orca_jax.augment.teacher.redaction import redact_secrets


@dataclass
class FlushCounts:
    """What one flush (or a whole run) made durable."""

    rows: int = 0
    kept_apart: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.rows + self.kept_apart + self.failures

    def add(self, other: FlushCounts) -> None:
        for name in ("rows", "kept_apart", "failures", "prompt_tokens", "completion_tokens"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _line(record: dict) -> bytes:
    return redact_secrets(encode_line(record).decode("utf-8")).encode("utf-8")


class OutputWriter:
    """Pending results and the append-only files they go to."""

    def __init__(self, layout: OutputLayout, run_index: int, teacher: str, shard_rows: int = 100_000) -> None:
        if shard_rows < 1:
            raise ValueError("shard_rows must be at least 1")
        self.layout = layout
        self.run_index = run_index
        self.teacher = teacher
        self.shard_rows = shard_rows
        self._rows: list[bytes] = []
        self._kept: list[bytes] = []
        self._failures: list[bytes] = []
        self._pending = FlushCounts()
        self._shard_index = 0
        self._shard: AppendOnlyJsonl | None = None
        self._kept_file: AppendOnlyJsonl | None = None
        self._failures_file: AppendOnlyJsonl | None = None
        self._lock = asyncio.Lock()

    def add(self, entry: ManifestEntry, outcome: Completion | Failure) -> None:
        """Queue the result for `entry` (not durable until the next flush)."""
        if isinstance(outcome, Failure):
            record = {
                "id": entry.id,
                "reason": outcome.reason,
                "detail": outcome.detail,
                "attempts": outcome.attempts,
                "status": outcome.status,
                "collection": entry.collection,
                "teacher": self.teacher,
                "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            }
            self._failures.append(_line(record))
            self._pending.failures += 1
            return
        row = make_row(
            row_id=entry.id,
            system_prompt=entry.system_prompt,
            question=entry.question,
            response=outcome.content,
            collection=entry.collection,
            teacher=self.teacher,
            system_message_id=entry.system_message_id,
            finish_reason=outcome.finish_reason,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            kept_apart_reason=outcome.kept_apart_reason,
        )
        if outcome.for_training:
            self._rows.append(_line(row))
            self._pending.rows += 1
        else:
            self._kept.append(_line(row))
            self._pending.kept_apart += 1
        self._pending.prompt_tokens += outcome.prompt_tokens or 0
        self._pending.completion_tokens += outcome.completion_tokens or 0

    def _take(self) -> tuple[list[bytes], list[bytes], list[bytes], FlushCounts]:
        taken = (self._rows, self._kept, self._failures, self._pending)
        self._rows, self._kept, self._failures, self._pending = [], [], [], FlushCounts()
        return taken

    def _write_rows(self, lines: list[bytes]) -> None:
        while lines:
            if self._shard is None or self._shard.lines_written >= self.shard_rows:
                if self._shard is not None:
                    self._shard.close()
                    self._shard_index += 1
                self._shard = AppendOnlyJsonl(self.layout.shard_path(self.run_index, self._shard_index))
            room = self.shard_rows - self._shard.lines_written
            self._shard.append(lines[:room])
            lines = lines[room:]

    def _write(self, rows: list[bytes], kept: list[bytes], failures: list[bytes]) -> None:
        self._write_rows(rows)
        if kept:
            self._kept_file = self._kept_file or AppendOnlyJsonl(self.layout.kept_apart)
            self._kept_file.append(kept)
        if failures:
            self._failures_file = self._failures_file or AppendOnlyJsonl(self.layout.failures)
            self._failures_file.append(failures)

    async def flush(self) -> FlushCounts:
        """Write and fsync everything pending; returns what became durable."""
        async with self._lock:
            rows, kept, failures, counts = self._take()
            if counts.total:
                await asyncio.to_thread(self._write, rows, kept, failures)
            return counts

    def close(self) -> None:
        for handle in (self._shard, self._kept_file, self._failures_file):
            if handle is not None:
                handle.close()
        self._shard = self._kept_file = self._failures_file = None
