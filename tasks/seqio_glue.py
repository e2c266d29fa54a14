"""SeqIO side of the Orca tasks: a DataSource over OpenOrca-schema files, TF preprocessors, registration.

A SeqIO Orca task yields, per row::

    {"inputs":  int32 [BOS] + tokens(rendered chat prompt)   ([BOS] only if the tokenizer has one),
     "targets": int32 tokens(response) + [EOS],
     "inputs_pretokenized", "targets_pretokenized", "id", "collection", "teacher": strings}

with no truncation (SeqIO's own trimming applies if a feature converter asks for
it). `orca_jax.data.pipeline` does not go through TensorFlow: it builds the same
tokens in Python from the same registry entry (tests check both agree) and adds
Orca's truncation and packing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import seqio
import tensorflow as tf

from orca_jax.data import prompts, registry, sources
from orca_jax.data.rows import validate_row
from orca_jax.data.streams import ShardReader

STRING_FEATURES = ("id", "system_prompt", "question", "response", "collection", "teacher")


class LazySentencePieceVocabulary(seqio.SentencePieceVocabulary):
    """seqio.SentencePieceVocabulary whose path template (e.g. '{tokenizer}') is resolved on first use.

    Tasks are registered at import, before gin has set the data location; the path
    is filled in (registry.expand_placeholders) only when the model is loaded.
    """

    def __init__(self, path_template: str):
        super().__init__(sentencepiece_model_file=path_template)
        self._path_template = path_template
        self._resolved = "{" not in path_template

    def _model_context(self):
        if not self._resolved:
            self._sentencepiece_model_file = registry.expand_placeholders(self._path_template)
            self._resolved = True
        return super()._model_context()

    @property
    def sentencepiece_model_file(self) -> str:
        self._model_context()
        return self._sentencepiece_model_file


class HFVocabulary(seqio.Vocabulary):
    """A Hugging Face tokenizer (orca_jax.data.tokenizer.HFTokenizer) as a seqio.Vocabulary.

    Ids are exactly the Python pipeline's: BOS/EOS/pad come from the tokenizer's own
    configuration (`bos_id` is None when it prepends none). TF encoding runs the
    `tokenizers` library through tf.numpy_function.
    """

    def __init__(self, path: str):
        super().__init__(extra_ids=0)
        self.path = path

    @functools.cached_property
    def tokenizer(self):
        from orca_jax.data.tokenizer import load_tokenizer

        return load_tokenizer(self.path)

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
        """Ids of one scalar string (what seqio.preprocessors.tokenize passes)."""
        ids = tf.numpy_function(lambda t: np.asarray(self.tokenizer.encode(t.decode("utf-8")), np.int32), [s],
                                tf.int32, stateful=False)
        return tf.ensure_shape(ids, [None])

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        text = tf.numpy_function(lambda i: np.asarray(self._decode(i.reshape(-1)).encode("utf-8"), object), [ids],
                                 tf.string, stateful=False)
        return tf.ensure_shape(text, [])

    def __eq__(self, other) -> bool:
        return isinstance(other, HFVocabulary) and other.path == self.path

    def __hash__(self) -> int:
        return hash(("HFVocabulary", self.path))


class LazyVocabulary(seqio.Vocabulary):
    """The vocabulary of a tokenizer path template, resolved and typed on first use.

    Tasks are registered at import, before gin has set the tokenizer; on first use the
    template is filled in (registry.expand_placeholders) and, like
    orca_jax.data.tokenizer.load_tokenizer, what the path holds picks the kind: a
    SentencePiece model (LazySentencePieceVocabulary) or a tokenizer.json / Hugging Face
    model directory (HFVocabulary).
    """

    def __init__(self, path_template: str):
        super().__init__(extra_ids=0)
        self.path_template = path_template

    @functools.cached_property
    def inner(self) -> seqio.Vocabulary:
        from orca_jax.data.tokenizer import HUGGINGFACE, tokenizer_kind

        path = registry.expand_placeholders(self.path_template)
        kind, file = tokenizer_kind(path)
        return HFVocabulary(path) if kind == HUGGINGFACE else LazySentencePieceVocabulary(file)

    @property
    def bos_id(self) -> int | None:
        return self.inner.bos_id

    @property
    def eos_id(self) -> int | None:
        return self.inner.eos_id

    @property
    def pad_id(self) -> int:
        return self.inner.pad_id

    @property
    def unk_id(self) -> int | None:
        return self.inner.unk_id

    @property
    def _base_vocab_size(self) -> int:
        return self.inner._base_vocab_size

    def _encode(self, s: str):
        return self.inner._encode(s)

    def _decode(self, ids):
        return self.inner._decode(ids)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        return self.inner._encode_tf(s)

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        return self.inner._decode_tf(ids)


@functools.cache
def vocabulary(path_template: str) -> LazyVocabulary:
    """One shared vocabulary object per tokenizer path template (SentencePiece or Hugging Face)."""
    return LazyVocabulary(path_template)


def output_features(path_template: str) -> dict[str, seqio.Feature]:
    """'inputs' (no EOS) and 'targets' (EOS appended) over the task's tokenizer."""
    vocab = vocabulary(path_template)
    return {
        "inputs": seqio.Feature(vocab, add_eos=False, dtype=tf.int32),
        "targets": seqio.Feature(vocab, add_eos=True, dtype=tf.int32),
    }


