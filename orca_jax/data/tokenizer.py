"""SentencePiece tokenizer with LLaMA's id layout plus one padding id; no TensorFlow.

LLaMA's `tokenizer.model` has 32000 pieces with unk=0, bos=1, eos=2 and no pad.
Like Orca we add one padding token *after* the vocabulary: `pad_id = 32000` and
`vocab_size = 32001` (the model's embedding rows). The demo tokenizer follows the
same layout (unk=0, bos=1, eos=2, pad = its piece count).

Training and evaluation both use this class, so decoding sees exactly the ids
training produced. `train_tokenizer` builds small models (demo, tests).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from orca_jax.data import fileio


class Tokenizer:
    """A SentencePiece model plus a padding id one past its vocabulary.

    Attributes:
      path: where the model was loaded from ('' when built from bytes).
      sp_vocab_size: pieces in the SentencePiece model (LLaMA: 32000).
      vocab_size: sp_vocab_size + 1 (LLaMA: 32001), the embedding size to use.
      pad_id: sp_vocab_size; never produced by encode, dropped by decode.
      bos_id, eos_id, unk_id: from the model (LLaMA layout: 1, 2, 0).
    """

    def __init__(self, path: str | os.PathLike | None = None, *, model_proto: bytes | None = None):
        if (path is None) == (model_proto is None):
            raise ValueError("give exactly one of path or model_proto")
        self.path = "" if path is None else os.fspath(path)
        self._proto = model_proto if model_proto is not None else fileio.read_bytes(self.path)
        import sentencepiece as spm  # imported here: packing/benchmarks use this module without it

        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        self.sp_vocab_size: int = self._sp.get_piece_size()
        self.vocab_size: int = self.sp_vocab_size + 1
        self.pad_id: int = self.sp_vocab_size
        self.bos_id: int = self._sp.bos_id()
        self.eos_id: int = self._sp.eos_id()
        self.unk_id: int = self._sp.unk_id()
        if self.bos_id < 0 or self.eos_id < 0:
            raise ValueError(f"tokenizer {self.path!r} needs BOS and EOS pieces (got {self.bos_id}, {self.eos_id})")

    @property
    def model_proto(self) -> bytes:
        """The serialized SentencePiece model."""
        return self._proto

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS."""
        return self._sp.encode(text, out_type=int)

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """Token ids of several texts (C++ threads when num_threads > 1)."""
        return self._sp.encode(list(texts), out_type=int, num_threads=num_threads)

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """Text of `ids`: BOS and padding are dropped; stops at the first EOS unless told not to."""
        kept: list[int] = []
        for i in ids:
            i = int(i)
            if i == self.eos_id and stop_at_eos:
                break
            if i in (self.bos_id, self.eos_id) or not 0 <= i < self.sp_vocab_size:
                continue
            kept.append(i)
        return self._sp.decode(kept)

    def id_to_piece(self, i: int) -> str:
        """The piece string of id `i` ('<pad>' for pad_id)."""
        return "<pad>" if i == self.pad_id else self._sp.id_to_piece(int(i))

    def __getstate__(self) -> dict:
        return {"path": self.path, "proto": self._proto}

    def __setstate__(self, state: dict) -> None:
        self.__init__(model_proto=state["proto"])  # type: ignore[misc]
        self.path = state["path"]

    def __repr__(self) -> str:
        return f"Tokenizer(path={self.path!r}, vocab_size={self.vocab_size}, pad_id={self.pad_id})"


def train_tokenizer(
    texts: Iterable[str],
    model_path: str,
    *,
    vocab_size: int = 1000,
    model_type: str = "bpe",
    character_coverage: float = 1.0,
    seed_sentencepiece_size: int = 100_000,
    num_threads: int = 1,
) -> Tokenizer:
    """Train a LLaMA-style SentencePiece model on `texts` and write it to `model_path`.

    LLaMA's settings: unk=0, bos=1, eos=2, no pad piece; digits split into single
    tokens; byte fallback for characters outside the vocabulary; identity
    normalization (newlines and repeated spaces survive); a dummy prefix space.

    Args:
      texts: training sentences (each may contain newlines).
      model_path: output file, normally ending in '.model'.
      vocab_size: pieces including the 3 specials and 256 byte pieces.
      model_type: 'bpe' (like LLaMA) or 'unigram'.

    Returns:
      The trained tokenizer, loaded from `model_path`.
    """
    prefix = model_path[:-6] if model_path.endswith(".model") else model_path
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_prefix=prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        split_digits=True,
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        max_sentence_length=1 << 16,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=num_threads,
        minloglevel=2,
    )
    if os.path.exists(prefix + ".vocab"):
        os.remove(prefix + ".vocab")
    with open(prefix + ".model", "rb") as f:
        proto = _without_local_paths(f.read())
    os.remove(prefix + ".model")
    with open(model_path, "wb") as f:
        f.write(proto)
    return Tokenizer(model_path)


def _without_local_paths(proto: bytes) -> bytes:
    """The model with its trainer spec's output prefix reduced to a base name (so builds are reproducible)."""
    try:
        from sentencepiece import sentencepiece_model_pb2
    except ImportError:  # protobuf missing: keep the model as written.
        return proto
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    model.trainer_spec.model_prefix = os.path.basename(model.trainer_spec.model_prefix)
    return model.SerializeToString(deterministic=True)
