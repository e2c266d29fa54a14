"""Per-host input pipeline: a registered task or mixture -> packed numpy batches (the batch contract).

    it = make_batch_iterator("orca_stage2_flan1m_gpt4", sequence_length=2048, batch_size=512)
    batch = next(it)      # dict of int32 [512 // process_count, 2048]
    state = it.state_dict()                 # small JSON-serializable dict
    it.load_state_dict(state)               # the next batches are those that followed `state`
    it.stats()                              # counters: rows read, bad rows by reason, ...
    it.data_summary()                       # the same per file; it.write_data_summary(run_dir)

Stages, all in this process and without TensorFlow for the tasks in `orca_jax.data.registry`
(which `import tasks` fills, e.g. from a gin file):

  per task: this host's read units (disjoint across hosts, covering the data; 0-byte
     files skipped and reported, unreadable ones an error naming the file)
     -> ShardReader (validate rows, count bad ones per file; drop and count rows whose
        id already came earlier in the task's files: each id is trained once)
     -> TaskExampleStream
        (shuffle window, render chat prompt, tokenize; an over-long prompt is shortened
        keeping the chat header, else the row is dropped: responses are never cut)
  -> MixtureStream (rates) -> PackedStream (best-fit-decreasing per window)
  -> BatchIterator (host batches; a last partial batch is filled with padding rows)

Every stage is deterministic given the seed (and independent of prefetching and
tokenizer threads) and restores from a small state by re-reading one shuffle window
per task and one packing window (well under one pass over the data). Each host batch has
at least one real example (every example has a loss token: its response or EOS),
so no batch is all padding.

A name that is not in the registry but was registered with SeqIO (a T5X user's own
`seqio.TaskRegistry.add`) is read by `orca_jax.data.seqio_adapter` (imported only then:
it brings TensorFlow) into the same per-task streams, mixture, packer and batches.

Data location (gin configurables here): `orca_data_dir.path` (else the environment
variable ORCA_DATA_DIR), `orca_tokenizer_path.path` (else ORCA_TOKENIZER_PATH, else
`{data_dir}/tokenizer.model`), mixture rates `mixing_rate_mode.mode = 'paper' | 'num_examples'`.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import gin
import numpy as np

from orca_jax.data import fileio, registry, sources
from orca_jax.data.packing import PackedStream, rows_from_bins
from orca_jax.data.prefetch import Prefetcher
from orca_jax.data.preprocessors import DROP_REASONS, PROMPT_TRUNCATED, ExamplePreprocessor
from orca_jax.data.rows import BAD_ROW_REASONS, collection_of_id, validate_row
from orca_jax.data.streams import MixtureStream, ShardReader, TaskExampleStream, derive_int_seed
from orca_jax.data.system_messages import ID_PREFIX_TO_COLLECTION
from orca_jax.data.tokenizer import Tokenizer, load_tokenizer  # noqa: F401 (load_tokenizer re-exported)

logger = logging.getLogger(__name__)

STATE_VERSION = 1
PACKING_DEFAULTS: dict[str, Any] = {
    "pack": True,  # False: one example per row (e.g. for per-example evaluation).
    "pack_window": 2048,  # Examples per best-fit-decreasing window.
    "shuffle_window": 10_000,  # Rows per shuffle window, per task.
    "min_prompt_tokens": 16,  # Question tokens a truncation keeps, else the row is dropped (response_too_long).
    "template": None,  # Chat template; None: render_prompt's gin default ('chatml').
    "jsonl_block_bytes": sources.DEFAULT_JSONL_BLOCK_BYTES,
    "read_batch_rows": sources.DEFAULT_BATCH_ROWS,
    "tokenizer_threads": min(4, os.cpu_count() or 1),  # SentencePiece threads (output does not depend on it).
    "prefetch": 2,  # Batches prepared ahead in a background thread; 0 = synchronous.
}
_NOT_IN_STATE = ("tokenizer_threads", "prefetch")  # Settings a restore may change.
_RETIRED_OPTIONS = {
    "min_response_tokens": "responses are never cut any more: an over-long prompt is shortened, else the row is dropped",
}
DATA_SUMMARY_FILE = "data_summary.json"
RATE_MODES = ("paper", "num_examples")


class _BatchMaker:
    """Synchronous core of BatchIterator: packs host batches and tracks counters and state."""

    def __init__(
        self,
        packed: PackedStream,
        mixture: MixtureStream,
        host_batch_size: int,
        sequence_length: int,
        pad_id: int,
        files_without_rows: tuple[str, ...] = (),
    ):
        self._files_without_rows = files_without_rows
        self._packed = packed
        self._mixture = mixture
        self._rows = host_batch_size
        self._length = sequence_length
        self._pad_id = pad_id
        self._counters: collections.Counter = collections.Counter()
        self._done = False
        self._end_reported = False

    def next_batch(self) -> dict[str, np.ndarray]:
        rows = []
        if not self._done:
            for _ in range(self._rows):
                try:
                    rows.append(next(self._packed))
                except StopIteration:
                    self._done = True
                    break
        if not rows:
            self._done = True
            raise StopIteration
        batch = rows_from_bins(rows, self._length, self._pad_id, num_rows=self._rows)
        real = int((batch["decoder_segment_ids"] > 0).sum())
        self._counters["batches"] += 1
        self._counters["examples_packed"] += sum(len(r) for r in rows)
        self._counters["real_tokens"] += real
        self._counters["padded_slots"] += batch["decoder_segment_ids"].size - real
        self._counters["loss_tokens"] += int(batch["decoder_loss_weights"].sum())
        return batch

    def get_state(self) -> dict[str, Any]:
        return {"packer": self._packed.get_state(), "counters": dict(self._counters), "done": self._done}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._packed.set_state(state["packer"])
        self._counters = collections.Counter(state["counters"])
        self._done = bool(state["done"])
        self._end_reported = False

    def stats(self) -> dict[str, int]:
        upstream = self._mixture.counters()
        out = {"examples_read": upstream.pop("rows_read", 0), "rows_other_collection": 0}
        out.update({f"bad_rows/{r}": 0 for r in BAD_ROW_REASONS})
        out.update({"duplicate_ids": 0, "files_without_rows": len(self._files_without_rows), PROMPT_TRUNCATED: 0})
        out.update({f"dropped/{r}": 0 for r in DROP_REASONS})
        out.update({k: 0 for k in ("batches", "examples_packed", "real_tokens", "padded_slots", "loss_tokens")})
        for k, v in upstream.items():
            out[k] = out.get(k, 0) + int(v)
        for counts in self._mixture.file_counters().values():
            for k, v in counts.items():
                if k != "rows":
                    out[k] = out.get(k, 0) + v
        for k, v in self._counters.items():
            out[k] = int(v)
        return out

    def summary(self) -> dict[str, Any]:
        """Per-file data quality (each raw row once: first pass, tasks merged) and the totals."""
        files = self._mixture.file_counters()
        for path in self._files_without_rows:
            files[path] = {"rows": 0, "empty": 1}
        return {"files": dict(sorted(files.items())), "totals": self.stats()}

    def produce(self) -> tuple[dict[str, np.ndarray] | None, dict[str, Any], dict[str, int], dict[str, Any]]:
        """(batch, state after it, stats after it, summary after it): what the prefetch thread hands over.

        At the end of the data: once (None, final state, final stats, final summary), then StopIteration.
        """
        if self._done and self._end_reported:
            raise StopIteration
        try:
            batch = self.next_batch()
        except StopIteration:
            self._end_reported = True
            batch = None
        return batch, self.get_state(), self.stats(), self.summary()


class BatchIterator:
    """Host batches of a packed example stream; see the module doc and make_batch_iterator.

    With prefetch > 0 a background thread prepares the next batches; `state_dict()`
    and `stats()` still describe exactly the batches returned so far.

    Attributes:
      tokenizer: the tokenizer of the task(s) (None for a SeqIO task without a SentencePiece vocabulary).
      host_batch_size: rows per batch on this host.
      sequence_length: L.
    """

    def __init__(
        self,
        maker: _BatchMaker,
        *,
        tokenizer: Tokenizer | None,
        host_batch_size: int,
        sequence_length: int,
        config: Mapping[str, Any],
        prefetch: int = 0,
    ):
        self.tokenizer = tokenizer
        self.host_batch_size = host_batch_size
        self.sequence_length = sequence_length
        self._maker = maker
        self._config = dict(config)
        self._prefetch_depth = prefetch
        self._prefetcher: Prefetcher | None = None
        self._state = maker.get_state()  # After the last batch returned.
        self._stats = maker.stats()
        self._summary = maker.summary()

    def __iter__(self) -> BatchIterator:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        """The next host batch: dict of int32 [host_batch_size, sequence_length]."""
        if self._prefetch_depth:
            if self._prefetcher is None:
                self._prefetcher = Prefetcher(self._maker.produce, self._prefetch_depth)
            batch, state, stats, summary = self._prefetcher.get()
        else:
            batch, state, stats, summary = self._maker.produce()
        self._state, self._stats, self._summary = state, stats, summary
        if batch is None:
            logger.info("input pipeline %s exhausted; stats %s", self._config["name"], stats)
            raise StopIteration
        return batch

    def close(self) -> None:
        """Stop the prefetch thread (also done when the iterator is garbage collected)."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def __del__(self) -> None:
        prefetcher = getattr(self, "_prefetcher", None)
        if prefetcher is not None:
            prefetcher._stop.set()

    def state_dict(self) -> dict[str, Any]:
        """The position after the last batch returned (JSON-serializable; a few KB)."""
        return {"version": STATE_VERSION, "config": self._config, **json.loads(json.dumps(self._state))}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from `state`: the following batches equal what the saved iterator would yield next."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"input pipeline state version {state.get('version')} != {STATE_VERSION}")
        saved = json.loads(json.dumps(state["config"]))
        current = json.loads(json.dumps(self._config))
        if saved != current:
            diff = {
                k: (saved.get(k), current.get(k)) for k in set(saved) | set(current) if saved.get(k) != current.get(k)
            }
            raise ValueError(f"input pipeline state was saved with other settings (saved, current): {diff}")
        self.close()
        self._maker.set_state(state)
        self._state = self._maker.get_state()
        self._stats = self._maker.stats()
        self._summary = self._maker.summary()

    def data_summary(self) -> dict[str, Any]:
        """Per-file counts up to the last batch returned: {"files": {path: counts}, "totals": stats()}.

        Per file, counted in the first pass over it (later epochs read the same rows) and
        once however many tasks read it: rows (this host's raw rows), bad_rows/<reason>,
        duplicate_ids (rows dropped because their id came earlier), empty (a file with no
        rows, e.g. 0 bytes: skipped).
        """
        return json.loads(json.dumps(self._summary))

    def write_data_summary(self, directory: str) -> str:
        """Write data_summary() as JSON into `directory` (local or URI); returns the path.

        Process 0 writes `data_summary.json`, process i `data_summary.process-0000i.json`.
        """
        index = self._config["process_index"]
        name = DATA_SUMMARY_FILE if index == 0 else f"data_summary.process-{index:05d}.json"
        path = directory.rstrip("/") + "/" + name
        fileio.write_text(path, json.dumps({"pipeline": self._config["name"], **self.data_summary()}, indent=2) + "\n")
        return path

    def stats(self) -> dict[str, int]:
        """Counters up to the last batch returned (restored with the state).

        examples_read: raw rows of this host's shard read (including read-ahead windows,
        every pass, every task); rows_other_collection: valid rows of sub-collections the
        task does not keep; examples/<task>: examples produced per task; examples_packed,
        real_tokens, padded_slots, loss_tokens, batches: what the emitted batches held.
        Data quality, each raw row counted once (first pass; a file read by several tasks
        once): bad_rows/<reason>: rows rejected by validation; duplicate_ids: rows dropped
        because their id came earlier in the data; files_without_rows: files skipped as
        empty; dropped/response_too_long: rows whose whole response cannot fit;
        prompt_truncated: rows kept with a shortened prompt. Per file: data_summary().
        """
        return dict(self._stats)


