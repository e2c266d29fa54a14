"""What an output folder already holds: which ids are done, which failed, and why.

An id is *done* once a complete line with it, valid UTF-8 and JSON in full, is in a data
shard or in the kept-apart file; it then never goes to the teacher again. A damaged line
(wherever it is in the file) does not count: `repair_outputs` moves it to a quarantine
side file and its query is asked again. An id is *failed* if the failures file has
a record for it and it is not done; failed ids are skipped unless the run is told to
retry them. Done/failed sets are boolean arrays indexed by the id's number, per prefix.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orca_jax.augment.store.durable import iter_ids, iter_rows, repair_jsonl
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import ManifestMeta
from orca_jax.augment.store.schema import parse_id

log = logging.getLogger(__name__)


def _bitmaps(id_space: dict[str, int]) -> dict[str, np.ndarray]:
    return {prefix: np.zeros(size, dtype=bool) for prefix, size in id_space.items()}


@dataclass
class OutputState:
    """Done and failed ids of one output folder."""

    done: dict[str, np.ndarray]
    failed: dict[str, np.ndarray]
    data_rows: int = 0
    kept_apart_rows: int = 0
    duplicates: int = 0
    unknown_ids: int = 0
    failure_reasons: Counter[str] = field(default_factory=Counter)

    def _lookup(self, bitmaps: dict[str, np.ndarray], row_id: str) -> bool:
        try:
            prefix, number = parse_id(row_id)
        except ValueError:
            return False
        bitmap = bitmaps.get(prefix)
        return bitmap is not None and number < bitmap.size and bool(bitmap[number])

    def is_done(self, row_id: str) -> bool:
        return self._lookup(self.done, row_id)

    def is_failed(self, row_id: str) -> bool:
        """Failed and not done since."""
        return self._lookup(self.failed, row_id) and not self.is_done(row_id)

    @property
    def done_count(self) -> int:
        return int(sum(int(b.sum()) for b in self.done.values()))

    @property
    def failed_count(self) -> int:
        return int(sum(int((self.failed[p] & ~self.done[p]).sum()) for p in self.failed))


def repair_outputs(layout: OutputLayout) -> dict[Path, tuple[str, ...]]:
    """Quarantine torn and damaged lines (full parse); drop empty shards. Hold the lock first.

    Returns the ids of the good lines of every data shard and the kept-apart file, so
    `scan_outputs` need not parse them again.
    """
    ids: dict[Path, tuple[str, ...]] = {}
    for shard in layout.data_shards():
        if shard.stat().st_size == 0:
            shard.unlink()
            continue
        ids[shard] = repair_jsonl(shard).ids
    ids[layout.kept_apart] = repair_jsonl(layout.kept_apart).ids
    repair_jsonl(layout.failures)
    return ids


def _mark(state: OutputState, bitmaps: dict[str, np.ndarray], ids: Iterable[str], count_duplicates: bool) -> int:
    seen = 0
    for row_id in ids:
        try:
            prefix, number = parse_id(row_id)
        except ValueError:
            state.unknown_ids += 1
            continue
        bitmap = bitmaps.get(prefix)
        if bitmap is None or number >= bitmap.size:
            state.unknown_ids += 1
            continue
        if count_duplicates and bitmap[number]:
            state.duplicates += 1
        bitmap[number] = True
        seen += 1
    return seen


def scan_outputs(
    layout: OutputLayout, meta: ManifestMeta, ids: Mapping[Path, Iterable[str]] | None = None
) -> OutputState:
    """Read every finished row's id (or take them from `ids`, as `repair_outputs` returns) and every failure record."""
    state = OutputState(done=_bitmaps(meta.id_space), failed=_bitmaps(meta.id_space))
    ids = ids or {}

    def ids_of(path: Path) -> Iterable[str]:
        return ids[path] if path in ids else iter_ids(path)

    for shard in layout.data_shards():
        state.data_rows += _mark(state, state.done, ids_of(shard), count_duplicates=True)
    if layout.kept_apart.exists():
        state.kept_apart_rows = _mark(state, state.done, ids_of(layout.kept_apart), count_duplicates=True)
    latest: dict[str, str] = {}
    if layout.failures.exists():
        for record in iter_rows(layout.failures):
            if isinstance(record.get("id"), str):
                latest[record["id"]] = str(record.get("reason", "unknown"))
        _mark(state, state.failed, latest, count_duplicates=False)
    state.failure_reasons = Counter(reason for row_id, reason in latest.items() if state.is_failed(row_id))
    if state.duplicates:
        log.warning("%s holds %d duplicate row(s); finalize keeps the first of each id", layout.root, state.duplicates)
    if state.unknown_ids:
        log.warning("%s holds %d row(s) whose id is not in the manifest", layout.root, state.unknown_ids)
    return state
