"""Per-example preprocessing: render, tokenize, truncation rules, the LM sequence and its loss mask."""

from __future__ import annotations

import numpy as np
import pytest

from orca_jax.data import prompts
from orca_jax.data.preprocessors import TOO_LONG, ExamplePreprocessor, build_example, render, truncation_lengths
from orca_jax.data.rows import OrcaRow

ROW = OrcaRow("cot.1", "You are an AI assistant.", "What is 2 + 3?", "2 + 3 = 5.\nSo the answer is 5.", "cot", "t")


def test_render_uses_the_chat_template():
    prompt, target = render(ROW)
    assert prompt == prompts.render_prompt(ROW.system_prompt, ROW.question)
    assert target == ROW.response
    assert render(ROW, "instruct")[0].startswith("### System:\nYou are an AI assistant.")


def test_sequence_layout_and_loss_weights():
    ex = build_example([10, 11, 12], [20, 21], bos_id=1, eos_id=2, sequence_length=64)
    assert ex.tokens.tolist() == [1, 10, 11, 12, 20, 21, 2]
    assert ex.prompt_length == 4
    assert ex.inputs().tolist() == [1, 10, 11, 12, 20, 21]
    assert ex.targets().tolist() == [10, 11, 12, 20, 21, 2]
    # Loss exactly where the target is a response token or EOS.
    assert ex.loss_weights().tolist() == [0, 0, 0, 1, 1, 1]
    assert ex.tokens.dtype == np.int32


def test_exact_fit_is_not_truncated():
    # BOS + 5 prompt + 2 response + EOS = 9 tokens = sequence_length + 1.
    ex = build_example(list(range(10, 15)), [20, 21], bos_id=1, eos_id=2, sequence_length=8)
    assert ex.tokens.tolist() == [1, 10, 11, 12, 13, 14, 20, 21, 2]


def test_truncation_keeps_the_end_of_the_prompt_and_the_whole_response():
    prompt, response = list(range(100, 140)), [20, 21, 22]
    ex = build_example(prompt, response, bos_id=1, eos_id=2, sequence_length=16, min_prompt_tokens=4)
    assert len(ex.tokens) == 17 and ex.prompt_truncated
    assert ex.tokens[0] == 1
    assert ex.tokens[1:13].tolist() == prompt[-12:]  # The prompt's end survives.
    assert ex.tokens[13:].tolist() == [20, 21, 22, 2]  # The whole response and EOS.
    assert ex.loss_weights().sum() == 4


def test_truncation_cuts_between_the_protected_header_and_footer():
    head, question, tail = [7, 8, 9], list(range(100, 160)), [5, 6]
    response = list(range(200, 210))
    ex = build_example(
        head + question + tail,
        response,
        bos_id=1,
        eos_id=2,
        sequence_length=30,
        min_prompt_tokens=4,
        keep_head=3,
        keep_tail=2,
    )
    kept_question = 30 - 11 - 5  # budget - (response + EOS) - header - footer
    assert ex.tokens.tolist() == [1, *head, *question[-kept_question:], *tail, *response, 2]
    assert ex.prompt_truncated and ex.prompt_length == 1 + 5 + kept_question


def test_response_is_never_cut_the_row_is_dropped_instead():
    prompt, response = list(range(100, 112)), list(range(200, 240))
    assert build_example(prompt, response, bos_id=1, eos_id=2, sequence_length=20, min_prompt_tokens=4) is None
    ex = build_example(prompt, response, bos_id=1, eos_id=2, sequence_length=60, min_prompt_tokens=4)
    assert ex.tokens.tolist() == [1, *prompt, *response, 2] and not ex.prompt_truncated
    # With the chat header protected, the header alone can leave no room.
    assert (
        build_example(
            prompt, response[:5], bos_id=1, eos_id=2, sequence_length=14, min_prompt_tokens=1, keep_head=6, keep_tail=6
        )
        is None
    )
    assert (
        build_example(
            prompt, response[:5], bos_id=1, eos_id=2, sequence_length=14, min_prompt_tokens=1, keep_head=3, keep_tail=4
        )
        is not None
    )


