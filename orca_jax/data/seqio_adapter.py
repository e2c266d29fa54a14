"""Any SeqIO task or mixture as training examples for the Orca packer (imports TensorFlow and SeqIO).

A T5X user registers a task (`seqio.TaskRegistry.add(name, source=..., preprocessors=...,
output_features={"inputs": ..., "targets": ...})`), imports its module from the gin file and
sets `MIXTURE_OR_TASK_NAME = name`. `pipeline.make_batch_iterator` comes here for a name that
is not in orca_jax.data.registry; each of the task's (or mixture's leaf tasks') examples is

    tokens = inputs + targets        loss weight 1 on the targets tokens only

with the task's own tokens: its preprocessors tokenize (and append EOS, e.g.
`seqio.preprocessors.append_eos_after_trim`) as under T5X. A feature that is still text
is tokenized here with its output feature's vocabulary (EOS appended if the feature has
`add_eos`). Nothing is prepended. An example longer than the sequence is shortened from
the start of its inputs, never in its targets (else dropped as 'response_too_long'), as
for the Orca tasks; then the same TaskExampleStream, MixtureStream, packer and batch
contract follow. Mixture rates are SeqIO's (`Mixture.get_rate`).

Reading is deterministic: epoch e of a task is `task.get_dataset(split, shuffle, seed=f(seed,
task, e), shard_info=this host)`. Restoring a position re-opens that epoch and skips the
examples read before it (SeqIO datasets cannot seek), so it costs up to one pass.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

import numpy as np
import seqio

from orca_jax.data.pipeline import TaskStreams
from orca_jax.data.preprocessors import RESPONSE_TOO_LONG, TokenizedExample, build_example
from orca_jax.data.streams import EmptyStreamError, TaskExampleStream, derive_int_seed
from orca_jax.data.tokenizer import Tokenizer

EMPTY_TARGETS = "empty_targets"  # Drop reason: an example without a targets token has nothing to train on.
FEATURES = ("inputs", "targets")

Example = dict[str, Any]


class SeqIOReader:
    """The examples of one SeqIO task on this host, epoch after epoch (the ShardReader interface).

    Args:
      task: the seqio.Task.
      split: its split.
      shard_index, num_shards: this host and the host count (seqio.ShardInfo).
      seed: base seed; epoch e reads the task with seed derive_int_seed(seed, name, e).
      shuffle: let SeqIO shuffle files and examples.
      num_epochs: passes over the data, None for forever.
    """

    INITIAL_STATE: Mapping[str, Any] = {"epoch": 0, "position": 0, "counters": {}}

    def __init__(
        self,
        task: seqio.Task,
        split: str,
        *,
        shard_index: int = 0,
        num_shards: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        num_epochs: int | None = None,
    ):
        self.name = task.name
        self._task = task
        self._split = split
        self._shard = seqio.ShardInfo(index=shard_index, num_shards=num_shards)
        self._seed = seed
        self._shuffle = shuffle
        self._num_epochs = num_epochs
        self.set_state(self.INITIAL_STATE)

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def num_epochs(self) -> int | None:
        return self._num_epochs

    def counters(self) -> dict[str, int]:
        """rows_read: examples read from SeqIO (every pass)."""
        return dict(self._counters)

    def file_counters(self) -> dict[str, dict[str, int]]:
        return {}  # SeqIO sources report no per-file data quality.

    def get_state(self) -> dict[str, Any]:
        return {"epoch": self._epoch, "position": self._position, "counters": dict(self._counters)}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._epoch, self._position = int(state["epoch"]), int(state["position"])
        self._counters = collections.Counter(state["counters"])
        self._examples = None  # Re-opened lazily at (epoch, position).

    def _open(self) -> None:
        dataset = self._task.get_dataset(
            sequence_length=None,
            split=self._split,
            shuffle=self._shuffle,
            seed=derive_int_seed(self._seed, "seqio", self.name, self._epoch),
            shard_info=self._shard,
            num_epochs=1,
        )
        self._examples = dataset.skip(self._position).as_numpy_iterator()

    def read(self, max_rows: int) -> list[Example]:
        """Up to `max_rows` examples (dicts of numpy values), all of one epoch; [] after the last epoch."""
        out: list[Example] = []
        while len(out) < max_rows and (self._num_epochs is None or self._epoch < self._num_epochs):
            if self._examples is None:
                self._open()
            example = next(self._examples, None)
            if example is None:
                if out:
                    break  # A window never spans two epochs.
                if self._position == 0 and self._num_epochs is None:
                    raise EmptyStreamError(
                        f"SeqIO task {self.name!r}: split {self._split!r} has no example on this host"
                    )
                self._epoch, self._position, self._examples = self._epoch + 1, 0, None
                continue
            self._position += 1
            self._counters["rows_read"] += 1
            out.append(example)
        return out


def _ids(value: Any, feature: seqio.Feature) -> np.ndarray:
    """int32 ids of one feature value: the task's tokens, or its text tokenized with the feature's vocabulary."""
    if isinstance(value, (bytes, str)) or (isinstance(value, np.ndarray) and value.dtype == object):
        text = value.item() if isinstance(value, np.ndarray) else value
        text = text.decode("utf-8") if isinstance(text, bytes) else text
        ids = list(feature.vocabulary.encode(text))
        if feature.add_eos:
            ids.append(feature.vocabulary.eos_id)
        return np.asarray(ids, np.int32)
    return np.asarray(value, np.int32).reshape(-1)


def to_example(
    example: Example, features: Mapping[str, seqio.Feature], sequence_length: int, min_prompt_tokens: int
) -> TokenizedExample | str:
    """One SeqIO example -> inputs + targets with loss on the targets, or a drop reason (module doc)."""
    inputs, targets = (_ids(example[k], features[k]) for k in FEATURES)
    if not len(targets):
        return EMPTY_TARGETS
    built = build_example(
        inputs, targets, bos_id=None, eos_id=None, sequence_length=sequence_length, min_prompt_tokens=min_prompt_tokens
    )
    return RESPONSE_TOO_LONG if built is None else built


def _leaf_tasks(name: str) -> tuple[list[seqio.Task], list[float]]:
    try:
        provider = seqio.get_mixture_or_task(name)
    except ValueError as e:
        raise ValueError(
            f"unknown task or mixture {name!r}: neither in orca_jax.data.registry nor in SeqIO ({e})"
        ) from None
    if isinstance(provider, seqio.Mixture):
        tasks = list(provider.tasks)
        return tasks, [float(provider.get_rate(t)) for t in tasks]
    return [provider], [1.0]


def _tokenizer(vocabulary: seqio.Vocabulary) -> Tokenizer | None:
    """The project tokenizer of a SentencePiece vocabulary with BOS and EOS (recorded in the model card),
    else None (the card then names no tokenizer)."""
    if not isinstance(vocabulary, seqio.SentencePieceVocabulary):
        return None
    try:
        return Tokenizer(vocabulary.sentencepiece_model_file)
    except ValueError:  # e.g. a T5-style model without a BOS piece
        return None


def task_streams(
    name: str,
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
    """The example streams of SeqIO task or mixture `name` (see pipeline.make_batch_iterator)."""
    tasks, rates = _leaf_tasks(name)
    for task in tasks:
        missing = [k for k in FEATURES if k not in task.output_features]
        if missing:
            raise ValueError(
                f"SeqIO task {task.name!r} has no output feature(s) {missing}; the trainer reads "
                f"'inputs' (the prompt, no loss) and 'targets' (the response)"
            )
    vocabulary = tasks[0].output_features["targets"].vocabulary
    if any(task.output_features["targets"].vocabulary != vocabulary for task in tasks):
        raise ValueError(f"{name!r} mixes SeqIO tasks with different targets vocabularies")
    streams = []
    for task in tasks:
        reader = SeqIOReader(
            task,
            split,
            shard_index=process_index,
            num_shards=process_count,
            seed=seed,
            shuffle=shuffle,
            num_epochs=num_epochs,
        )

        def preprocess(batch, features=task.output_features):
            return [to_example(ex, features, sequence_length, options["min_prompt_tokens"]) for ex in batch]

        streams.append(
            TaskExampleStream(reader, preprocess, window_size=options["shuffle_window"], shuffle=shuffle, seed=seed)
        )
    pad_id = vocabulary.pad_id if vocabulary.pad_id is not None else 0
    return TaskStreams(streams, rates, _tokenizer(vocabulary), int(pad_id), (), {"template": None})
