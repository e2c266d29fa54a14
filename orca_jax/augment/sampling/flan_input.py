"""Read FLAN-v2 examples (JSONL or Parquet) into a compact index, then fetch chosen rows.

Input rows carry `id, collection, task, inputs, targets`; `collection` is one of cot,
niv2, t0, flan2021 (case and `_` ignored; `flan` and `niv` accepted). The column names of
the Open-Orca/FLAN dump are accepted too: `task_source` for collection, `task_name` for
task, and `template_type`, which, when present, restricts the index to zero-shot
templates (`zs_*`), as the paper sampled zero-shot queries only. T0 tasks whose name
mentions BIG-bench are left out (the paper removed them). Rows of other collections
(e.g. dialog) are skipped and counted.

The index holds four small numbers per row (collection, task, file, byte offset or row
number), never the texts; `fetch_records` reads the texts of the sampled rows only.
"""

from __future__ import annotations

import json
import logging
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from orca_jax.data.system_messages import COLLECTIONS

log = logging.getLogger(__name__)

JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)

_COLLECTION_ALIASES = {
    "cot": "cot",
    "niv2": "niv2",
    "niv": "niv2",
    "t0": "t0",
    "flan2021": "flan2021",
    "flan": "flan2021",
}
_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("id",),
    "collection": ("collection", "task_source"),
    "task": ("task", "task_name"),
    "inputs": ("inputs",),
    "targets": ("targets",),
    "template_type": ("template_type",),
}


def normalize_collection(name: object) -> str | None:
    """The canonical collection name (cot/niv2/t0/flan2021), or None if not one of them."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    return _COLLECTION_ALIASES.get(key)


def _field(record: dict[str, Any], name: str) -> Any:
    for key in _FIELD_ALIASES[name]:
        if key in record:
            return record[key]
    return None


@dataclass(frozen=True)
class InputFilter:
    """Which input rows can be sampled."""

    zero_shot_only: bool = True
    drop_t0_bigbench: bool = True


@dataclass(frozen=True)
class FlanRecord:
    """One FLAN query with its texts."""

    source_id: str
    collection: str
    task: str
    inputs: str
    targets: str


@dataclass
class InputIndex:
    """Per-row collection code, task code, file number and location of every usable row."""

    paths: list[Path]
    collection: np.ndarray
    task: np.ndarray
    task_names: list[str]
    file: np.ndarray
    location: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.collection.shape[0])

    def available(self) -> dict[str, int]:
        """Usable rows per collection."""
        counts = np.bincount(self.collection, minlength=len(COLLECTIONS))
        return {c: int(counts[i]) for i, c in enumerate(COLLECTIONS)}


def expand_inputs(paths: Iterable[Path | str]) -> list[Path]:
    """Input files: the given files, and the JSONL/Parquet files inside given folders."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in JSONL_SUFFIXES + PARQUET_SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    for path in files:
        if path.suffix not in JSONL_SUFFIXES + PARQUET_SUFFIXES:
            raise ValueError(f"unsupported input format {path.suffix!r} ({path}); use JSONL or Parquet")
    if not files:
        raise ValueError("no input files")
    return files


class _IndexBuilder:
    def __init__(self, row_filter: InputFilter) -> None:
        self.filter = row_filter
        self.collection = array("b")
        self.task = array("i")
        self.file = array("i")
        self.location = array("q")
        self.task_names: list[str] = []
        self.skipped: Counter[str] = Counter()
        self._collection_codes: dict[object, int | None] = {}
        # (collection code, raw task) -> task code, or a skip reason for the whole task
        self._task_codes: dict[tuple[int, object], int | str] = {}

    def _collection_code(self, collection: object) -> int | None:
        try:
            return self._collection_codes[collection]
        except KeyError:
            name = normalize_collection(collection)
            code = self._collection_codes[collection] = None if name is None else COLLECTIONS.index(name)
            return code
        except TypeError:  # unhashable value
            return None

    def _task_code(self, code: int, task: object) -> int | str:
        key = (code, task)
        found = self._task_codes.get(key)
        if found is None:
            task_name = "" if task is None else str(task)
            if not task_name:
                found = "missing_task"
            elif (
                self.filter.drop_t0_bigbench
                and COLLECTIONS[code] == "t0"
                and "bigbench" in task_name.lower().replace("_", "").replace("-", "")
            ):
                found = "t0_bigbench"
            else:
                found = len(self.task_names)
                self.task_names.append(task_name)
            self._task_codes[key] = found
        return found

    def add(self, collection: object, task: object, template_type: object, file_no: int, location: int) -> None:
        code = self._collection_code(collection)
        if code is None:
            self.skipped[f"collection:{collection}"] += 1
            return
        if self.filter.zero_shot_only and isinstance(template_type, str) and not template_type.startswith("zs"):
            self.skipped["few_shot_template"] += 1
            return
        task_code = self._task_code(code, task)
        if isinstance(task_code, str):
            self.skipped[task_code] += 1
            return
        self.collection.append(code)
        self.task.append(task_code)
        self.file.append(file_no)
        self.location.append(location)

    def build(self, paths: list[Path]) -> InputIndex:
        return InputIndex(
            paths=paths,
            collection=np.frombuffer(self.collection, dtype=np.int8).copy(),
            task=np.frombuffer(self.task, dtype=np.int32).copy(),
            task_names=self.task_names,
            file=np.frombuffer(self.file, dtype=np.int32).copy(),
            location=np.frombuffer(self.location, dtype=np.int64).copy(),
            skipped=dict(self.skipped),
        )


