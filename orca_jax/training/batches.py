"""Where training batches come from: the batch-iterator protocol and its two sources.

`DataConfig` (gin-configurable) is what a stage trains on; `make_batches` turns it into the
host's iterator and is the trainer's one entry point. A name that starts
with "synthetic" selects `SyntheticBatches` (deterministic, no TensorFlow, used by the tests
and the tiny CPU run); any other name is a SeqIO task or mixture served by
`orca_jax.data.pipeline.make_batch_iterator`, imported only then (it brings TensorFlow).

Both yield the host's share `[batch_size // process_count, length]` of the batch contract
(docs/design.md#the-batch-contract): int32 numpy arrays `decoder_input_tokens`, `decoder_target_tokens`,
`decoder_loss_weights`, `decoder_segment_ids`, `decoder_positions`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import gin
import numpy as np

FEATURES = (
    "decoder_input_tokens",
    "decoder_target_tokens",
    "decoder_loss_weights",
    "decoder_segment_ids",
    "decoder_positions",
)

Batch = dict[str, np.ndarray]


@runtime_checkable
class BatchIterator(Protocol):
    """What the trainer needs from a data source (orca_jax.data.pipeline implements it too)."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __next__(self) -> Batch:
        """The next host batch; StopIteration after `num_epochs` passes over the data."""

    def state_dict(self) -> dict[str, Any]:
        """A JSON-able position: restoring it yields exactly the batches not yet returned."""

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a position returned by `state_dict`."""

    def stats(self) -> dict[str, int]:
        """Counters since the iterator was created (bad rows, dropped examples, real tokens...)."""


@gin.configurable
@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What a stage trains on (gin: `DataConfig.x`, `stage1/DataConfig.x`); the one holder of
    the sequence length, which the batch shapes, the data source and the step all take from it."""

    mixture_or_task_name: str | None = None
    """SeqIO mixture/task, or "synthetic..." for the built-in source (MIXTURE_OR_TASK_NAME)."""
    sequence_length: int = 2048
    """Tokens per packed row (SEQUENCE_LENGTH; Orca: 2048)."""
    batch_size: int = 128
    """Global batch, in packed rows (BATCH_SIZE)."""
    num_epochs: int | None = 4
    """Passes over the data (NUM_EPOCHS; Orca: 4 per stage); None repeats forever."""

    @property
    def batch_shape(self) -> tuple[int, int]:
        """`[batch_size, sequence_length]` of every array of the global batch."""
        return self.batch_size, self.sequence_length


def make_batches(
    data: DataConfig, *, seed: int = 0, process_index: int | None = None, process_count: int | None = None
) -> BatchIterator:
    """The host's batch iterator over `data` ("synthetic*" or a SeqIO name).

    The iterator yields rows of the global batch for data shard `process_index` of
    `process_count` (the trainer derives both from the mesh).
    """
    if data.mixture_or_task_name.startswith("synthetic"):
        return SyntheticBatches(
            data.sequence_length,
            data.batch_size,
            seed=seed,
            num_epochs=data.num_epochs,
            process_index=process_index or 0,
            process_count=process_count or 1,
        )
    # Imported lazily: the data stack (its configurables are registered by gin_utils, and a
    # gin file's `import tasks` registers the tasks').
    from orca_jax.data import pipeline

    return pipeline.make_batch_iterator(
        data.mixture_or_task_name,
        data.sequence_length,
        data.batch_size,
        seed=seed,
        num_epochs=data.num_epochs,
        process_index=process_index,
        process_count=process_count,
    )


