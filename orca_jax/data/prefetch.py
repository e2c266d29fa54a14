"""A background thread that runs a producer ahead of its consumer, with a clean stop.

The input pipeline uses it to overlap reading/tokenizing/packing with the training
step. Items are produced in order by a single thread, so the output is exactly the
synchronous one; exceptions raised by the producer are re-raised at the consumer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Calls `produce()` in a daemon thread, keeping up to `depth` results ready.

    Args:
      produce: returns the next item, or raises StopIteration at the end.
      depth: items to keep ready (>= 1).
    """

    def __init__(self, produce: Callable[[], Any], depth: int):
        if depth < 1:
            raise ValueError("prefetch depth must be >= 1")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(produce,), name="orca-input-prefetch", daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[], Any]) -> None:
        while not self._stop.is_set():
            try:
                item = produce()
            except StopIteration:
                item = _END
            except BaseException as e:  # noqa: BLE001 -- handed to the consumer.
                item = _Failure(e)
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if item is _END or isinstance(item, _Failure):
                return

    def get(self) -> Any:
        """The next item; raises StopIteration at the end or the producer's exception."""
        item = self._queue.get()
        if item is _END:
            self._queue.put(_END)  # Later calls see the end too.
            raise StopIteration
        if isinstance(item, _Failure):
            self._queue.put(item)
            raise item.error
        return item

    def close(self) -> None:
        """Stop the thread and wait for it (the producer's current item is discarded)."""
        self._stop.set()
        self._thread.join()