def build_index(paths: Iterable[Path | str], row_filter: InputFilter = InputFilter()) -> InputIndex:
    """Scan the inputs once and index every usable row (texts are not kept)."""
    files = expand_inputs(paths)
    builder = _IndexBuilder(row_filter)
    for file_no, path in enumerate(files):
        if path.suffix in PARQUET_SUFFIXES:
            _scan_parquet(path, file_no, builder)
        else:
            _scan_jsonl(path, file_no, builder)
        log.info("indexed %s (%d usable rows so far)", path, len(builder.collection))
    return builder.build(files)


def _scan_jsonl(path: Path, file_no: int, builder: _IndexBuilder) -> None:
    offset = 0
    with open(path, "rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                builder.skipped["invalid_json"] += 1
                log.warning("%s:%d is not valid JSON; skipped", path, line_no)
                continue
            if not isinstance(record, dict):
                builder.skipped["invalid_json"] += 1
                continue
            builder.add(
                _field(record, "collection"), _field(record, "task"), _field(record, "template_type"), file_no, start
            )


def _first_present(names: Iterable[str], candidates: tuple[str, ...]) -> str | None:
    present = set(names)
    return next((c for c in candidates if c in present), None)


def _scan_parquet(path: Path, file_no: int, builder: _IndexBuilder) -> None:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    columns = {key: _first_present(names, _FIELD_ALIASES[key]) for key in ("collection", "task", "template_type")}
    if columns["collection"] is None or columns["task"] is None:
        raise ValueError(f"{path}: Parquet input needs 'collection' and 'task' columns, found {names}")
    wanted = [c for c in columns.values() if c is not None]
    row = 0
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=wanted)
        collections = table.column(columns["collection"]).to_pylist()
        tasks = table.column(columns["task"]).to_pylist()
        templates = table.column(columns["template_type"]).to_pylist() if columns["template_type"] else None
        for i in range(table.num_rows):
            builder.add(collections[i], tasks[i], templates[i] if templates else None, file_no, row + i)
        row += table.num_rows


def _record(raw: dict[str, Any], path: Path, location: int) -> FlanRecord:
    source_id = _field(raw, "id")
    inputs = _field(raw, "inputs")
    if not isinstance(inputs, str) or not inputs.strip():
        raise ValueError(f"{path} @ {location}: row has no 'inputs' text")
    targets = _field(raw, "targets")
    return FlanRecord(
        source_id=str(source_id) if source_id is not None else f"{path.name}:{location}",
        collection=normalize_collection(_field(raw, "collection")) or "",
        task=str(_field(raw, "task")),
        inputs=inputs,
        targets="" if targets is None else str(targets),
    )


def fetch_records(index: InputIndex, positions: np.ndarray) -> Iterator[tuple[int, FlanRecord]]:
    """Yield `(k, record)` for row `positions[k]` of the index, for every k, in file order."""
    positions = np.asarray(positions, dtype=np.int64)
    order = np.lexsort((index.location[positions], index.file[positions]))
    files = index.file[positions[order]]
    for file_no in np.unique(files):
        ks = order[files == file_no]
        path = index.paths[int(file_no)]
        locations = index.location[positions[ks]]
        if path.suffix in PARQUET_SUFFIXES:
            yield from _fetch_parquet(path, ks, locations)
        else:
            yield from _fetch_jsonl(path, ks, locations)


def _fetch_jsonl(path: Path, ks: np.ndarray, offsets: np.ndarray) -> Iterator[tuple[int, FlanRecord]]:
    with open(path, "rb") as handle:
        for k, offset in zip(ks.tolist(), offsets.tolist()):
            handle.seek(offset)
            yield k, _record(json.loads(handle.readline()), path, offset)


def _fetch_parquet(path: Path, ks: np.ndarray, rows: np.ndarray) -> Iterator[tuple[int, FlanRecord]]:
    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    wanted = [
        c
        for key in ("id", "collection", "task", "inputs", "targets")
        if (c := _first_present(names, _FIELD_ALIASES[key]))
    ]
    bounds = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    groups = np.searchsorted(bounds, rows, side="right") - 1
    for group in np.unique(groups):
        mask = groups == group
        local = rows[mask] - bounds[group]
        table = parquet.read_row_group(int(group), columns=wanted).take(local)
        for k, row_no, raw in zip(ks[mask].tolist(), rows[mask].tolist(), table.to_pylist()):
            yield k, _record(raw, path, row_no)
