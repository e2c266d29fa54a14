"""Where everything lives in an augmentation output folder, and the folder's run lock.

```
OUT/
  manifest.jsonl          sampled queries (written once, atomically)
  manifest.meta.json      sampling parameters and counts; its presence commits the manifest
  run_config.json         teacher settings of the runs (API key env var NAME only)
  data/part-RRRRR-SSSSS.jsonl   training rows (append-only; run R, shard S)
  data/quarantine/part-...jsonl damaged or torn lines removed from that shard on resume
  kept_apart.jsonl        rows not for training: finish_reason length, content filter, ...
  failures.jsonl          permanent failures, one record per failed attempt-series
  quarantine/*.jsonl      damaged or torn lines removed from kept_apart/failures
  report.json             counts, failures by reason, tokens, estimated cost
  final/                  Parquet written by `finalize`
  .lock                   held (flock) by a running `run`
```
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SHARD = re.compile(r"^part-(\d{5,})-(\d{5,})\.jsonl$")


def _shard_key(path: Path) -> tuple[int, int]:
    """(run, shard) of a data shard's file name."""
    match = _SHARD.match(path.name)
    if match is None:
        raise ValueError(f"not a data shard: {path}")
    return int(match.group(1)), int(match.group(2))


class OutputLocked(RuntimeError):
    """Another process is running on the same output folder."""


def _child(name: str) -> property:
    """A read-only attribute: the path `name` inside the output folder."""
    return property(lambda self: self.root / name, doc=f"root / {name!r}")


@dataclass(frozen=True)
class OutputLayout:
    """Paths inside one output folder."""

    root: Path

    @classmethod
    def at(cls, root: Path | str) -> OutputLayout:
        return cls(Path(root))

    # Files and folders inside the output folder.
    manifest = _child("manifest.jsonl")
    manifest_meta = _child("manifest.meta.json")
    run_config = _child("run_config.json")
    data_dir = _child("data")
    kept_apart = _child("kept_apart.jsonl")
    failures = _child("failures.jsonl")
    report = _child("report.json")
    final_dir = _child("final")
    lock_path = _child(".lock")

    def data_shards(self) -> list[Path]:
        """Existing training-row shards, in (run, shard) order."""
        if not self.data_dir.exists():
            return []
        shards = [p for p in self.data_dir.iterdir() if _SHARD.match(p.name)]
        return sorted(shards, key=_shard_key)

    def next_run_index(self) -> int:
        """One more than the highest run index among existing shards."""
        return max((_shard_key(p)[0] for p in self.data_shards()), default=-1) + 1

    def shard_path(self, run_index: int, shard_index: int) -> Path:
        return self.data_dir / f"part-{run_index:05d}-{shard_index:05d}.jsonl"

    def row_files(self) -> list[Path]:
        """Every file holding finished rows: data shards, then the kept-apart file."""
        files = self.data_shards()
        if self.kept_apart.exists():
            files.append(self.kept_apart)
        return files

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder (released by the OS even on kill -9)."""
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise OutputLocked(f"{self.root} is in use by another augmentation run") from exc
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)
