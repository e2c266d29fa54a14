"""Deterministic, resumable example streams: shard reader -> shuffled task examples -> mixture.

Every stream has `get_state() -> dict` (small, JSON-serializable) and
`set_state(dict)`; restoring puts the stream, *and its counters*, exactly where
they were. Restoring never replays more than one read window, so it costs far
less than a pass over the data:

* `ShardReader` walks this host's read units (see sources.py) epoch after epoch,
  in a per-epoch permuted unit order, and validates rows (bad ones counted by
  reason). Its position is (epoch, unit position, row in unit); seeking re-opens
  one unit.
* `TaskExampleStream` reads a window of valid rows from the reader (never
  crossing an epoch boundary), shuffles it, renders and tokenizes it in one batch,
  and hands out examples. Its state is the reader state at the window start, the
  window number and the position inside the window; restoring re-reads one window.
* `MixtureStream` draws the task of each example from the mixing rates with a
  counter-based RNG; an exhausted task (finite epochs) leaves the draw and the
  rates are renormalized over the rest.

Counters follow the same rule: they are snapshotted with each window start and
re-counted when a window is re-read, so `counters()` after a restore equals the
uninterrupted run's.

Data-quality counters count each raw row once: they are kept per file and counted in
the reader's first pass only (later epochs read the same rows again), so 10 bad rows
stay 10 after 4 epochs. `file_counters()` gives them per file: `rows` (this host's
raw rows of the file), `bad_rows/<reason>`, `duplicate_ids`. Several tasks reading the
same file (one per sub-collection) each see its bad rows; `merge_file_counters` takes
the largest count per file and key instead of adding them up.
"""

from __future__ import annotations

import collections
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from orca_jax.data import sources
from orca_jax.data.preprocessors import PROMPT_TRUNCATED, TokenizedExample
from orca_jax.data.rows import OrcaRow

logger = logging.getLogger(__name__)

_END = object()


def derive_seed(seed: int, *keys: str | int) -> list[int]:
    """A numpy SeedSequence entropy list from a base seed and names/numbers (stable across runs)."""
    digest = hashlib.blake2b("\x1f".join(map(str, keys)).encode(), digest_size=8).digest()
    return [int(seed) & 0xFFFFFFFFFFFFFFFF, int.from_bytes(digest, "little")]


