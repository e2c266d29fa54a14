"""Tokenizers: SentencePiece (LLaMA layout + pad id, on-the-fly training) and Hugging Face tokenizer.json."""

from __future__ import annotations

import json
import pickle

import pytest

from orca_jax.data.tokenizer import HFTokenizer, Tokenizer, load_tokenizer, prefix_ids, train_tokenizer
from orca_jax.demo import files as demo_files


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


# -- Hugging Face tokenizers (tokenizer.json) --------------------------------------------------

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def _write_hf_tokenizer(
    directory, *, bos_processor: bool, config: dict | None, generation: dict | None = None, specials=SPECIALS
):
    """A tiny word-level tokenizer.json (+ optional tokenizer_config.json / generation_config.json)."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, pre_tokenizers, processors

    words = ["hello", "world", "the", "answer", "is", "(", ")", "A", "B", "\n"]
    vocab = {t: i for i, t in enumerate(specials + words)}
    backend = Backend(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="removed")
    backend.add_special_tokens(specials)
    if bos_processor:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    if config is not None:
        (directory / "tokenizer_config.json").write_text(json.dumps(config))
    if generation is not None:
        (directory / "generation_config.json").write_text(json.dumps(generation))
    return directory


def test_hf_tokenizer_without_bos_keeps_its_pad(tmp_path):
    d = _write_hf_tokenizer(
        tmp_path / "t", bos_processor=False, config={"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
    )
    t = load_tokenizer(str(d))
    assert isinstance(t, HFTokenizer) and t.kind == "huggingface"
    assert (t.bos_id, t.eos_id, t.pad_id, t.vocab_size) == (None, 2, 3, 14)
    assert prefix_ids(t) == []
    ids = t.encode("hello world")
    assert ids == [4, 5] and t.decode(ids + [2] + t.encode("the")) == "hello world"
    assert "the" in t.decode(ids + [2] + t.encode("the"), stop_at_eos=False)
    assert t.decode([3] + ids + [3]) == "hello world"


def test_hf_tokenizer_bos_from_post_processor_and_pad_row(tmp_path):
    d = _write_hf_tokenizer(tmp_path / "t", bos_processor=True, config={"eos_token": "</s>"})
    t = load_tokenizer(str(d / "tokenizer.json"))  # the file: its config beside it is read too
    assert t.bos_id == 1 and prefix_ids(t) == [1]
    assert t.encode("hello") == [4]  # encode never adds specials itself
    assert (t.pad_id, t.vocab_size) == (14, 15)  # no pad token: one row past the vocabulary
    assert t.id_to_piece(14) == "<pad>" and t.decode([1, 4, 14]) == "hello"


def test_hf_tokenizer_config_overrides_and_generation_config(tmp_path):
    d = _write_hf_tokenizer(
        tmp_path / "t",
        bos_processor=True,
        config={"add_bos_token": False},
        generation={"eos_token_id": [2, 8], "pad_token_id": 3},
    )
    t = load_tokenizer(str(d))
    assert (t.bos_id, t.eos_id, t.pad_id, t.stop_ids) == (None, 2, 3, (2, 8))
    assert t.decode(t.encode("hello is the")) == "hello"  # "is" (8) is a stop id
    d2 = _write_hf_tokenizer(
        tmp_path / "t2",
        bos_processor=False,
        config={"add_bos_token": True, "bos_token": {"content": "<s>"}, "eos_token": "</s>"},
    )
    assert load_tokenizer(str(d2)).bos_id == 1


def test_hf_tokenizer_pickles_and_fingerprints(tmp_path):
    d = _write_hf_tokenizer(tmp_path / "t", bos_processor=True, config={"eos_token": "</s>"})
    t = load_tokenizer(str(d))
    clone = pickle.loads(pickle.dumps(t))
    assert clone.encode("the answer") == t.encode("the answer") and clone.sha256 == t.sha256
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "pad_token": "<pad>"}))
    assert (
        HFTokenizer(
            dict(t.files, **{"tokenizer_config.json": (d / "tokenizer_config.json").read_bytes()}), str(d)
        ).sha256
        != t.sha256
    )


def test_sentencepiece_through_load_tokenizer(tmp_path):
    t = load_tokenizer(demo_files.DEMO_TOKENIZER_PATH)
    assert isinstance(t, Tokenizer) and t.kind == "sentencepiece" and prefix_ids(t) == [1]
    (tmp_path / "tokenizer.model").write_bytes(t.model_proto)
    assert load_tokenizer(str(tmp_path)).sha256 == t.sha256  # a directory with only a tokenizer.model


def test_bad_tokenizer_paths_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        load_tokenizer(str(tmp_path / "nothing_here"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*neither tokenizer.json"):
        load_tokenizer(str(tmp_path / "empty"))
    (tmp_path / "junk.bin").write_bytes(b"\x00\x01 not a model")
    with pytest.raises(ValueError, match="junk.bin.*neither a SentencePiece model nor"):
        load_tokenizer(str(tmp_path / "junk.bin"))
    d = _write_hf_tokenizer(tmp_path / "noeos", bos_processor=False, config={})
    with pytest.raises(ValueError, match="noeos.*no EOS"):
        load_tokenizer(str(d))
    d = _write_hf_tokenizer(tmp_path / "badtok", bos_processor=False, config={"eos_token": "<|nope|>"})
    with pytest.raises(ValueError, match="badtok.*eos_token '<\\|nope\\|>' is not in tokenizer.json"):
        load_tokenizer(str(d))


# -- SmolLM2's tokenizer against transformers' apply_chat_template -----------------------------

# The generic ChatML template (SmolLM2's own adds a default system message when there is none).
CHATML_JINJA = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
CHAT_ROWS = [
    ("", "What is 2 + 2?", "4"),
    (
        "You are a helpful assistant, who always provide explanation.",
        "Translate 'chat' to English.\nOptions:\n(A) cat\n(B) dog",
        " The answer is (A).\n\nBecause 'chat' means cat.",
    ),
    (
        "You are an AI assistant. Think step by step.",
        "Numbers: 12345 and 3.14 — café ☃  two  spaces",
        "Step 1: 12345 + 1 = 12346.\n  Done.\n",
    ),
]


@pytest.mark.torch
def test_smollm2_examples_match_apply_chat_template(smollm2_hf_dir):
    """Training example = apply_chat_template(system?, user, assistant) without the final newline;
    prompt = apply_chat_template(system?, user, add_generation_prompt=True); no BOS in front."""
    import transformers

    from orca_jax.data.preprocessors import ExamplePreprocessor, prompt_token_ids
    from orca_jax.data.rows import OrcaRow

    tok = load_tokenizer(str(smollm2_hf_dir))
    ref = transformers.AutoTokenizer.from_pretrained(str(smollm2_hf_dir))
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (None, ref.eos_token_id, ref.pad_token_id, 49152)
    pre = ExamplePreprocessor(tok, sequence_length=512, template="chatml")
    for system, user, response in CHAT_ROWS:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        prompt_ref = ref.apply_chat_template(
            messages, chat_template=CHATML_JINJA, add_generation_prompt=True, tokenize=True
        )["input_ids"]
        full_ref = ref.apply_chat_template(
            messages + [{"role": "assistant", "content": response}], chat_template=CHATML_JINJA, tokenize=True
        )["input_ids"]
        example = pre(OrcaRow("cot.1", system, user, response, "cot", "gpt-4"))
        assert example.tokens.tolist() == full_ref[:-1] and full_ref[-1:] == tok.encode("\n")
        assert example.tokens[: example.prompt_length].tolist() == prompt_ref
        assert prompt_token_ids(tok, system, user, template="chatml") == prompt_ref
        assert prompt_ref[:2] != [1, 1]  # never <|im_start|><|im_start|>