def test_example_that_cannot_fit_is_dropped():
    assert truncation_lengths(50, 10, 12, min_prompt_tokens=8) is None
    assert truncation_lengths(50, 10, 18, min_prompt_tokens=8) == (8, 10)
    assert truncation_lengths(3, 10, 8, min_prompt_tokens=8) is None
    assert truncation_lengths(50, 10, 20, min_prompt_tokens=1, protected=12) is None
    assert build_example(list(range(50)), [5] * 10, bos_id=1, eos_id=2, sequence_length=12, min_prompt_tokens=8) is None


@pytest.mark.parametrize("length", [4, 16, 64, 300])
def test_truncation_invariants(length):
    rng = np.random.default_rng(length)
    for _ in range(200):
        p, r = int(rng.integers(0, 400)), int(rng.integers(1, 400))
        protected = int(rng.integers(0, p + 1))
        kept = truncation_lengths(p, r, length, min_prompt_tokens=3, protected=protected)
        if kept is None:
            assert p + r > length
            continue
        kp, kr = kept
        assert kr == r and kp + kr <= length and kp <= p
        assert kp >= protected + min(p - protected, 3)
        if p + r <= length:
            assert kept == (p, r)


def test_preprocessor_matches_manual_steps(demo_tokenizer):
    pre = ExamplePreprocessor(demo_tokenizer, sequence_length=512)
    ex = pre(ROW)
    prompt, target = render(ROW)
    assert ex.tokens.tolist() == (
        [demo_tokenizer.bos_id]
        + demo_tokenizer.encode(prompt)
        + demo_tokenizer.encode(target)
        + [demo_tokenizer.eos_id]
    )
    assert demo_tokenizer.decode(ex.tokens[ex.prompt_length :]) == ROW.response
    assert pre.batch([ROW, ROW])[1].tokens.tolist() == ex.tokens.tolist()
    assert (
        ExamplePreprocessor(demo_tokenizer, sequence_length=8, min_prompt_tokens=8)(ROW)
        == TOO_LONG
        == "response_too_long"
    )


@pytest.mark.parametrize("system", ["You are an AI assistant.", ""])
def test_over_long_row_keeps_the_chat_header_and_the_answer(demo_tokenizer, system):
    """A long question left a 31-token answer cut at 16 tokens; now the question is cut instead."""
    row = OrcaRow("cot.2", system, "Context: " + "lorem ipsum " * 200 + "What is 2 + 3?", ROW.response, "cot", "t")
    pre = ExamplePreprocessor(demo_tokenizer, sequence_length=128, min_prompt_tokens=8)
    ex = pre(row)
    assert ex.prompt_truncated and len(ex.tokens) <= 129
    assert ex.tokens[-1] == demo_tokenizer.eos_id
    assert demo_tokenizer.decode(ex.tokens[ex.prompt_length :]) == ROW.response  # "So the answer is 5." kept
    prompt = demo_tokenizer.decode(ex.tokens[: ex.prompt_length])
    template = prompts.get_template("chatml")
    header = (template.system_prefix + system + template.system_suffix if system else "") + template.user_prefix
    assert prompt.startswith(header) and prompt.endswith("What is 2 + 3?<|im_end|>\n<|im_start|>assistant\n")
    assert "Context:" not in prompt  # the question's start was cut
    # The same row with a response that cannot fit beside the header is dropped, not cut.
    huge = OrcaRow("cot.3", system, row.question, "step " * 400 + "So the answer is 5.", "cot", "t")
    assert pre(huge) == TOO_LONG


def test_prompt_token_ids_match_training(demo_tokenizer):
    from orca_jax.data.preprocessors import prompt_token_ids

    pre = ExamplePreprocessor(demo_tokenizer, sequence_length=512)
    ex = pre(ROW)
    ids = prompt_token_ids(demo_tokenizer, ROW.system_prompt, ROW.question)
    assert ids == ex.tokens[: ex.prompt_length].tolist()
    full = demo_tokenizer.encode(prompts.render_prompt("", "Hi"))
    assert prompt_token_ids(demo_tokenizer, "", "Hi", max_length=3) == [1] + full[-2:]
    assert prompt_token_ids(demo_tokenizer, "", "Hi", max_length=1000) == [1] + full
    assert prompt_token_ids(demo_tokenizer, "", "Hi", max_length=1) == [1]
