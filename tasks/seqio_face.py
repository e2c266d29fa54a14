"""The SeqIO face of orca_jax.data.registry: every registered Orca task and mixture as a seqio.Task /
seqio.Mixture of the same name, for T5X-style tooling (`seqio.get_mixture_or_task(...)`).

Nothing is implemented twice: a task's source yields the rows the pipeline's reader validates
(pipeline.task_reader: same validation, sub-collection filter and duplicate-id drop), and its one
preprocessor calls the pipeline's ExamplePreprocessor (chat template, tokenizer) through
tf.numpy_function, without truncation. Per row::

    {"inputs":  int32 [BOS] + tokens(rendered chat prompt)   ([BOS] only if the tokenizer has one),
     "targets": int32 tokens(response) + [EOS],
     "inputs_pretokenized", "targets_pretokenized", "id", "collection", "teacher", ...: strings}

Mixture rates come from pipeline.mixture_rates (gin's mixing_rate_mode). The tokenizer path
and data location are resolved when data is read, so gin may set them after this import.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping

import numpy as np
import seqio
import tensorflow as tf

import tasks  # noqa: F401  (the Orca specs this module derives from)
from orca_jax.data import pipeline, registry, sources
from orca_jax.data.preprocessors import ExamplePreprocessor
from orca_jax.data.rows import OrcaRow
from orca_jax.data.tokenizer import load_tokenizer

STRING_FEATURES = ("id", "system_prompt", "question", "response", "collection", "teacher")


class TokenizerVocabulary(seqio.Vocabulary):
    """The project tokenizer (SentencePiece or Hugging Face, orca_jax.data.tokenizer) as a seqio.Vocabulary.

    The path template (e.g. '{tokenizer}') is filled in and loaded on first use. Ids are
    exactly the pipeline's; TF encoding runs the tokenizer through tf.numpy_function.
    """

    def __init__(self, path_template: str):
        super().__init__(extra_ids=0)
        self.path_template = path_template

    @functools.cached_property
    def tokenizer(self):
        return load_tokenizer(pipeline.data_locations().expand(self.path_template))

    @property
    def bos_id(self) -> int | None:
        return self.tokenizer.bos_id

    @property
    def eos_id(self) -> int:
        return self.tokenizer.eos_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_id

    @property
    def unk_id(self) -> int | None:
        return self.tokenizer.unk_id

    @property
    def _base_vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def _encode(self, s: str) -> list[int]:
        return self.tokenizer.encode(s)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        ids = tf.numpy_function(
            lambda t: np.asarray(self._encode(t.decode("utf-8")), np.int32), [s], tf.int32, stateful=False
        )
        return tf.ensure_shape(ids, [None])

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        text = tf.numpy_function(
            lambda i: np.asarray(self._decode(i.reshape(-1)).encode("utf-8"), object), [ids], tf.string, stateful=False
        )
        return tf.ensure_shape(text, [])

    def __eq__(self, other) -> bool:
        return isinstance(other, TokenizerVocabulary) and other.path_template == self.path_template

    def __hash__(self) -> int:
        return hash(("TokenizerVocabulary", self.path_template))


def _rows(spec: registry.TaskSpec, split: str, shuffle_files: bool, seed: int | None = None) -> tf.data.Dataset:
    """The task's valid rows (strings), read by the pipeline's reader; `shuffle_files` permutes read units."""
    seed = 0 if seed is None else int(seed)  # SeqIO may pass a scalar tensor.

    def rows():
        units = sources.list_units(spec.files(split, pipeline.data_locations()))
        reader = pipeline.task_reader(
            spec, units, seed=seed, shuffle=shuffle_files, num_epochs=1, duplicates=sources.duplicate_rows(units)
        )
        while batch := reader.read(1024):
            for row in batch:
                yield {k: getattr(row, k) for k in STRING_FEATURES}

    return tf.data.Dataset.from_generator(
        rows, output_signature={k: tf.TensorSpec([], tf.string) for k in STRING_FEATURES}
    )


def tokenize_like_training(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]) -> tf.data.Dataset:
    """SeqIO preprocessor: the pipeline's ExamplePreprocessor (template from gin now) on each row, uncut."""
    preprocess = ExamplePreprocessor(output_features["targets"].vocabulary.tokenizer, sequence_length=sys.maxsize)

    def encode(system: bytes, question: bytes, response: bytes):
        row = OrcaRow("", system.decode(), question.decode(), response.decode(), "", "")
        example = preprocess(row)
        prompt = preprocess.render_prompt(row.system_prompt, row.question)
        return (
            example.tokens[: example.prompt_length],
            example.tokens[example.prompt_length :],
            np.asarray(prompt.encode(), object),
        )

    def fn(ex):
        inputs, targets, prompt = tf.numpy_function(
            encode,
            [ex["system_prompt"], ex["question"], ex["response"]],
            [tf.int32, tf.int32, tf.string],
            stateful=False,
        )
        return {
            **ex,
            "inputs": tf.ensure_shape(inputs, [None]),
            "targets": tf.ensure_shape(targets, [None]),
            "inputs_pretokenized": tf.ensure_shape(prompt, []),
            "targets_pretokenized": ex["response"],
        }

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def register_task(spec: registry.TaskSpec, shuffle_buffer_size: int = 10_000) -> seqio.Task:
    """Register `spec` as a SeqIO task (replacing an older one of the same name)."""
    if spec.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(spec.name)
    vocabulary = TokenizerVocabulary(spec.tokenizer)
    return seqio.TaskRegistry.add(
        spec.name,
        source=seqio.FunctionDataSource(functools.partial(_rows, spec), splits=tuple(spec.splits)),
        preprocessors=[tokenize_like_training],
        output_features={
            "inputs": seqio.Feature(vocabulary, add_eos=False, dtype=tf.int32),
            "targets": seqio.Feature(vocabulary, add_eos=True, dtype=tf.int32),
        },
        shuffle_buffer_size=shuffle_buffer_size,
    )


def register_mixture(spec: registry.MixtureSpec, split: str = "train") -> seqio.Mixture:
    """Register `spec` as a SeqIO mixture; rates are computed when SeqIO asks (gin's mixing_rate_mode)."""
    if spec.name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(spec.name)

    def rate(task: seqio.Task) -> float:
        return pipeline.mixture_rates(spec, split)[task.name]

    return seqio.MixtureRegistry.add(spec.name, [(t, rate) for t in spec.tasks])


def register_all() -> None:
    """Register (again) every task and mixture now in orca_jax.data.registry."""
    for name in registry.task_names():
        register_task(registry.get_task(name))
    for name in registry.mixture_names():
        register_mixture(registry.get_mixture_or_task(name))


register_all()
