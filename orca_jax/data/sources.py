"""Raw-row sources: OpenOrca-schema Parquet and JSONL files, split into seekable read units.

A source is a list of glob patterns (local or gs://, many shards allowed). Files are
split into *units*, the smallest pieces that can be read independently and sought
into cheaply:

* Parquet: one unit per row group (row counts come from the footer, no data read).
  Rows are decoded in record batches of `batch_rows`, so a file is never loaded whole.
* JSONL: one unit per byte block of `jsonl_block_bytes` (default 8 MiB; smaller when
  more units are wanted for host balance, down to 64 KiB). A unit owns the lines
  that *start* inside its block (the Hadoop text-split rule), so blocks cover every
  line exactly once. `.jsonl.gz` files cannot be sought into and are one unit.

Host sharding (`shard_units`): with at least `min_units_per_host` units per host,
each host gets whole units, balanced by size (largest unit to the least loaded
host; the same deterministic assignment on every host), and opens only those.
With fewer units (e.g. one big Parquet row group, as in the OpenOrca release),
every host reads every unit but keeps only rows index, index + count, ... of each,
which balances exactly. Both ways the hosts' shards are disjoint and cover every row.

Readers yield raw rows as dicts, or `BadRow(reason)` for lines that are not valid
UTF-8 / JSON objects; field validation happens in `rows.py`.

Damaged files: a 0-byte file (an interrupted upload or copy) holds no rows, so it is
skipped with a warning naming it and reported in the data summary (nothing is lost). A
non-empty file that cannot be read as what its name says (a Parquet file without a
valid footer, a page that does not decode, a truncated .gz) stops the pipeline with a
`DataFileError` naming the file, and the row group / row where known: skipping it would
silently drop its rows.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import heapq
import io
import json
import logging
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from orca_jax.data import fileio

logger = logging.getLogger(__name__)

# OpenOrca columns (required) and the augmentation tool's optional extras.
REQUIRED_COLUMNS = ("id", "system_prompt", "question", "response")
OPTIONAL_COLUMNS = (
    "collection",
    "teacher",
    "system_message_id",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
)
DEFAULT_JSONL_BLOCK_BYTES = 8 << 20
DEFAULT_BATCH_ROWS = 1024
MIN_UNITS_PER_HOST = 8  # Whole-unit host sharding needs this many units per host (imbalance <= ~1/8).


@dataclasses.dataclass(frozen=True)
class BadRow:
    """A raw record that could not even be parsed into a dict; `reason` names why."""

    reason: str


RawRow = dict[str, Any] | BadRow


class DataFileError(ValueError):
    """A data file that cannot be read; the message names the file (and the row where known)."""


def _arrow_errors() -> tuple[type[BaseException], ...]:
    import pyarrow as pa

    return (pa.ArrowException, OSError)


def file_format(path: str) -> str:
    """'parquet' or 'jsonl' from the file name (.parquet/.pq, .jsonl/.json/.jsonl.gz)."""
    name = path.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".json.gz", ".ndjson")):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path!r}: expected .parquet or .jsonl[.gz]")


@dataclasses.dataclass(frozen=True)
class Unit:
    """An independently readable piece of one file.

    Attributes:
      path: the file.
      format: 'parquet' or 'jsonl'.
      index: row-group index (Parquet) or block index (JSONL) inside the file.
      start: first byte of the block (JSONL); 0 for Parquet.
      end: one past the last byte of the block (JSONL); row count for Parquet.
    """

    path: str
    format: str
    index: int
    start: int
    end: int

    @property
    def weight(self) -> int:
        """Size for balancing hosts: rows (Parquet) or KiB (JSONL, about one OpenOrca row per KiB)."""
        return max(1, self.end if self.format == "parquet" else (self.end - self.start) >> 10)


MIN_JSONL_BLOCK_BYTES = 64 << 10


def list_units(
    paths: Sequence[str], jsonl_block_bytes: int = DEFAULT_JSONL_BLOCK_BYTES, *, min_jsonl_units: int = 0
) -> list[Unit]:
    """All read units of `paths`, in file order then position order.

    Args:
      paths: Parquet and/or JSONL files.
      jsonl_block_bytes: JSONL block size.
      min_jsonl_units: shrink JSONL blocks (not below 64 KiB) until there are at least this many.
    """
    jsonl = [p for p in paths if file_format(p) == "jsonl" and not p.lower().endswith(".gz")]
    if min_jsonl_units and jsonl:
        total = sum(fileio.file_size(p) for p in jsonl)
        jsonl_block_bytes = min(jsonl_block_bytes, max(MIN_JSONL_BLOCK_BYTES, -(-total // min_jsonl_units)))
    units: list[Unit] = []
    for path in paths:
        fmt = file_format(path)
        size = fileio.file_size(path)
        if size == 0:
            logger.warning("%s is empty (0 bytes): skipped; it holds no rows", path)
            continue
        if fmt == "parquet":
            units.extend(_parquet_units(path))
        elif path.lower().endswith(".gz"):
            units.append(Unit(path, fmt, 0, 0, size))
        else:
            for b, start in enumerate(range(0, size, jsonl_block_bytes)):
                units.append(Unit(path, fmt, b, start, min(start + jsonl_block_bytes, size)))
    return units


def _parquet_units(path: str) -> list[Unit]:
    """One unit per row group, from the footer; DataFileError naming the file if unreadable."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(fileio.parquet_source(path)).metadata
    except _arrow_errors() as exc:
        raise DataFileError(f"{path}: not a readable Parquet file ({exc}); replace or remove it") from exc
    return [Unit(path, "parquet", g, 0, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)]