@gin.configurable
def orca_data_dir(path: str | None = None) -> str | None:
    """Directory (local or gs://) of the real OpenOrca-schema files: gin `orca_data_dir.path`, else
    the environment variable ORCA_DATA_DIR; None when neither is set."""
    return path or os.environ.get("ORCA_DATA_DIR") or None


@gin.configurable
def orca_tokenizer_path(path: str | None = None) -> str | None:
    """The real tasks' tokenizer: gin `orca_tokenizer_path.path`, else ORCA_TOKENIZER_PATH; None
    means `{data_dir}/tokenizer.model`."""
    return path or os.environ.get("ORCA_TOKENIZER_PATH") or None


def data_locations() -> registry.Locations:
    """The locations the registered tasks' placeholders are filled with (under the current gin config)."""
    return registry.Locations(orca_data_dir(), orca_tokenizer_path())


@gin.configurable
def mixing_rate_mode(mode: str = "paper") -> str:
    """'paper' (Orca's FLAN-5M sub-collection sizes: CoT 150K, NIV2 440K, Flan2021 2.5M, T0 2M;
    FLAN-1M is a uniform subset, so the same proportions) or 'num_examples' (rows present)."""
    if mode not in RATE_MODES:
        raise ValueError(f"mixing_rate_mode must be one of {RATE_MODES}, got {mode!r}")
    return mode