@gin.configurable
class SyntheticBatches:
    """Deterministic packed batches of synthetic prompt/response examples.

    Example `i` (fixed content per seed) is a prompt of random symbols and a response that
    repeats the prompt in reverse, so a model can learn it. Each epoch visits all examples
    in a seeded permutation; examples are packed greedily, in order, into rows of
    `sequence_length` (segment ids 1.., positions restarting at 0, padding id 0), rows form
    global batches, and this host keeps rows `[process_index * b, (process_index + 1) * b)`
    of each, with b = batch_size // process_count. Loss weights are 1 on the response
    tokens (and its end token) only.

    The position is `(epoch, cursor)` in the epoch's permutation: `state_dict` after a batch
    restores exactly the batches that follow it.
    """

    def __init__(
        self,
        sequence_length: int,
        batch_size: int,
        *,
        seed: int = 0,
        num_epochs: int | None = None,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        num_examples: int = 1024,
        num_symbols: int = 16,
        max_prompt_length: int | None = None,
        delay_s: float = 0.0,
    ):
        """`num_examples` per epoch; symbols are token ids 3..3+num_symbols; prompts have
        1..max_prompt_length symbols (default sequence_length // 4); `delay_s` sleeps before
        each batch (to simulate a slow pipeline in tests)."""
        if batch_size % process_count:
            raise ValueError(f"batch_size {batch_size} is not divisible by process_count {process_count}")
        self.sequence_length, self.batch_size = sequence_length, batch_size
        self.seed, self.num_epochs, self.shuffle = seed, num_epochs, shuffle
        self.process_index, self.process_count = process_index, process_count
        self.num_examples, self.num_symbols = num_examples, num_symbols
        self.max_prompt_length = max_prompt_length or max(1, (sequence_length - 2) // 4)
        if 2 * self.max_prompt_length + 1 > sequence_length:
            raise ValueError(
                f"max_prompt_length {self.max_prompt_length} does not fit sequence_length {sequence_length}"
            )
        self.delay_s = delay_s
        self.epoch, self.cursor = 0, 0
        self._stats = {"examples": 0, "real_tokens": 0, "padded_slots": 0, "bad_rows": 0, "dropped": 0}

    def example(self, example_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, loss_weights) of example `example_id`: prompt, reversed prompt, end token 2."""
        rng = np.random.default_rng([self.seed, example_id])
        n = int(rng.integers(1, self.max_prompt_length + 1))
        prompt = rng.integers(3, 3 + self.num_symbols, n)
        tokens = np.concatenate([prompt, prompt[::-1], [2]])
        weights = np.concatenate([np.zeros(n), np.ones(n + 1)])
        return tokens.astype(np.int32), weights.astype(np.int32)

    def order(self, epoch: int) -> np.ndarray:
        """Example ids in the order epoch `epoch` visits them."""
        if not self.shuffle:
            return np.arange(self.num_examples)
        return np.random.default_rng([self.seed, 1 << 20, epoch]).permutation(self.num_examples)

    def __iter__(self) -> SyntheticBatches:
        return self

    def __next__(self) -> Batch:
        if self.delay_s:
            time.sleep(self.delay_s)
        epoch, cursor = self.epoch, self.cursor
        rows = []
        for _ in range(self.batch_size):
            row, epoch, cursor = self._pack_row(epoch, cursor)
            if row is None:
                raise StopIteration  # the data ran out: the partial batch is dropped
            rows.append(row)
        self.epoch, self.cursor = epoch, cursor
        share = self.batch_size // self.process_count
        mine = rows[self.process_index * share : (self.process_index + 1) * share]
        batch = {k: np.stack([r[k] for r in mine]) for k in FEATURES}
        self._count(batch)
        return batch

    def _pack_row(self, epoch: int, cursor: int):
        """Greedily pack examples from (epoch, cursor) into one row; None if no example is left."""
        length = self.sequence_length
        row = {k: np.zeros(length, np.int32) for k in FEATURES}
        used, segment, order = 0, 0, self.order(epoch)
        while self.num_epochs is None or epoch < self.num_epochs:
            tokens, weights = self.example(int(order[cursor]))
            if used + len(tokens) > length:
                break
            segment += 1
            span = slice(used, used + len(tokens))
            row["decoder_target_tokens"][span] = tokens
            row["decoder_input_tokens"][span] = np.concatenate([[1], tokens[:-1]])  # 1 = BOS
            row["decoder_loss_weights"][span] = weights
            row["decoder_segment_ids"][span] = segment
            row["decoder_positions"][span] = np.arange(len(tokens))
            used += len(tokens)
            cursor += 1
            if cursor == self.num_examples:
                epoch, cursor, order = epoch + 1, 0, self.order(epoch + 1)
        return (row if segment else None), epoch, cursor

    def _count(self, batch: Batch) -> None:
        real = int((batch["decoder_segment_ids"] > 0).sum())
        self._stats["real_tokens"] += real
        self._stats["padded_slots"] += batch["decoder_segment_ids"].size - real
        self._stats["examples"] += int(batch["decoder_segment_ids"].max(axis=1).sum())

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "cursor": self.cursor, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("seed", self.seed) != self.seed:
            raise ValueError(f"data state was saved with seed {state['seed']}, this run uses {self.seed}")
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])

    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def example_ids(self, start: dict[str, Any], end: dict[str, Any]) -> list[int]:
        """Ids of the examples consumed between two states, across this source (all hosts)."""
        ids, epoch, cursor = [], int(start["epoch"]), int(start["cursor"])
        while (epoch, cursor) < (int(end["epoch"]), int(end["cursor"])):
            ids.append(int(self.order(epoch)[cursor]))
            epoch, cursor = (epoch + 1, 0) if cursor + 1 == self.num_examples else (epoch, cursor + 1)
        return ids