@dataclasses.dataclass(frozen=True)
class UnitShard:
    """The rows of `unit` whose index inside the unit is `offset` modulo `stride`."""

    unit: Unit
    offset: int = 0
    stride: int = 1


def shard_units(
    units: Sequence[Unit], index: int, count: int, min_units_per_host: int = MIN_UNITS_PER_HOST
) -> list[UnitShard]:
    """This host's share of `units`: disjoint from the other hosts', covering all rows together.

    With at least min_units_per_host * count units, host `index` gets whole units
    (size-balanced, deterministic) and reads nothing else; otherwise every host
    reads every unit and keeps rows index, index + count, ... of each.
    """
    if not 0 <= index < count:
        raise ValueError(f"process_index {index} must be in [0, {count})")
    if count == 1:
        return [UnitShard(u) for u in units]
    if len(units) < max(1, min_units_per_host) * count:
        return [UnitShard(u, index, count) for u in units]
    load = [(0, host) for host in range(count)]  # Heap of (assigned weight, host).
    mine = []
    for i in sorted(range(len(units)), key=lambda i: (-units[i].weight, i)):
        weight, host = heapq.heappop(load)
        if host == index:
            mine.append(i)
        heapq.heappush(load, (weight + units[i].weight, host))
    return [UnitShard(units[i]) for i in sorted(mine)]


def iter_unit_rows(
    unit: Unit, start_row: int = 0, batch_rows: int = DEFAULT_BATCH_ROWS, *, offset: int = 0, stride: int = 1
) -> Iterator[RawRow | None]:
    """Raw rows of one unit from row `start_row` on (earlier rows are skipped).

    Rows whose index in the unit is not `offset` modulo `stride` (other hosts' rows)
    come out as None without being decoded into Python objects or parsed.
    """
    if unit.format == "parquet":
        yield from _iter_parquet_rows(unit, start_row, batch_rows, offset, stride)
    else:
        index = start_row
        try:
            for index, line in enumerate(_iter_jsonl_lines(unit, start_row), start=start_row):
                yield parse_json_line(line) if index % stride == offset else None
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFileError(
                f"{unit.path}: unreadable after row {index} of block {unit.index} ({exc}); replace or remove the file"
            ) from exc


def _iter_parquet_rows(
    unit: Unit, start_row: int, batch_rows: int, offset: int = 0, stride: int = 1
) -> Iterator[RawRow | None]:
    try:
        yield from _iter_parquet_rows_unchecked(unit, start_row, batch_rows, offset, stride)
    except _arrow_errors() as exc:
        raise DataFileError(
            f"{unit.path}: row group {unit.index} could not be read ({exc}); replace or remove the file"
        ) from exc


def _iter_parquet_rows_unchecked(
    unit: Unit, start_row: int, batch_rows: int, offset: int, stride: int
) -> Iterator[RawRow | None]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(fileio.parquet_source(unit.path), buffer_size=1 << 20, pre_buffer=False)
    names = set(pf.schema_arrow.names)
    columns = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in names]
    if not columns:  # Not an OpenOrca file at all: every row lacks every field.
        for index in range(start_row, unit.end):
            yield {} if index % stride == offset else None
        return
    seen = 0  # Rows of the unit before the current batch.
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[unit.index], columns=columns):
        n = batch.num_rows
        first = max(0, start_row - seen)
        if first < n:
            # Our rows in this batch, decoded alone; the others become None.
            ours = [i for i in range(first, n) if (seen + i) % stride == offset]
            decoded = iter(batch.take(ours).to_pylist() if stride > 1 else batch.slice(first).to_pylist())
            for i in range(first, n):
                yield next(decoded) if (seen + i) % stride == offset else None
        seen += n


