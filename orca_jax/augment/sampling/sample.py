"""Sample FLAN-v2 queries into a manifest: quotas, Algorithm 1, ids, system messages.

Deterministic for a seed: every random choice comes from a numpy generator seeded with
`[seed, purpose, ...]`. The steps:

1. index the inputs (collection, task and location of each usable row; no texts);
2. per collection, Algorithm 1 picks `quota` rows (quotas.py);
3. a seeded permutation of all picks gives the processing order, so a partly finished
   run is still a stratified mix; ids `<prefix>.<n>` number each collection's queries
   in that order from 0;
4. the texts of the picked rows are read in file order into a scratch file, and the
   manifest is then written from it in processing order, so no more than one query's
   text is in memory at a time. Each query's system message is drawn from a uniform
   number fixed by its position (message_choice.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from orca_jax.augment.sampling.flan_input import InputFilter, build_index, fetch_records
from orca_jax.augment.sampling.message_choice import choose_system_message
from orca_jax.augment.sampling.quotas import FLAN5M_QUOTAS, resolve_quotas, stratified_sample
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import ManifestEntry, ManifestMeta, ManifestWriter
from orca_jax.augment.store.schema import make_id
from orca_jax.data.system_messages import COLLECTIONS

log = logging.getLogger(__name__)

_PURPOSE_STRATIFIED, _PURPOSE_ORDER, _PURPOSE_MESSAGE = 1, 2, 3


@dataclass(frozen=True)
class SamplingSpec:
    """How to sample: size factor on the paper's quotas, seed, overrides and row filter."""

    size_factor: float = 1.0
    seed: int = 0
    quota_overrides: Mapping[str, int] = field(default_factory=dict)
    input_filter: InputFilter = InputFilter()


def _numbers_within_collection(collections: np.ndarray) -> np.ndarray:
    """For each position, how many earlier positions have the same collection."""
    numbers = np.zeros(collections.shape[0], dtype=np.int64)
    for code in range(len(COLLECTIONS)):
        mask = collections == code
        numbers[mask] = np.arange(int(mask.sum()))
    return numbers


def sample_manifest(
    inputs: Iterable[Path | str], layout: OutputLayout, spec: SamplingSpec = SamplingSpec(), force: bool = False
) -> ManifestMeta:
    """Sample queries from `inputs` and commit them as `layout`'s manifest."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with ManifestWriter(layout, force=force) as writer:
        index = build_index(inputs, spec.input_filter)
        available = index.available()
        quotas = resolve_quotas(available, spec.size_factor, spec.quota_overrides)
        picks = []
        for code, collection in enumerate(COLLECTIONS):
            rows = np.flatnonzero(index.collection == code)
            rng = np.random.default_rng([spec.seed, _PURPOSE_STRATIFIED, code])
            picks.append(rows[stratified_sample(index.task[rows], quotas[collection], rng)])
        chosen = np.concatenate(picks).astype(np.int64)
        order = np.random.default_rng([spec.seed, _PURPOSE_ORDER]).permutation(chosen.size)
        chosen = chosen[order]  # chosen[p] = index row processed at position p
        collections = index.collection[chosen]
        numbers = _numbers_within_collection(collections)
        uniforms = np.random.default_rng([spec.seed, _PURPOSE_MESSAGE]).random(chosen.size)
        log.info("sampled %d queries: %s", chosen.size, quotas)

        scratch = layout.root / ".manifest.scratch"
        offsets = np.zeros(chosen.size, dtype=np.int64)
        message_ids = np.zeros(chosen.size, dtype=np.int8)
        try:
            with open(scratch, "wb") as handle:
                for position, record in fetch_records(index, chosen):
                    collection = COLLECTIONS[int(collections[position])]
                    message_id, multiple_choice = choose_system_message(
                        collection, record.inputs, float(uniforms[position])
                    )
                    entry = ManifestEntry(
                        id=make_id(collection, int(numbers[position])),
                        source_id=record.source_id,
                        collection=collection,
                        task=record.task,
                        system_message_id=message_id,
                        multiple_choice=multiple_choice,
                        question=record.inputs,
                        targets=record.targets,
                    )
                    offsets[position] = handle.tell()
                    message_ids[position] = message_id
                    handle.write(entry.to_line())
            with open(scratch, "rb") as handle:  # copy the lines into processing order
                for position, offset in enumerate(offsets.tolist()):
                    handle.seek(offset)
                    collection = COLLECTIONS[int(collections[position])]
                    row_id = make_id(collection, int(numbers[position]))
                    writer.write_line(handle.readline(), collection, int(message_ids[position]), row_id)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(scratch)
        sampling = {
            "seed": spec.seed,
            "size_factor": spec.size_factor,
            "paper_quotas": {c: FLAN5M_QUOTAS[c] for c in COLLECTIONS},
            "quota_overrides": dict(spec.quota_overrides),
            "quotas": quotas,
            "available": available,
            "skipped_input_rows": index.skipped,
            "input_filter": asdict(spec.input_filter),
            "inputs": [{"path": str(p.resolve()), "bytes": p.stat().st_size} for p in index.paths],
            "tasks": {
                c: int(np.unique(index.task[index.collection == code]).size) for code, c in enumerate(COLLECTIONS)
            },
        }
        return writer.commit(sampling)
