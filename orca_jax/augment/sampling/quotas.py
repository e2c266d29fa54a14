"""How many queries to take from each collection (paper Table 3), and which (Algorithm 1).

FLAN-5M: CoT all of it, NIV2 440K, Flan2021 2.5M, T0 2M (Dialog skipped); FLAN-1M is a
random 1M subset of FLAN-5M. A size factor `s` scales every quota: a fixed quota `q`
becomes `round(q * s)`, and "all" (CoT) becomes `round(available * s)`, i.e. all of it at
s = 1. Every quota is capped by the rows available (Algorithm 1 stops when data runs out).

Algorithm 1 (stratified sampling, docs/orca_facts.md#2a-flan-v2-collections-and-table-3).
Within one collection: pick a task uniformly at random among the tasks that still have
queries, take one of its queries uniformly without replacement, and repeat until the
quota is met or every task is exhausted. Small tasks are thus taken whole and the rest of
the budget is spread evenly over the large ones, instead of following task sizes.

Which queries are taken does not depend on the order of the picks, so the draw runs in
two steps: the per-task counts (the task-picking loop), then for each task a uniform
choice of that many of its queries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from orca_jax.data.system_messages import COLLECTIONS

# None means "take every available query".
FLAN5M_QUOTAS: dict[str, int | None] = {"cot": None, "niv2": 440_000, "flan2021": 2_500_000, "t0": 2_000_000}
FLAN1M_SIZE = 1_000_000


def round_half_up(value: float) -> int:
    """Round to the nearest integer, halves upwards (no banker's rounding)."""
    return int(math.floor(value + 0.5))


def resolve_quotas(
    available: Mapping[str, int],
    size_factor: float = 1.0,
    overrides: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The number of queries to sample from each collection."""
    if size_factor <= 0:
        raise ValueError(f"size factor must be positive, got {size_factor}")
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(COLLECTIONS)
    if unknown:
        raise ValueError(f"quota overrides for unknown collections {sorted(unknown)}; expected {COLLECTIONS}")
    quotas: dict[str, int] = {}
    for collection in COLLECTIONS:
        have = int(available.get(collection, 0))
        paper = FLAN5M_QUOTAS[collection]
        if collection in overrides:
            wanted = int(overrides[collection])
        elif paper is None:
            wanted = round_half_up(have * size_factor)
        else:
            wanted = round_half_up(paper * size_factor)
        if wanted < 0:
            raise ValueError(f"negative quota for {collection}: {wanted}")
        quotas[collection] = min(have, wanted)
    return quotas


def subset_size(size_factor: float = 1.0) -> int:
    """Size of the GPT-4 subset (FLAN-1M) at this size factor."""
    return round_half_up(FLAN1M_SIZE * size_factor)


_CHUNK = 1 << 16


def stratified_counts(task_sizes: np.ndarray, quota: int, rng: np.random.Generator) -> np.ndarray:
    """How many queries Algorithm 1 takes from each task (same order as `task_sizes`)."""
    sizes = np.asarray(task_sizes, dtype=np.int64)
    total = int(sizes.sum())
    if quota >= total:
        return sizes.copy()
    counts = [0] * len(sizes)
    capacity = sizes.tolist()
    active = [t for t, size in enumerate(capacity) if size > 0]
    remaining = quota
    while remaining > 0:
        for u in rng.random(min(_CHUNK, remaining)).tolist():
            slot = int(u * len(active))
            task = active[slot]
            counts[task] += 1
            if counts[task] == capacity[task]:
                active[slot] = active[-1]
                active.pop()
        remaining -= min(_CHUNK, remaining)
    return np.asarray(counts, dtype=np.int64)


def stratified_sample(task_of_row: np.ndarray, quota: int, rng: np.random.Generator) -> np.ndarray:
    """Row numbers (into `task_of_row`) chosen by Algorithm 1, sorted ascending."""
    task_of_row = np.asarray(task_of_row)
    if quota <= 0 or task_of_row.size == 0:
        return np.zeros(0, dtype=np.int64)
    tasks, inverse = np.unique(task_of_row, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse, minlength=len(tasks))
    counts = stratified_counts(sizes, quota, rng)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    chosen: list[np.ndarray] = []
    for task in np.flatnonzero(counts):
        rows = order[starts[task] : starts[task] + sizes[task]]
        take = int(counts[task])
        chosen.append(rows if take == rows.size else rng.choice(rows, size=take, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
