"""The SeqIO view with a Hugging Face tokenizer: a task over a tokenizer.json gives the Python pipeline's ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

seqio = pytest.importorskip("seqio")
import tensorflow as tf  # noqa: E402

from orca_jax.data import registry  # noqa: E402
from orca_jax.data.preprocessors import ExamplePreprocessor  # noqa: E402
from orca_jax.data.rows import validate_row  # noqa: E402
from orca_jax.data.tokenizer import load_tokenizer  # noqa: E402
from tasks import seqio_face  # noqa: E402

pytestmark = pytest.mark.seqio


def _tokenizer_dir(path, *, bos: bool):
    """A small byte-level BPE tokenizer.json with ChatML specials; a BOS post-processor if `bos`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(["the answer is 42", "What is 2 + 2?", "user assistant system"] * 20, trainer)
    if bos:
        backend.post_processor = processors.TemplateProcessing(
            single="<|endoftext|> $A", special_tokens=[("<|endoftext|>", 0)]
        )
    path.mkdir()
    backend.save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}))
    return path


@pytest.mark.parametrize("bos", [False, True])
def test_seqio_task_with_hf_tokenizer_matches_python(tmp_path, bos):
    tok_dir = _tokenizer_dir(tmp_path / "tok", bos=bos)
    rows = [
        {"id": f"cot.{i}", "system_prompt": s, "question": q, "response": r}
        for i, (s, q, r) in enumerate(
            [("", "What is 2 + 2?", "4"), ("Be brief.", "the answer?", " The answer is 42.\n")]
        )
    ]
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = registry.TaskSpec(f"test_hf_vocab_{bos}", {"train": (str(data),)}, "gpt-4", str(tok_dir))
    task = seqio_face.register_task(spec)
    try:
        vocab = task.output_features["inputs"].vocabulary
        tokenizer = load_tokenizer(str(tok_dir))
        assert vocab.bos_id == tokenizer.bos_id == (0 if bos else None) and vocab.eos_id == tokenizer.eos_id
        assert vocab.decode(vocab.encode("the answer is 42")) == "the answer is 42"
        got = list(task.get_dataset(sequence_length=None, split="train", shuffle=False).as_numpy_iterator())
        pre = ExamplePreprocessor(tokenizer, sequence_length=512)
        for ex, raw in zip(got, rows, strict=True):
            want = pre(validate_row(raw, teacher="gpt-4"))
            assert np.concatenate([ex["inputs"], ex["targets"]]).tolist() == want.tokens.tolist()
            assert len(ex["inputs"]) == want.prompt_length
        assert vocab.decode_tf(tf.constant(got[0]["targets"])).numpy().decode() == "4"
    finally:
        seqio.TaskRegistry.remove(spec.name)