def mixture_rates(
    spec: registry.MixtureSpec, split: str = "train", mode: str | None = None, where: registry.Locations | None = None
) -> dict[str, float]:
    """task -> mixing rate of `spec` under `mode` (gin's mixing_rate_mode() when None)."""
    mode = mixing_rate_mode() if mode is None else mixing_rate_mode(mode)
    if mode == "paper" and spec.paper_rates is not None:
        return {t: float(spec.paper_rates[t]) for t in spec.tasks}
    where = data_locations() if where is None else where
    return {t: float(num_examples(registry.get_task(t), split, where)) for t in spec.tasks}


def num_examples(spec: registry.TaskSpec, split: str, where: registry.Locations) -> int:
    """Rows of `spec` in `split`: rows whose id prefix maps to a kept sub-collection (ids only, cached)."""
    return _count(tuple(spec.files(split, where)), spec.collections, spec.unknown_prefix_collection)


@functools.cache
def _count(paths: tuple[str, ...], collections: tuple[str, ...] | None, unknown: str | None) -> int:
    total = 0
    for unit in sources.list_units(paths):
        for row_id in sources.iter_unit_ids(unit):
            if not isinstance(row_id, str):
                continue
            collection = collection_of_id(row_id, ID_PREFIX_TO_COLLECTION) or unknown
            if collection is not None and (collections is None or collection in collections):
                total += 1
    return total


