"""Tokenizers: SentencePiece (LLaMA layout) and Hugging Face `tokenizers` (tokenizer.json); no TensorFlow.

One entry point, `load_tokenizer(path)`, chooses by what the path holds:

* a SentencePiece model file (LLaMA's `tokenizer.model`): `Tokenizer`. 32000 pieces with
  unk=0, bos=1, eos=2 and no pad; like Orca one padding id is added *after* the vocabulary
  (`pad_id = 32000`, `vocab_size = 32001`). The demo tokenizer has the same layout.
* a `tokenizer.json`, or a Hugging Face model directory holding one: `HFTokenizer`
  (SmolLM2, Llama 3, Qwen2, ...). BOS, EOS and pad come from the tokenizer's own
  configuration (`tokenizer_config.json`, then `generation_config.json`, next to it);
  the padding row is added only when the tokenizer has no pad token.
* a directory with only a `tokenizer.model`: the SentencePiece file in it.

Both kinds share one interface: `encode`, `encode_batch`, `decode`, `id_to_piece`,
`vocab_size` (embedding rows the model needs), `pad_id`, `eos_id`, `bos_id` and
`sha256`. `bos_id` is the id the tokenizer itself puts in front of a sequence, or None
when it puts none (SmolLM2, Qwen2): callers build `prefix_ids(tok) + ids`, never
`[tok.bos_id] + ids`. Training and evaluation both use these classes, so decoding
sees exactly the ids training produced. `train_tokenizer` builds small SentencePiece
models (demo, tests).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from etils import epath

from orca_jax.data import fileio

SENTENCEPIECE = "sentencepiece"
HUGGINGFACE = "huggingface"
HF_TOKENIZER_FILE = "tokenizer.json"
SP_MODEL_FILE = "tokenizer.model"
# Files beside tokenizer.json that decide special tokens (read when present, in this order).
HF_CONFIG_FILES = ("tokenizer_config.json", "special_tokens_map.json", "generation_config.json")
# Files copied with a tokenizer (e.g. into a converted checkpoint directory).
HF_TOKENIZER_FILES = (HF_TOKENIZER_FILE, *HF_CONFIG_FILES, "chat_template.jinja")


class AnyTokenizer(Protocol):
    """What training and evaluation use from a tokenizer (both classes here implement it)."""

    kind: str
    path: str
    vocab_size: int
    pad_id: int
    eos_id: int
    bos_id: int | None

    @property
    def sha256(self) -> str: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]: ...

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str: ...


def prefix_ids(tokenizer: AnyTokenizer) -> list[int]:
    """The ids the tokenizer puts before a sequence: [BOS], or [] when it has none to prepend."""
    return [] if tokenizer.bos_id is None else [tokenizer.bos_id]


class Tokenizer:
    """A SentencePiece model plus a padding id one past its vocabulary (LLaMA; BOS always prepended).

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

        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception as e:  # sentencepiece raises RuntimeError/OSError on a non-model file
            raise ValueError(f"tokenizer {self.path or '<bytes>'!r} is not a SentencePiece model: {e}") from None
        self.kind = SENTENCEPIECE
        self.sp_vocab_size: int = self._sp.get_piece_size()
        self.vocab_size: int = self.sp_vocab_size + 1
        self.pad_id: int = self.sp_vocab_size
        self.bos_id: int = self._sp.bos_id()
        self.eos_id: int = self._sp.eos_id()
        self.unk_id: int = self._sp.unk_id()
        if self.bos_id < 0 or self.eos_id < 0:
            raise ValueError(f"tokenizer {self.path!r} needs BOS and EOS pieces (got {self.bos_id}, {self.eos_id})")

    @property
    def sha256(self) -> str:
        """sha256 of the serialized model (what a model card records)."""
        return hashlib.sha256(self._proto).hexdigest()

    @property
    def files(self) -> dict[str, bytes]:
        """{file name: content} that make up this tokenizer (to copy it next to a checkpoint)."""
        return {SP_MODEL_FILE: self._proto}

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


