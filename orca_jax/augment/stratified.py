"""Stratified sampling, Algorithm 1 as recalled in orca_facts.md section 2a.

Within one collection: pick a task uniformly at random among the tasks that still have
queries, take one of its queries uniformly without replacement, and repeat until the
quota is met or every task is exhausted. Small tasks are thus taken whole and the rest of
the budget is spread evenly over the large ones, instead of following task sizes.

Which queries are taken does not depend on the order of the picks, so the draw runs in
two steps: the per-task counts (the task-picking loop), then for each task a uniform
choice of that many of its queries.
"""

from __future__ import annotations

import numpy as np

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
        rows = order[starts[task]: starts[task] + sizes[task]]
        take = int(counts[task])
        chosen.append(rows if take == rows.size else rng.choice(rows, size=take, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
