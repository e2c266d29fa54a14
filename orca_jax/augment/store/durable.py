"""Durable files: atomic replacement, and append-only JSONL that a crash cannot corrupt.

Atomic replacement (`atomic_writer`): write a temporary file in the same folder, fsync, rename.

Append-only JSONL (`AppendOnlyJsonl`): every line is complete once it is fsync'd. Lines
are written with one `os.write` per batch and fsync'd before they count as done, so a `kill -9` can only leave a torn *last* line (bytes after the final newline); a disk
or a copy can still damage a line anywhere. `repair_jsonl` parses every line in full
before a file is appended to again and moves the torn tail and any damaged line to a
quarantine side file (nothing is lost, and their queries are asked again); the readers
also ignore a torn tail, so data files stay valid JSONL for every other reader (SeqIO
tasks included).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


def fsync_dir(path: Path) -> None:
    """fsync a directory so that a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: Path | str, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a file that replaces `path` atomically when the block exits without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _FILE_MODE)  # mkstemp creates 0600; give the usual permissions
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_json(path: Path | str, obj: Any) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    with atomic_writer(path, "w") as handle:
        json.dump(obj, handle, indent=2, sort_keys=False, ensure_ascii=False)
        handle.write("\n")


def read_json(path: Path | str) -> Any:
    """Load a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def encode_line(row: dict[str, Any]) -> bytes:
    """One JSON line (UTF-8, newline-terminated); `id` stays the first key."""
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass(frozen=True)
class RepairResult:
    """What `repair_jsonl` removed from one file (moved to the quarantine file, if given)."""

    torn_bytes: int = 0
    bad_lines: int = 0
    ids: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.torn_bytes or self.bad_lines)


def parse_row_line(line: bytes) -> dict[str, Any] | None:
    """A complete line as a row dict with a string `id`, or None if damaged.

    Damaged: not valid UTF-8, not JSON, not an object, or no string `id` (a line cut in
    half keeps its id prefix but does not parse, so only a full parse can tell).
    """
    try:
        row = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(row, dict) or not isinstance(row.get("id"), str):
        return None
    return row


def quarantine_path(path: Path) -> Path:
    """Side file that keeps the damaged lines removed from `path`: `<dir>/quarantine/<name>`."""
    return path.parent / "quarantine" / path.name


def repair_jsonl(path: Path, quarantine: bool = True) -> RepairResult:
    """Parse every line of `path`; move damaged lines (and a torn tail) to the quarantine file.

    Every complete line is parsed in full, so a line damaged in the middle of a file
    (invalid UTF-8, cut in half) is found wherever it is. Removed bytes are appended,
    byte for byte, to `quarantine_path(path)` (fsync'd before the file is rewritten), so
    nothing is lost; the ids of the good lines come back in `ids`.
    """
    if not path.exists() or path.stat().st_size == 0:
        return RepairResult()
    bad: list[bytes] = []
    ids: list[str] = []
    torn = b""
    with open(path, "rb") as handle:  # First pass: parse, keep only ids and the (rare) damaged lines.
        for line in handle:
            if not line.endswith(b"\n"):
                torn = line
            elif line.strip():
                row = parse_row_line(line)
                if row is None:
                    bad.append(line)
                else:
                    ids.append(row["id"])
    if not bad and not torn:
        return RepairResult(ids=tuple(ids))
    removed = bad + ([torn + b"\n"] if torn else [])
    if quarantine:
        with AppendOnlyJsonl(quarantine_path(path)) as side:
            side.append(removed)
    _rewrite_good_lines(path)
    if torn:
        log.warning("%s: removed a torn last line (%d bytes) left by an interrupted run", path, len(torn))
    if bad:
        log.warning(
            "%s: %d damaged line(s) (invalid UTF-8 or JSON) moved to %s; their queries will be asked again",
            path,
            len(bad),
            quarantine_path(path) if quarantine else "nowhere",
        )
    return RepairResult(torn_bytes=len(torn), bad_lines=len(bad), ids=tuple(ids))


def _rewrite_good_lines(path: Path) -> None:
    """Replace `path` (atomically) by its complete, parsable, non-blank lines."""
    with open(path, "rb") as source, atomic_writer(path) as out:
        for line in source:
            if line.endswith(b"\n") and line.strip() and parse_row_line(line) is not None:
                out.write(line)


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

    def __enter__(self) -> AppendOnlyJsonl:
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
    """The `id` of every complete, fully parsable row (damaged lines are skipped)."""
    for line in iter_lines(path):
        row = parse_row_line(line)
        if row is not None:
            yield row["id"]
