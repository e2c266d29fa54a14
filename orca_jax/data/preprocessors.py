"""Per-example preprocessing in plain Python: render, tokenize, truncate, build the LM sequence.

One example's full token sequence (length n <= sequence_length + 1) is::

    [BOS] + prompt_tokens + response_tokens + [EOS]

([BOS] only when the tokenizer prepends one: SmolLM2 and Qwen2 have none) and the
decoder sees inputs seq[:-1] and targets seq[1:] (n - 1 positions). A
target is trained on (loss weight 1) iff it is a response token or the EOS, i.e.
for target positions t with t + 1 >= prompt_length, where prompt_length counts
BOS (if any) plus the prompt tokens.

Truncation when n would exceed sequence_length + 1 (the budget for prompt plus
response+EOS is `sequence_length` tokens, BOS takes the remaining one; without a BOS
that one is left unused):

1. The response (with its EOS) is guaranteed min(len, min_response_tokens) tokens.
2. The prompt keeps its END (the question's last part and the assistant header),
   cut from the left only as far as needed to leave that room; BOS stays first.
3. The response fills what is left, cut from the right. A cut response has no EOS:
   EOS marks a finished answer.
4. If the prompt would have to shrink below min(len, min_prompt_tokens), the
   example is dropped with reason 'too_long' (its response cannot fit at all).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from orca_jax.data import prompts
from orca_jax.data.rows import OrcaRow
from orca_jax.data.tokenizer import Tokenizer, prefix_ids

TOO_LONG = "too_long"
DROP_REASONS = (TOO_LONG,)


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """One training example as a token sequence.

    Attributes:
      tokens: int32 [n], BOS + prompt + response (+ EOS unless the response was cut).
      prompt_length: number of leading tokens (BOS + prompt) that carry no loss.
    """

    tokens: np.ndarray
    prompt_length: int

    @property
    def num_positions(self) -> int:
        """Decoder positions it takes when packed: n - 1."""
        return len(self.tokens) - 1

    def inputs(self) -> np.ndarray:
        """decoder_input_tokens for this example, int32 [n - 1]."""
        return self.tokens[:-1]

    def targets(self) -> np.ndarray:
        """decoder_target_tokens for this example, int32 [n - 1]."""
        return self.tokens[1:]

    def loss_weights(self) -> np.ndarray:
        """1 where the target is a response token or EOS, int32 [n - 1]."""
        return (np.arange(1, len(self.tokens)) >= self.prompt_length).astype(np.int32)


def render(row: OrcaRow, template: str | None = None) -> tuple[str, str]:
    """(prompt text, target text) of a row under the chat template (gin default if None)."""
    return prompts.render_example(row.system_prompt, row.question, row.response, template=template)


def prompt_token_ids(
    tokenizer: Tokenizer, system: str, user: str, *, template: str | None = None, max_length: int | None = None
) -> list[int]:
    """Model input ids for generation: [BOS] (if any) + tokens of the rendered prompt, as in training.

    Args:
      tokenizer: the tokenizer.
      system: system message ('' for none, Orca's zero-shot default).
      user: the query.
      template: chat template; None for render_prompt's gin default.
      max_length: keep at most this many ids: BOS plus the prompt's END (training's truncation side).
    """
    kwargs = {} if template is None else {"template": template}
    ids = tokenizer.encode(prompts.render_prompt(system, user, **kwargs))
    if max_length is not None:
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        keep = max_length - len(prefix_ids(tokenizer))
        ids = ids[len(ids) - keep :] if len(ids) > keep else ids
        ids = ids if keep else []
    return prefix_ids(tokenizer) + ids


def truncation_lengths(
    prompt_len: int,
    response_len: int,
    sequence_length: int,
    *,
    min_response_tokens: int,
    min_prompt_tokens: int,
) -> tuple[int, int] | None:
    """How many prompt tokens (from the end) and response tokens (from the start) to keep.

    Args:
      prompt_len: prompt tokens, without BOS.
      response_len: response tokens including EOS.
      sequence_length: decoder length L; BOS + prompt + response must be <= L + 1.

    Returns:
      (kept prompt tokens, kept response tokens), or None when the example cannot fit.
    """
    budget = sequence_length  # L + 1 tokens minus BOS.
    if prompt_len + response_len <= budget:
        return prompt_len, response_len
    need_response = min(response_len, max(1, min_response_tokens))
    keep_prompt = min(prompt_len, budget - need_response)
    if keep_prompt < min(prompt_len, min_prompt_tokens) or need_response > budget:
        return None
    return keep_prompt, min(response_len, budget - keep_prompt)


def build_example(
    prompt_ids: list[int] | np.ndarray,
    response_ids: list[int] | np.ndarray,
    *,
    bos_id: int | None,
    eos_id: int,
    sequence_length: int,
    min_response_tokens: int = 16,
    min_prompt_tokens: int = 16,
) -> TokenizedExample | None:
    """[BOS] + prompt + response + [EOS], truncated to fit `sequence_length` (see module doc).

    `bos_id=None` (a tokenizer that prepends nothing) leaves the BOS out.
    Returns None when the example must be dropped ('too_long').
    """
    response_full = np.concatenate([np.asarray(response_ids, np.int32), np.asarray([eos_id], np.int32)])
    prompt = np.asarray(prompt_ids, np.int32)
    kept = truncation_lengths(
        len(prompt),
        len(response_full),
        sequence_length,
        min_response_tokens=min_response_tokens,
        min_prompt_tokens=min_prompt_tokens,
    )
    if kept is None:
        return None
    keep_prompt, keep_response = kept
    prefix = np.asarray([] if bos_id is None else [bos_id], np.int32)
    tokens = np.concatenate([prefix, prompt[len(prompt) - keep_prompt :], response_full[:keep_response]])
    return TokenizedExample(tokens=tokens, prompt_length=len(prefix) + keep_prompt)


@dataclasses.dataclass
class ExamplePreprocessor:
    """OrcaRow -> TokenizedExample, or a drop reason; the plain-Python twin of the SeqIO task.

    Attributes:
      tokenizer: the SentencePiece tokenizer.
      sequence_length: decoder length L of the packed batches.
      template: chat template name, or None for render_prompt's gin-configured default
        (read once, when the preprocessor is made).
      min_response_tokens: response tokens (incl. EOS) a truncation must keep.
      min_prompt_tokens: prompt tokens a truncation must keep, else 'too_long'.
      num_threads: SentencePiece threads for batch encoding.
    """

    tokenizer: Tokenizer
    sequence_length: int
    template: str | None = None
    min_response_tokens: int = 16
    min_prompt_tokens: int = 16
    num_threads: int = 1

    def __post_init__(self):
        # Resolve the template (and gin's render_prompt bindings) once, not per row.
        name, omit = prompts.prompt_settings(self.template)
        self._template = prompts.get_template(name)
        self._omit_empty_system = omit

    @property
    def template_name(self) -> str:
        """The chat template actually used (after gin resolution)."""
        return self._template.name

    @property
    def omit_empty_system(self) -> bool:
        return self._omit_empty_system

    def __call__(self, row: OrcaRow) -> TokenizedExample | str:
        return self.batch([row])[0]

    def batch(self, rows: list[OrcaRow] | tuple[OrcaRow, ...]) -> list[TokenizedExample | str]:
        """Preprocess several rows at once (one batched SentencePiece call per side)."""
        if not rows:
            return []
        prompt_texts = [
            self._template.render(r.system_prompt, r.question, omit_empty_system=self._omit_empty_system) for r in rows
        ]
        target_texts = [prompts.render_target(r.response) for r in rows]
        prompt_ids = self.tokenizer.encode_batch(prompt_texts, self.num_threads)
        target_ids = self.tokenizer.encode_batch(target_texts, self.num_threads)
        out: list[TokenizedExample | str] = []
        for p, t in zip(prompt_ids, target_ids):
            example = build_example(
                p,
                t,
                bos_id=self.tokenizer.bos_id,
                eos_id=self.tokenizer.eos_id,
                sequence_length=self.sequence_length,
                min_response_tokens=self.min_response_tokens,
                min_prompt_tokens=self.min_prompt_tokens,
            )
            out.append(TOO_LONG if example is None else example)
        return out
