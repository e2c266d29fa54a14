"""Append-only JSONL files whose every line is complete once it is fsync'd.

Lines are written with one `os.write` per batch and fsync'd before they count as done,
so a `kill -9` can only leave a torn *last* line (bytes after the final newline).
`repair_jsonl` cuts that tail off (and drops any other line that does not parse) before
a file is appended to again; the readers also ignore a torn tail, so data files stay
valid JSONL for every other reader (SeqIO tasks included).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orca_jax.augment.atomic import atomic_writer

log = logging.getLogger(__name__)

_ID_PREFIX = re.compile(rb'^\{"id": ?"([^"\\]+)"')


def encode_line(row: dict[str, Any]) -> bytes:
    """One JSON line (UTF-8, newline-terminated); `id` stays the first key."""
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class RepairResult:
    """What `repair_jsonl` removed from one file."""

    torn_bytes: int = 0
    bad_lines: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.torn_bytes or self.bad_lines)


def _valid_json_line(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def repair_jsonl(path: Path, check_all_lines: bool = False) -> RepairResult:
    """Truncate a torn last line; with `check_all_lines`, also drop lines that don't parse.

    Only the last complete line is parsed by default (a crash can damage only the tail).
    """
    if not path.exists() or path.stat().st_size == 0:
        return RepairResult()
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(size - 1)
        last_byte = handle.read(1)
    torn = 0
    if last_byte != b"\n":
        keep = _last_newline_before(path, size) + 1
        torn = size - keep
        with open(path, "r+b") as handle:
            handle.truncate(keep)
            handle.flush()
            os.fsync(handle.fileno())
        log.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path, torn)
    if check_all_lines or not _last_line_valid(path):
        bad = _drop_bad_lines(path)
    else:
        bad = 0
    return RepairResult(torn_bytes=torn, bad_lines=bad)


def _last_newline_before(path: Path, end: int) -> int:
    """Offset of the last newline strictly before `end`, or -1."""
    with open(path, "rb") as handle:
        pos = end
        while pos > 0:
            start = max(0, pos - (1 << 20))
            handle.seek(start)
            cut = handle.read(pos - start).rfind(b"\n")
            if cut >= 0:
                return start + cut
            pos = start
    return -1


def _last_line_valid(path: Path) -> bool:
    size = path.stat().st_size
    if size == 0:
        return True
    start = _last_newline_before(path, size - 1) + 1
    with open(path, "rb") as handle:
        handle.seek(start)
        line = handle.read(size - 1 - start)
    return not line.strip() or _valid_json_line(line)


def _drop_bad_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    complete = lines[:-1]
    good = [line for line in complete if line.strip() and _valid_json_line(line)]
    bad = sum(1 for line in complete if line.strip()) - len(good)
    if bad:
        with atomic_writer(path) as handle:
            for line in good:
                handle.write(line + b"\n")
        log.warning("%s: dropped %d line(s) that were not valid JSON", path, bad)
    return bad


class AppendOnlyJsonl:
    """An append-only JSONL file; `append` writes a batch of lines and fsyncs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lines_written = 0

    def append(self, lines: Iterable[bytes]) -> int:
        """Write `lines` (each newline-terminated) in one write, then fsync; returns count."""
        batch = list(lines)
        if not batch:
            return 0
        data = b"".join(batch)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)
        self.lines_written += len(batch)
        return len(batch)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "AppendOnlyJsonl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_lines(path: Path) -> Iterator[bytes]:
    """Complete lines of a file (a torn tail without a newline is skipped)."""
    with open(path, "rb") as handle:
        for line in handle:
            if line.endswith(b"\n") and line.strip():
                yield line


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed rows of a JSONL file, skipping a torn tail and unparsable lines."""
    for line in iter_lines(path):
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s: skipping a line that is not valid JSON", path)
            continue
        if isinstance(row, dict):
            yield row


def iter_ids(path: Path) -> Iterator[str]:
    """The `id` of every complete row, read from the line's start without full parsing."""
    for line in iter_lines(path):
        match = _ID_PREFIX.match(line)
        if match:
            yield match.group(1).decode("utf-8")
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("id"), str):
            yield row["id"]