class HFTokenizer:
    """A Hugging Face `tokenizers` tokenizer (tokenizer.json) with special tokens from its own config.

    Attributes:
      path: what it was loaded from (a tokenizer.json or a model directory).
      vocab_size: ids the model needs: the tokenizer's (added tokens included), plus one
        padding row only when the tokenizer has no pad token.
      pad_id: the configured pad token's id, else vocab_size - 1 (the added row).
      eos_id: the configured EOS (tokenizer_config.json `eos_token`, else generation_config's).
      bos_id: the id the tokenizer prepends to a sequence (`add_bos_token` in
        tokenizer_config.json, else what its post-processor adds), or None (SmolLM2, Qwen2).
      stop_ids: ids that end a generation: eos_id and generation_config's eos_token_id(s).
      chat_template: the tokenizer's own Jinja chat template text, if it ships one.
    """

    def __init__(self, files: dict[str, bytes], path: str = ""):
        if HF_TOKENIZER_FILE not in files:
            raise ValueError(f"tokenizer {path!r}: no {HF_TOKENIZER_FILE}")
        from tokenizers import Tokenizer as _Backend  # imported here: SentencePiece-only users need no `tokenizers`

        self.kind = HUGGINGFACE
        self.path = path
        self._files = dict(files)
        try:
            self._tok = _Backend.from_str(files[HF_TOKENIZER_FILE].decode("utf-8"))
        except Exception as e:
            raise ValueError(f"tokenizer {path!r}: {HF_TOKENIZER_FILE} is not a Hugging Face tokenizer: {e}") from None
        config = self._json("tokenizer_config.json")
        special = self._json("special_tokens_map.json")
        generation = self._json("generation_config.json")
        self.chat_template = self._chat_template(config)
        self.base_vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.unk_id = self._token_id("unk_token", config, special, generation)
        eos = self._token_id("eos_token", config, special, generation)
        if eos is None:
            raise ValueError(
                f"tokenizer {path!r} configures no EOS token (tokenizer_config.json eos_token or "
                "generation_config.json eos_token_id)"
            )
        self.eos_id: int = eos
        self.bos_id: int | None = self._bos_to_prepend(config, special, generation)
        pad = self._token_id("pad_token", config, special, generation)
        self.has_pad = pad is not None
        self.pad_id: int = pad if pad is not None else self.base_vocab_size
        self.vocab_size: int = self.base_vocab_size + (0 if self.has_pad else 1)
        extra = generation.get("eos_token_id")
        extra = extra if isinstance(extra, list) else [] if extra is None else [extra]
        self.stop_ids: tuple[int, ...] = tuple(dict.fromkeys([self.eos_id, *map(int, extra)]))

    def _json(self, name: str) -> dict[str, Any]:
        raw = self._files.get(name)
        if raw is None:
            return {}
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"tokenizer {self.path!r}: {name} is not valid JSON: {e}") from None

    def _chat_template(self, config: dict[str, Any]) -> str | None:
        if "chat_template.jinja" in self._files:
            return self._files["chat_template.jinja"].decode("utf-8")
        template = config.get("chat_template")
        return template if isinstance(template, str) else None

    def _token_id(self, key: str, *configs: dict[str, Any]) -> int | None:
        """Id of special token `key` ('eos_token', ...): from the token configs, else generation_config's id."""
        tokenizer_config, special, generation = configs
        for source in (tokenizer_config, special):
            token = source.get(key)
            if isinstance(token, dict):  # AddedToken serialization
                token = token.get("content")
            if isinstance(token, str):
                found = self._tok.token_to_id(token)
                if found is None:
                    raise ValueError(f"tokenizer {self.path!r}: {key} {token!r} is not in {HF_TOKENIZER_FILE}")
                return found
        value = generation.get(f"{key}_id")
        if isinstance(value, list):
            value = value[0] if value else None
        return None if value is None else int(value)

    def _bos_to_prepend(self, *configs: dict[str, Any]) -> int | None:
        """The BOS id the tokenizer itself prepends (as transformers' tokenizer(text) would), or None."""
        add = configs[0].get("add_bos_token")
        if add is False:
            return None
        if add is True:
            bos = self._token_id("bos_token", *configs)
            if bos is None:
                raise ValueError(f"tokenizer {self.path!r}: add_bos_token is true but no bos_token is configured")
            return bos
        with_special = self._tok.encode("a", add_special_tokens=True).ids
        plain = self._tok.encode("a", add_special_tokens=False).ids
        lead = len(with_special) - len(plain)
        if lead > 0 and with_special[lead : lead + len(plain)] == plain:
            return with_special[0]
        return None

    @property
    def sha256(self) -> str:
        """sha256 over the tokenizer's files (name and content of each, in name order)."""
        digest = hashlib.sha256()
        for name in sorted(self._files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(self._files[name]).digest())
        return digest.hexdigest()

    @property
    def files(self) -> dict[str, bytes]:
        """{file name: content} that make up this tokenizer (to copy it next to a checkpoint)."""
        return dict(self._files)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, without BOS/EOS (special-token text such as '<|im_end|>' maps to its id)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str], num_threads: int = 1) -> list[list[int]]:
        """Token ids of several texts (the library's own threads; output does not depend on them)."""
        del num_threads
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """Text of `ids`: stops at the first stop id (EOS) unless told not to; drops BOS, pad and the pad row."""
        kept: list[int] = []
        for i in ids:
            i = int(i)
            if stop_at_eos and i in self.stop_ids:
                break
            if i == self.bos_id or (i == self.pad_id and i not in self.stop_ids) or not 0 <= i < self.base_vocab_size:
                continue
            kept.append(i)
        return self._tok.decode(kept, skip_special_tokens=False)

    def id_to_piece(self, i: int) -> str:
        """The token string of id `i` ('<pad>' for the added pad row)."""
        if not self.has_pad and i == self.pad_id:
            return "<pad>"
        return self._tok.id_to_token(int(i))

    def __getstate__(self) -> dict:
        return {"path": self.path, "files": self._files}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["files"], state["path"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return (
            f"HFTokenizer(path={self.path!r}, vocab_size={self.vocab_size}, bos_id={self.bos_id}, "
            f"eos_id={self.eos_id}, pad_id={self.pad_id})"
        )


def _read_hf_files(tokenizer_json: epath.Path) -> dict[str, bytes]:
    """tokenizer.json's bytes and those of the config files beside it."""
    files = {HF_TOKENIZER_FILE: fileio.read_bytes(os.fspath(tokenizer_json))}
    for name in HF_TOKENIZER_FILES[1:]:
        candidate = tokenizer_json.parent / name
        if candidate.exists():
            files[name] = fileio.read_bytes(os.fspath(candidate))
    return files


def tokenizer_kind(path: str | os.PathLike) -> tuple[str, str]:
    """(kind, file) of what `path` holds: a SentencePiece model, a tokenizer.json, or a model directory.

    Raises FileNotFoundError when nothing is at `path`, ValueError when it holds neither kind.
    """
    p = epath.Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"tokenizer path {os.fspath(path)!r} does not exist")
    if p.is_dir():
        for name, kind in ((HF_TOKENIZER_FILE, HUGGINGFACE), (SP_MODEL_FILE, SENTENCEPIECE)):
            if (p / name).exists():
                return kind, os.fspath(p / name)
        raise ValueError(
            f"tokenizer directory {os.fspath(path)!r} holds neither {HF_TOKENIZER_FILE} "
            f"(Hugging Face) nor {SP_MODEL_FILE} (SentencePiece)"
        )
    with fileio.open_input(os.fspath(p)) as f:
        head = f.read(64).lstrip()
    return (HUGGINGFACE if head.startswith(b"{") else SENTENCEPIECE), os.fspath(p)


@functools.lru_cache(maxsize=8)
def load_tokenizer(path: str) -> Tokenizer | HFTokenizer:
    """The tokenizer at `path` (cached per process): a SentencePiece model file, a tokenizer.json,
    or a Hugging Face model directory (its tokenizer.json and config files, else its tokenizer.model).

    Raises FileNotFoundError / ValueError naming `path` when it holds no tokenizer.
    """
    path = os.fspath(path)
    kind, file = tokenizer_kind(path)
    if kind == HUGGINGFACE:
        return HFTokenizer(_read_hf_files(epath.Path(file)), path=path)
    try:
        return Tokenizer(file)
    except ValueError as e:
        raise ValueError(
            f"tokenizer path {path!r} holds neither a SentencePiece model nor a Hugging Face tokenizer.json ({e})"
        ) from None


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