class OrcaDataSource(seqio.DataSource):
    """Validated rows of one registry TaskSpec as a tf.data.Dataset of strings.

    Sharding is by read unit / row (sources.shard_units), the same as the Python
    pipeline; `shuffle` permutes the unit order (the Task's shuffle buffer does the rest).
    Bad rows are skipped and counted by the reader, which logs the counts at the end.
    """

    def __init__(self, spec: registry.TaskSpec):
        self._spec = spec
        super().__init__(splits=tuple(spec.splits))

    @property
    def spec(self) -> registry.TaskSpec:
        return self._spec

    @property
    def supports_arbitrary_sharding(self) -> bool:
        return True

    def list_shards(self, split: str) -> list[str]:
        return self._spec.files(split)

    def num_input_examples(self, split: str) -> int:
        return registry.num_examples(self._spec, split)

    def reader(self, split: str, shuffle: bool, seed: int | None, index: int, count: int) -> ShardReader:
        units = sources.list_units(self._spec.files(split), min_jsonl_units=sources.MIN_UNITS_PER_HOST * count)
        return ShardReader(
            self._spec.name,
            sources.shard_units(units, index, count),
            validate=functools.partial(
                validate_row, teacher=self._spec.teacher, unknown_prefix_collection=self._spec.unknown_prefix_collection
            ),
            keep=lambda row: self._spec.keeps(row.collection),
            seed=0 if seed is None else int(seed),
            shuffle=shuffle,
            num_epochs=1,
        )

    def get_dataset(
        self,
        split: str = "train",
        shuffle: bool = True,
        seed: int | None = None,
        shard_info: seqio.ShardInfo | None = None,
        *,
        sequence_length: Mapping[str, int] | None = None,
        use_cached: bool = False,
        num_epochs: int | None = 1,
    ) -> tf.data.Dataset:
        del sequence_length, use_cached, num_epochs  # The Task repeats; lengths are not used here.
        index, count = (shard_info.index, shard_info.num_shards) if shard_info else (0, 1)
        if isinstance(seed, tf.Tensor):
            seed = int(seed.numpy())

        def rows():
            reader = self.reader(split, shuffle, seed, index, count)
            while True:
                batch = reader.read(1024)
                if not batch:
                    return
                for row in batch:
                    yield {k: getattr(row, k) for k in STRING_FEATURES}

        signature = {k: tf.TensorSpec([], tf.string) for k in STRING_FEATURES}
        return tf.data.Dataset.from_generator(rows, output_signature=signature)


def render_chat_prompt(
    dataset: tf.data.Dataset, template: str | None = None, omit_empty_system: bool | None = None
) -> tf.data.Dataset:
    """SeqIO preprocessor: 'inputs' = rendered chat prompt, 'targets' = response (TF strings).

    Renders exactly like prompts.render_prompt (same template pieces and
    empty-system rule; the template comes from gin's render_prompt bindings when not given).
    """
    name, omit = prompts.prompt_settings(template, omit_empty_system)
    t = prompts.get_template(name)

    def fn(ex):
        user = tf.strings.join([t.user_prefix, ex["question"], t.user_suffix, t.assistant_prefix])
        with_system = tf.strings.join([t.system_prefix, ex["system_prompt"], t.system_suffix, user])
        if omit:
            blank = tf.equal(tf.strings.length(tf.strings.strip(ex["system_prompt"])), 0)
            inputs = tf.where(blank, user, with_system)
        else:
            inputs = with_system
        return {**ex, "inputs": inputs, "targets": ex["response"]}

    return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


@seqio.map_over_dataset
def _prepend(ex, bos_id):
    return {**ex, "inputs": tf.concat([tf.constant([bos_id], tf.int32), tf.cast(ex["inputs"], tf.int32)], 0)}


def prepend_bos(dataset: tf.data.Dataset, output_features: Mapping[str, seqio.Feature]) -> tf.data.Dataset:
    """SeqIO preprocessor: put the vocabulary's BOS id in front of the tokenized 'inputs' (LLaMA style);
    nothing when the tokenizer prepends no BOS (SmolLM2, Qwen2)."""
    bos_id = output_features["inputs"].vocabulary.bos_id
    return dataset if bos_id is None else _prepend(dataset, bos_id=bos_id)


def register_task(spec: registry.TaskSpec, shuffle_buffer_size: int = 10_000) -> seqio.Task:
    """Register `spec` as a SeqIO task (replacing an older one of the same name)."""
    if spec.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(spec.name)
    return seqio.TaskRegistry.add(
        spec.name,
        source=OrcaDataSource(spec),
        preprocessors=[
            render_chat_prompt,
            functools.partial(seqio.preprocessors.tokenize, copy_pretokenized=True),
            prepend_bos,
            seqio.preprocessors.append_eos_after_trim,
        ],
        output_features=output_features(spec.tokenizer),
        shuffle_buffer_size=shuffle_buffer_size,
    )


def register_mixture(spec: registry.MixtureSpec, split: str = "train") -> seqio.Mixture:
    """Register `spec` as a SeqIO mixture; rates are computed when SeqIO asks (gin's mixing_rate_mode)."""
    if spec.name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(spec.name)

    def rate(task: seqio.Task) -> float:
        return spec.rates(split)[task.name]

    return seqio.MixtureRegistry.add(spec.name, [(t, rate) for t in spec.tasks])