def derive_int_seed(seed: int, *keys: str | int) -> int:
    """A 63-bit integer seed from a base seed and names/numbers."""
    return int(np.random.SeedSequence(derive_seed(seed, *keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def merge_file_counters(parts: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    """Per file and key, the largest count over `parts` (tasks that read the same file see the same rows)."""
    merged: dict[str, dict[str, int]] = {}
    for part in parts:
        for path, counts in part.items():
            target = merged.setdefault(path, {})
            for key, value in counts.items():
                target[key] = max(target.get(key, 0), int(value))
    return {path: dict(sorted(c.items())) for path, c in sorted(merged.items())}


class EmptyStreamError(ValueError):
    """A whole pass over a stream's data produced no usable example (with infinite epochs)."""


class ShardReader:
    """Valid rows of one task on this host, epoch after epoch.

    Args:
      name: task name (for logs and errors).
      shards: this host's units (sources.shard_units).
      validate: raw row -> OrcaRow or a bad-row reason.
      keep: which valid rows belong to the task (e.g. its sub-collection); the others
        are counted as 'rows_other_collection'.
      seed: base seed; the unit order of epoch e is a permutation seeded by (seed, name, e).
      shuffle: permute the unit order per epoch.
      num_epochs: passes over the data, None for forever.
      batch_rows: Parquet decode batch size.
      duplicates: (file, unit index) -> rows of that unit whose id appeared earlier in
        the data (sources.duplicate_rows); they are dropped and counted as duplicate_ids.
    """

    INITIAL_STATE: Mapping[str, Any] = {"epoch": 0, "unit": 0, "row": 0, "epoch_valid": 0, "counters": {}, "files": {}}
    LOGGED_BAD_ROWS_PER_FILE = 5

    def __init__(
        self,
        name: str,
        shards: Sequence[sources.UnitShard],
        *,
        validate: Callable[[sources.RawRow], OrcaRow | str],
        keep: Callable[[OrcaRow], bool] = lambda row: True,
        seed: int = 0,
        shuffle: bool = True,
        num_epochs: int | None = None,
        batch_rows: int = sources.DEFAULT_BATCH_ROWS,
        duplicates: Mapping[tuple[str, int], frozenset[int]] | None = None,
    ):
        self.name = name
        self._duplicates = duplicates or {}
        self._shards = list(shards)
        self._validate = validate
        self._keep = keep
        self._seed = seed
        self._shuffle = shuffle
        self._num_epochs = num_epochs
        self._batch_rows = batch_rows
        self._order_cache: tuple[int, list[int]] | None = None
        self._rows: Iterator[sources.RawRow | None] | None = None
        self.set_state(self.INITIAL_STATE)

    @property
    def epoch(self) -> int:
        """The pass over the data the reader is in (0-based)."""
        return self._epoch

    @property
    def num_epochs(self) -> int | None:
        return self._num_epochs

    def counters(self) -> dict[str, int]:
        """rows_read and rows_other_collection (every pass); bad rows are in file_counters()."""
        return dict(self._counters)

    def file_counters(self) -> dict[str, dict[str, int]]:
        """Per file: rows, bad_rows/<reason>, duplicate_ids, counted in the first pass only."""
        return {path: dict(c) for path, c in self._files.items()}

    def get_state(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "unit": self._unit,
            "row": self._row,
            "epoch_valid": self._epoch_valid,
            "counters": dict(self._counters),
            "files": self.file_counters(),
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._epoch = int(state["epoch"])
        self._unit = int(state["unit"])
        self._row = int(state["row"])
        self._epoch_valid = int(state["epoch_valid"])
        self._counters = collections.Counter(state["counters"])
        self._files = {path: collections.Counter(c) for path, c in state.get("files", {}).items()}
        self._rows = None  # Re-opened lazily at (unit, row).

    def _order(self, epoch: int) -> list[int]:
        if self._order_cache is None or self._order_cache[0] != epoch:
            order = list(range(len(self._shards)))
            if self._shuffle:
                order = (
                    np.random.default_rng(derive_seed(self._seed, "units", self.name, epoch))
                    .permutation(len(self._shards))
                    .tolist()
                )
            self._order_cache = (epoch, order)
        return self._order_cache[1]

    def _finished(self) -> bool:
        return self._num_epochs is not None and self._epoch >= self._num_epochs

    def read(self, max_rows: int) -> list[OrcaRow]:
        """Up to `max_rows` valid rows, all from the current epoch; [] once all epochs are read."""
        out: list[OrcaRow] = []
        while len(out) < max_rows and not self._finished():
            order = self._order(self._epoch)
            if self._unit >= len(order):
                if out:
                    break  # A window never spans two epochs; the next read starts the next one.
                self._end_epoch()
                continue
            shard = self._shards[order[self._unit]]
            if self._rows is None:
                self._rows = sources.iter_unit_rows(
                    shard.unit, self._row, self._batch_rows, offset=shard.offset, stride=shard.stride
                )
            raw = next(self._rows, _END)
            if raw is _END:
                self._unit, self._row, self._rows = self._unit + 1, 0, None
                continue
            self._row += 1
            if raw is None:
                continue  # Another host's row.
            self._counters["rows_read"] += 1
            row = self._validate(raw)
            problem = row if isinstance(row, str) else None
            if problem is None and self._row - 1 in self._duplicates.get((shard.unit.path, shard.unit.index), ()):
                problem = "duplicate_id"
            self._count_in_file(shard.unit, self._row - 1, problem)
            if problem is not None:
                continue
            if not self._keep(row):
                self._counters["rows_other_collection"] += 1
            else:
                self._epoch_valid += 1
                out.append(row)
        return out

    def _count_in_file(self, unit: sources.Unit, row: int, problem: str | None) -> None:
        """Count a raw row (and its problem) for its file, in the first pass only; log the first few bad ones."""
        if self._epoch:
            return
        counts = self._files.setdefault(unit.path, collections.Counter())
        counts["rows"] += 1
        if problem is None:
            return
        key = "duplicate_ids" if problem == "duplicate_id" else "bad_rows/" + problem
        counts[key] += 1
        if sum(v for k, v in counts.items() if k != "rows") <= self.LOGGED_BAD_ROWS_PER_FILE:
            where = (
                f"row group {unit.index}"
                if unit.format == "parquet"
                else f"block {unit.index} (from byte {unit.start})"
            )
            logger.warning("%s: %s, row %d: %s (skipped; counted in the data summary)", unit.path, where, row, problem)

    def _end_epoch(self) -> None:
        bad: collections.Counter = collections.Counter()
        for counts in self._files.values():
            bad.update({k: v for k, v in counts.items() if k != "rows"})
        logger.info(
            "%s: finished pass %d over this host's shard: %d rows read so far; per pass: bad rows and duplicates %s",
            self.name,
            self._epoch,
            self._counters["rows_read"],
            dict(sorted(bad.items())) or "{}",
        )
        if self._epoch_valid == 0 and self._num_epochs is None:
            raise EmptyStreamError(
                f"task {self.name!r}: a full pass over this host's share of the data found no usable row "
                f"(counters: {dict(self._counters)}); check the data files, the id prefixes and the shard count"
            )
        self._epoch, self._unit, self._row, self._epoch_valid, self._rows = self._epoch + 1, 0, 0, 0, None


class TaskExampleStream:
    """Shuffled, tokenized examples of one task: reads a window, shuffles it, preprocesses it in one go.

    Args:
      reader: the task's ShardReader (or a reader with its interface: seqio_adapter.SeqIOReader).
      preprocess: batch of rows (OrcaRows from a ShardReader) -> a TokenizedExample or drop reason per row.
      window_size: rows per shuffle window (memory: window_size rows of text).
      shuffle: shuffle inside windows (seeded by (seed, name, window number)).
      seed: base seed.
    """

    def __init__(
        self,
        reader: ShardReader,
        preprocess: Callable[[Sequence[OrcaRow]], list[TokenizedExample | str]],
        *,
        window_size: int = 10_000,
        shuffle: bool = True,
        seed: int = 0,
    ):
        self.name = reader.name
        self._reader = reader
        self._preprocess = preprocess
        self._window_size = window_size
        self._shuffle = shuffle
        self._seed = seed
        self._infinite = reader.num_epochs is None
        self.set_state({"window_start": None, "window": -1, "pos": 0, "counters": {}, "last_example_epoch": -1})

    def counters(self) -> dict[str, int]:
        """The reader's counters plus examples/<task> (every pass), dropped/<reason> and prompt_truncated (first pass)."""
        merged = collections.Counter(self._reader.counters())
        merged.update(self._counters)
        return dict(merged)

    def file_counters(self) -> dict[str, dict[str, int]]:
        """The reader's per-file counters (first pass)."""
        return self._reader.file_counters()

    def get_state(self) -> dict[str, Any]:
        return {
            "window_start": self._window_start,
            "window": self._window_index,
            "pos": self._pos,
            "counters": self._counters_at_start,
            "last_example_epoch": self._last_example_epoch_at_start,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._counters = collections.Counter(state["counters"])
        self._last_example_epoch = int(state["last_example_epoch"])
        self._window_start = state["window_start"]
        self._counters_at_start = dict(self._counters)
        self._last_example_epoch_at_start = self._last_example_epoch
        self._window: list[TokenizedExample] = []
        self._window_index, self._pos = int(state["window"]), 0
        if self._window_start is None:  # Nothing read yet: start from the reader's beginning.
            self._reader.set_state(self._reader.INITIAL_STATE)
            return
        self._reader.set_state(self._window_start)
        self._fill(self._window_index)
        self._pos = int(state["pos"])

    def _fill(self, window_index: int) -> bool:
        """Read, shuffle and preprocess window `window_index`; False once the reader is exhausted."""
        self._window_start = self._reader.get_state()
        self._counters_at_start = dict(self._counters)
        self._last_example_epoch_at_start = self._last_example_epoch
        rows = self._reader.read(self._window_size)
        epoch = self._reader.epoch  # All rows of a window come from this epoch.
        if self._shuffle and rows:
            rng = np.random.default_rng(derive_seed(self._seed, "window", self.name, window_index))
            rows = [rows[i] for i in rng.permutation(len(rows))]
        self._window = []
        first_pass = epoch == 0
        for result in self._preprocess(rows):
            if isinstance(result, str):
                self._counters["dropped/" + result] += first_pass
            else:
                self._counters[PROMPT_TRUNCATED] += first_pass and result.prompt_truncated
                self._window.append(result)
        self._counters["examples/" + self.name] += len(self._window)
        self._window_index, self._pos = window_index, 0
        if self._window:
            self._last_example_epoch = epoch
        elif rows and self._infinite and epoch - self._last_example_epoch >= 2:
            raise EmptyStreamError(
                f"task {self.name!r}: a full pass produced no example that fits the sequence length "
                f"(counters: {self.counters()})"
            )
        return bool(rows)

    def __iter__(self) -> TaskExampleStream:
        return self

    def __next__(self) -> TokenizedExample:
        while self._pos >= len(self._window):
            if not self._fill(self._window_index + 1):
                raise StopIteration
        example = self._window[self._pos]
        self._pos += 1
        return example


class MixtureStream:
    """Examples drawn from several task streams with fixed mixing rates.

    The task of draw k comes from uniform number k of a counter-based RNG, so the
    state is just k, the exhausted tasks and the tasks' own states. A task that
    runs out (finite num_epochs) leaves the mixture; StopIteration when all have.
    """

    _BLOCK = 4096

    def __init__(self, streams: Sequence[TaskExampleStream], rates: Sequence[float], *, seed: int = 0):
        if len(streams) != len(rates) or not streams:
            raise ValueError("need one positive rate per task stream")
        if any(r < 0 for r in rates) or sum(rates) <= 0:
            raise ValueError(f"mixing rates must be >= 0 with a positive sum, got {list(rates)}")
        self._streams = list(streams)
        self._rates = np.asarray(rates, np.float64)
        self._seed = seed
        self._draws = 0
        self._exhausted: set[int] = {i for i, r in enumerate(rates) if r == 0}
        self._block: tuple[int, np.ndarray] | None = None

    @property
    def names(self) -> list[str]:
        return [s.name for s in self._streams]

    def counters(self) -> dict[str, int]:
        total: collections.Counter = collections.Counter()
        for s in self._streams:
            total.update(s.counters())
        return dict(total)

    def file_counters(self) -> dict[str, dict[str, int]]:
        """Per-file counters of all tasks, each raw row counted once (merge_file_counters)."""
        return merge_file_counters(s.file_counters() for s in self._streams)

    def get_state(self) -> dict[str, Any]:
        return {
            "draws": self._draws,
            "exhausted": sorted(self._exhausted),
            "tasks": {s.name: s.get_state() for s in self._streams},
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._draws = int(state["draws"])
        self._exhausted = set(state["exhausted"])
        for s in self._streams:
            s.set_state(state["tasks"][s.name])

    def _uniform(self, k: int) -> float:
        block = k // self._BLOCK
        if self._block is None or self._block[0] != block:
            rng = np.random.default_rng(derive_seed(self._seed, "mixture", block))
            self._block = (block, rng.random(self._BLOCK))
        return float(self._block[1][k % self._BLOCK])

    def __iter__(self) -> MixtureStream:
        return self

    def __next__(self) -> TokenizedExample:
        while len(self._exhausted) < len(self._streams):
            active = [i for i in range(len(self._streams)) if i not in self._exhausted]
            if len(active) == 1:
                choice = active[0]
            else:
                weights = self._rates[active]
                cumulative = np.cumsum(weights / weights.sum())
                choice = active[
                    min(int(np.searchsorted(cumulative, self._uniform(self._draws), side="right")), len(active) - 1)
                ]
            self._draws += 1
            try:
                return next(self._streams[choice])
            except StopIteration:
                self._exhausted.add(choice)
        raise StopIteration
