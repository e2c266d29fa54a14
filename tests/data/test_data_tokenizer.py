"""Tokenizer: LLaMA id layout plus a pad id past the vocabulary, round trips, on-the-fly training."""

from __future__ import annotations

import pickle

from orca_jax.demo import files as demo_files
from orca_jax.data.tokenizer import Tokenizer, train_tokenizer


def test_bundled_tokenizer_layout(demo_tokenizer):
    t = demo_tokenizer
    assert (t.unk_id, t.bos_id, t.eos_id) == (0, 1, 2)
    assert t.sp_vocab_size == 1000
    assert t.pad_id == t.sp_vocab_size == t.vocab_size - 1
    assert t.path == demo_files.DEMO_TOKENIZER_PATH


def test_encode_decode_round_trip(demo_tokenizer):
    t = demo_tokenizer
    for text in ["What is 482 + 39?", "line one\nline two", "café ☃ 12", "So the answer is (B)."]:
        ids = t.encode(text)
        assert t.bos_id not in ids and t.eos_id not in ids
        assert t.decode(ids) == text


def test_digits_are_split(demo_tokenizer):
    pieces = [demo_tokenizer.id_to_piece(i) for i in demo_tokenizer.encode("12345")]
    assert [p.lstrip("▁") for p in pieces if p.lstrip("▁")] == list("12345")


def test_decode_drops_bos_and_pad_and_stops_at_eos(demo_tokenizer):
    t = demo_tokenizer
    ids = t.encode("Yes")
    assert t.decode([t.bos_id] + ids + [t.eos_id] + t.encode("junk") + [t.pad_id]) == "Yes"
    assert t.decode(ids + [t.pad_id, t.pad_id]) == "Yes"
    assert "junk" in t.decode(ids + [t.eos_id] + t.encode("junk"), stop_at_eos=False)


def test_encode_batch_matches_encode(demo_tokenizer):
    texts = ["a b c", "", "So the answer is 12."]
    assert demo_tokenizer.encode_batch(texts, num_threads=2) == [demo_tokenizer.encode(x) for x in texts]


def test_pickles(demo_tokenizer):
    clone = pickle.loads(pickle.dumps(demo_tokenizer))
    assert clone.encode("hello world") == demo_tokenizer.encode("hello world")
    assert clone.path == demo_tokenizer.path


def test_train_tokenizer_on_the_fly(tmp_path):
    texts = [f"Question {i}: what is {i} plus {i * 3}?\nAnswer: {i * 4}." for i in range(300)]
    t = train_tokenizer(texts, str(tmp_path / "tiny.model"), vocab_size=320)
    assert (t.unk_id, t.bos_id, t.eos_id, t.pad_id, t.vocab_size) == (0, 1, 2, 320, 321)
    assert t.decode(t.encode("what is 7 plus 21?\nÅ")) == "what is 7 plus 21?\nÅ"  # Byte fallback for Å.
    assert Tokenizer(str(tmp_path / "tiny.model")).encode("Answer") == t.encode("Answer")


def test_training_is_reproducible(tmp_path):
    texts = [f"item {i}: the {i % 7} red boxes" for i in range(200)]
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        train_tokenizer(texts, str(tmp_path / d / "tok.model"), vocab_size=300)
    assert (tmp_path / "a" / "tok.model").read_bytes() == (tmp_path / "b" / "tok.model").read_bytes()