class TaskStreams(NamedTuple):
    """What the packer needs from a task or mixture: one example stream per task and their rates.

    Attributes:
      streams: per task, its shuffled TokenizedExample stream.
      rates: mixing rate per stream.
      tokenizer: the tasks' tokenizer (recorded in the model card), or None.
      pad_id: the id written into padding slots.
      files_without_rows: data files skipped as empty.
      settings: how examples were made (recorded in the iterator's state config).
    """

    streams: list[TaskExampleStream]
    rates: list[float]
    tokenizer: Any
    pad_id: int
    files_without_rows: tuple[str, ...]
    settings: dict[str, Any]


def task_reader(
    spec: registry.TaskSpec,
    units: list[sources.Unit],
    *,
    process_index: int = 0,
    process_count: int = 1,
    seed: int = 0,
    shuffle: bool = True,
    num_epochs: int | None = None,
    batch_rows: int = sources.DEFAULT_BATCH_ROWS,
    duplicates: Mapping[tuple[str, int], frozenset[int]] | None = None,
) -> ShardReader:
    """The validated rows of `spec` kept by the task, in this host's share of `units`."""
    return ShardReader(
        spec.name,
        sources.shard_units(units, process_index, process_count, sources.MIN_UNITS_PER_HOST),
        validate=functools.partial(
            validate_row, teacher=spec.teacher, unknown_prefix_collection=spec.unknown_prefix_collection
        ),
        keep=lambda row: spec.keeps(row.collection),
        seed=seed,
        shuffle=shuffle,
        num_epochs=num_epochs,
        batch_rows=batch_rows,
        duplicates=duplicates,
    )