def _iter_jsonl_lines(unit: Unit, start_row: int = 0) -> Iterator[bytes]:
    """Non-blank lines owned by a JSONL unit, from its `start_row`-th line on."""
    with fileio.open_input(unit.path) as raw:
        if unit.path.lower().endswith(".gz"):
            stream: io.BufferedIOBase = io.BufferedReader(gzip.GzipFile(fileobj=raw))  # type: ignore[arg-type]
            position, end = 0, float("inf")
        else:
            stream = raw
            position, end = unit.start, unit.end
            if position > 0:
                # The previous block owns a line that starts before `start`; a line
                # starting exactly at `start` is ours (byte start-1 is then b"\n").
                stream.seek(position - 1)
                position += len(stream.readline()) - 1
        row = 0
        while position < end:
            line = stream.readline()
            if not line:
                break
            position += len(line)
            if not line.strip():
                continue  # Blank lines are not rows.
            if row >= start_row:
                yield line
            row += 1


UTF8_BOM = b"\xef\xbb\xbf"


def parse_json_line(line: bytes) -> RawRow:
    """One JSONL line -> dict, or BadRow('invalid_utf8' | 'malformed_json').

    A UTF-8 byte-order mark at the start of the line (editors put one at the start of a
    file; `cat` of such files puts them mid-file) is not part of the row and is dropped.
    """
    if line.startswith(UTF8_BOM):
        line = line[len(UTF8_BOM) :]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return BadRow("invalid_utf8")
    try:
        value = json.loads(text)
    except ValueError:
        return BadRow("malformed_json")
    if not isinstance(value, dict):
        return BadRow("malformed_json")
    return value


def iter_unit_ids(unit: Unit, batch_rows: int = 8192) -> Iterator[Any]:
    """The `id` field of every row of a unit (None where absent); Parquet reads only that column."""
    if unit.format == "parquet":
        try:
            yield from _iter_parquet_ids(unit, batch_rows)
        except _arrow_errors() as exc:
            raise DataFileError(
                f"{unit.path}: row group {unit.index} could not be read ({exc}); replace or remove the file"
            ) from exc
    else:
        for row in iter_unit_rows(unit, 0):
            yield row.get("id") if isinstance(row, dict) else None


def _iter_parquet_ids(unit: Unit, batch_rows: int) -> Iterator[Any]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(fileio.parquet_source(unit.path))
    if "id" not in pf.schema_arrow.names:
        yield from [None] * unit.end
        return
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[unit.index], columns=["id"]):
        yield from batch.column(0).to_pylist()


def write_rows(path: str, rows: Sequence[dict[str, Any]], *, row_group_size: int = 1000) -> None:
    """Write OpenOrca-schema rows to a local .parquet (zstd) or .jsonl file."""
    fmt = file_format(path)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(REQUIRED_COLUMNS) + [c for c in OPTIONAL_COLUMNS if rows and c in rows[0]]
        table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
        pq.write_table(table, path, row_group_size=row_group_size, compression="zstd")
    else:
        with open(path, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _id_hash(value: Any) -> int:
    """A 64-bit hash of a string id (0 for a missing or non-string id, which is never a duplicate)."""
    if not isinstance(value, str):
        return 0
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


def duplicate_rows(units: Sequence[Unit]) -> dict[tuple[str, int], frozenset[int]]:
    """Rows whose id appeared earlier in `units` (in list order): (file, unit index) -> row indices.

    The first row of each id is kept; the later ones are what a reader drops. Reads the
    ids only (Parquet: the id column). Ids are compared by a 64-bit hash first, and the
    rare candidates are then compared exactly, so a hash collision never drops a row.
    """
    hashes = [np.fromiter((_id_hash(i) for i in iter_unit_ids(u)), dtype=np.uint64) for u in units]
    flat = np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)
    values, counts = np.unique(flat[flat != 0], return_counts=True)
    candidates = values[counts > 1]
    if not len(candidates):
        return {}
    first_seen: set[str] = set()
    out: dict[tuple[str, int], frozenset[int]] = {}
    for unit, unit_hashes in zip(units, hashes):
        rows = np.flatnonzero(np.isin(unit_hashes, candidates))
        if not len(rows):
            continue
        wanted = set(rows.tolist())
        later = set()
        for row, row_id in enumerate(iter_unit_ids(unit)):
            if row in wanted:
                if row_id in first_seen:
                    later.add(row)
                first_seen.add(row_id)
        if later:
            out[(unit.path, unit.index)] = frozenset(later)
    return out
