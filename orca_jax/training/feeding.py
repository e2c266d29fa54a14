"""Feeding the device mesh: which rows of the global batch this host reads, assembling
global arrays from host-local batches, and prefetching the next batch in a thread.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from orca_jax.training.batches import Batch, BatchIterator


def host_row_blocks(sharding: NamedSharding, global_shape: tuple[int, ...]) -> dict[int, tuple[tuple[int, int], ...]]:
    """Per process index: the distinct `[start, stop)` row blocks its devices hold, in order."""
    blocks: dict[int, set[tuple[int, int]]] = {}
    for device, index in sharding.devices_indices_map(global_shape).items():
        rows = index[0]
        stop = global_shape[0] if rows.stop is None else rows.stop
        blocks.setdefault(device.process_index, set()).add((rows.start or 0, stop))
    return {process: tuple(sorted(b)) for process, b in blocks.items()}


def host_data_shard(sharding: NamedSharding, global_shape: tuple[int, ...]) -> tuple[int, int]:
    """(shard index, shard count) of the batch rows this host's devices hold.

    A host may hold several row blocks (make_mesh orders devices for the torus, not by host):
    its rows are those blocks in order, which is how jax.make_array_from_process_local_data
    (`to_global`) places the host's rows. Hosts holding the same blocks (model parallelism
    across hosts) get the same shard and must read the same data; the shards, numbered by
    their first row, are disjoint and equal. The data source is asked for shard i of n.
    """
    by_host = host_row_blocks(sharding, global_shape)
    shards = sorted(set(by_host.values()))
    mine = by_host[jax.process_index()]
    sizes = {sum(stop - start for start, stop in shard) for shard in shards}
    rows = sorted(row for shard in shards for start, stop in shard for row in range(start, stop))
    if len(sizes) > 1 or rows != list(range(global_shape[0])):
        raise ValueError(
            f"this host's devices hold batch rows {list(mine)} of {global_shape[0]}; the hosts' "
            "rows are not disjoint equal shards: use a mesh whose batch axes split evenly over hosts"
        )
    return shards.index(mine), len(shards)


def to_global(batch: Batch, sharding: NamedSharding, global_batch_size: int) -> dict[str, jax.Array]:
    """Global arrays `[global_batch, length]` from this host's rows (its row blocks, in order)."""

    def one(x: np.ndarray) -> jax.Array:
        return jax.make_array_from_process_local_data(sharding, x, (global_batch_size, *x.shape[1:]))

    return {k: one(v) for k, v in batch.items()}


_END = object()


class DeviceFeeder:
    """Reads host batches and puts them on the devices ahead of the step, in a thread (on top of
    the data pipeline's own reading thread, data/prefetch.py, which reads and packs ahead).

    `next_with_wait` returns (global batch, data position after that batch, wait): the position
    to checkpoint once the step has consumed the batch (the iterator itself runs ahead).
    """

    def __init__(self, iterator: BatchIterator, sharding: NamedSharding, global_batch_size: int, depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(iterator, sharding, global_batch_size), daemon=True, name="device_feed"
        )
        self._thread.start()

    def _run(self, iterator: BatchIterator, sharding: NamedSharding, global_batch_size: int) -> None:
        try:
            for host_batch in iterator:
                if not self._put((to_global(host_batch, sharding, global_batch_size), iterator.state_dict())):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)

    def _put(self, item: Any) -> bool:
        """Queue `item` unless closed meanwhile; False if closed."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next_with_wait(self) -> tuple[dict[str, jax.Array], dict[str, Any], float]:
        """(batch, data position, seconds waited); StopIteration when the data is exhausted."""
        start = time.perf_counter()
        item = self._queue.get()
        waited = time.perf_counter() - start
        if item is _END:
            self._queue.put(_END)
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        batch, position = item
        return batch, position, waited

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