def _orca_streams(
    spec: registry.TaskSpec | registry.MixtureSpec,
    split: str,
    sequence_length: int,
    options: Mapping[str, Any],
    *,
    seed: int,
    shuffle: bool,
    num_epochs: int | None,
    process_index: int,
    process_count: int,
) -> TaskStreams:
    """The example streams of a registered Orca task or mixture (plain Python, no TensorFlow)."""
    where = data_locations()
    if isinstance(spec, registry.TaskSpec):
        specs, rates = [spec], [1.0]
    else:
        table = mixture_rates(spec, split, where=where)
        specs, rates = [registry.get_task(t) for t in spec.tasks], [table[t] for t in spec.tasks]
    files = {s.name: s.files(split, where) for s in specs}  # Fails early, naming a pattern without files.
    tokenizer_paths = sorted({s.tokenizer_path(where) for s in specs})
    if len(tokenizer_paths) != 1:
        raise ValueError(f"{spec.name!r} mixes tasks with different tokenizers: {tokenizer_paths}")
    tokenizer = load_tokenizer(tokenizer_paths[0])
    preprocess = ExamplePreprocessor(
        tokenizer,
        sequence_length,
        template=options["template"],
        min_prompt_tokens=options["min_prompt_tokens"],
        num_threads=options["tokenizer_threads"],
    )
    streams = []
    duplicates_cache: dict[tuple[sources.Unit, ...], dict] = {}
    files_without_rows: set[str] = set()
    for s in specs:
        units = sources.list_units(
            files[s.name], options["jsonl_block_bytes"], min_jsonl_units=sources.MIN_UNITS_PER_HOST * process_count
        )
        files_without_rows.update(set(files[s.name]) - {u.path for u in units})
        key = tuple(units)
        if key not in duplicates_cache:  # Tasks of one mixture usually read the same files: scan once.
            duplicates_cache[key] = sources.duplicate_rows(units)
        reader = task_reader(
            s,
            units,
            process_index=process_index,
            process_count=process_count,
            seed=seed,
            shuffle=shuffle,
            num_epochs=num_epochs,
            batch_rows=options["read_batch_rows"],
            duplicates=duplicates_cache[key],
        )
        streams.append(
            TaskExampleStream(
                reader, preprocess.batch, window_size=options["shuffle_window"], shuffle=shuffle, seed=seed
            )
        )
    settings = {"template": preprocess.template_name, "omit_empty_system": preprocess.omit_empty_system}
    return TaskStreams(streams, rates, tokenizer, tokenizer.pad_id, tuple(sorted(files_without_rows)), settings)


@gin.configurable
def make_batch_iterator(
    mixture_or_task_name: str,
    sequence_length: int,
    batch_size: int,
    *,
    split: str = "train",
    seed: int = 0,
    num_epochs: int | None = None,
    shuffle: bool = True,
    process_index: int | None = None,
    process_count: int | None = None,
    **packing_kwargs: Any,
) -> BatchIterator:
    """This host's packed batches of a registered task or mixture.

    Args:
      mixture_or_task_name: a name in orca_jax.data.registry (e.g. 'orca_stage1_flan5m_chatgpt',
        registered by `import tasks`), else a SeqIO task or mixture (see seqio_adapter).
      sequence_length: L, tokens per row.
      batch_size: GLOBAL rows per step; each host yields batch_size // process_count.
      split: data split ('train'; demo tasks also have 'validation').
      seed: seed of all shuffling and mixing (same seed, same batches).
      num_epochs: passes over each task's data; None repeats forever.
      shuffle: shuffle unit order, rows within windows and packed rows.
      process_index, process_count: this host and the host count (default: jax's).
      **packing_kwargs: overrides of PACKING_DEFAULTS (pack, pack_window,
        shuffle_window, min_prompt_tokens, template,
        jsonl_block_bytes, read_batch_rows, tokenizer_threads, prefetch).

    Returns:
      A BatchIterator yielding dicts of int32 arrays [batch_size // process_count,
      sequence_length]: decoder_input_tokens, decoder_target_tokens,
      decoder_loss_weights, decoder_segment_ids, decoder_positions.
    """
    for retired in set(packing_kwargs) & set(_RETIRED_OPTIONS):
        logger.warning("make_batch_iterator: %s is ignored: %s", retired, _RETIRED_OPTIONS[retired])
        packing_kwargs.pop(retired)
    unknown = set(packing_kwargs) - set(PACKING_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown make_batch_iterator arguments {sorted(unknown)}; known: {sorted(PACKING_DEFAULTS)}")
    options = {**PACKING_DEFAULTS, **packing_kwargs}
    if process_index is None or process_count is None:
        import jax  # Only for the defaults; the pipeline itself is numpy.

        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
    if batch_size % process_count:
        raise ValueError(f"global batch_size {batch_size} is not divisible by process_count {process_count}")
    if batch_size < process_count:
        raise ValueError(f"global batch_size {batch_size} is smaller than process_count {process_count}")
    if sequence_length < 2:
        raise ValueError(f"sequence_length must be >= 2, got {sequence_length}")
    if num_epochs is not None and num_epochs < 1:
        raise ValueError(f"num_epochs must be None or >= 1, got {num_epochs}")

    host_seed = derive_int_seed(seed, "host", process_index)
    common = dict(
        seed=host_seed, shuffle=shuffle, num_epochs=num_epochs, process_index=process_index, process_count=process_count
    )
    spec = registry.get_mixture_or_task(mixture_or_task_name)
    if spec is not None:
        tasks = _orca_streams(spec, split, sequence_length, options, **common)
    elif sys.modules.get("seqio") is not None:  # Only a module that imported SeqIO can have registered a SeqIO task.
        from orca_jax.data import seqio_adapter

        tasks = seqio_adapter.task_streams(mixture_or_task_name, split, sequence_length, options, **common)
    else:
        raise ValueError(
            f"unknown task or mixture {mixture_or_task_name!r}: not in orca_jax.data.registry (Orca tasks: "
            f"`import tasks` in the gin file) nor registered with SeqIO. Tasks: {registry.task_names()}; "
            f"mixtures: {registry.mixture_names()}"
        )
    mixture = MixtureStream(tasks.streams, tasks.rates, seed=host_seed)
    packed = PackedStream(
        mixture,
        sequence_length,
        window_size=options["pack_window"],
        pack=options["pack"],
        shuffle=shuffle,
        seed=host_seed,
    )
    config = {
        "name": mixture_or_task_name,
        "split": split,
        "seed": seed,
        "num_epochs": num_epochs,
        "shuffle": shuffle,
        "sequence_length": sequence_length,
        "host_batch_size": batch_size // process_count,
        "process_index": process_index,
        "process_count": process_count,
        "rates": dict(zip([s.name for s in tasks.streams], tasks.rates)),
        **{k: v for k, v in options.items() if k not in _NOT_IN_STATE},
        **tasks.settings,
    }
    return BatchIterator(
        _BatchMaker(
            packed, mixture, batch_size // process_count, sequence_length, tasks.pad_id, tasks.files_without_rows
        ),
        prefetch=options["prefetch"],
        tokenizer=tasks.tokenizer,
        host_batch_size=batch_size // process_count,
        sequence_length=sequence_length,
        config=config,
    )
