"""Per-example preprocessing in plain Python: render, tokenize, truncate, build the LM sequence.

One example's full token sequence (length n <= sequence_length + 1) is::

    [BOS] + prompt_tokens + response_tokens + [EOS]

([BOS] only when the tokenizer prepends one: SmolLM2 and Qwen2 have none) and the
decoder sees inputs seq[:-1] and targets seq[1:] (n - 1 positions). A
target is trained on (loss weight 1) iff it is a response token or the EOS, i.e.
for target positions t with t + 1 >= prompt_length, where prompt_length counts
BOS (if any) plus the prompt tokens.

Over-long examples (n would exceed sequence_length + 1; the budget for prompt plus
response+EOS is `sequence_length` tokens, BOS takes the remaining one, which is left
unused without a BOS) never lose the end of the response: the teacher's answer
("So the answer is ...") and its EOS are kept whole, and only the prompt is shortened.

1. The chat header is kept whole: the system block and the user header before the
   question, and the user footer and assistant header after it. Only the question is
   cut, from its start (its end, which usually holds the actual ask, stays).
2. The question keeps at least min(len, min_prompt_tokens) tokens; if the whole
   response would not fit next to the header and that much question, the example is
   dropped with reason 'response_too_long'.
3. Shortened examples are counted as 'prompt_truncated' (TokenizedExample.prompt_truncated).

The prompt is always tokenized as one text (so the header tokens are exactly those the
model sees at inference); for an over-long prompt the header and footer tokens are
located by tokenizing the header, and header + question, and comparing prefixes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from orca_jax.data import prompts
from orca_jax.data.rows import OrcaRow
from orca_jax.data.tokenizer import Tokenizer, prefix_ids

RESPONSE_TOO_LONG = "response_too_long"
TOO_LONG = RESPONSE_TOO_LONG  # The one drop reason (older name).
DROP_REASONS = (RESPONSE_TOO_LONG,)
PROMPT_TRUNCATED = "prompt_truncated"


@dataclasses.dataclass(frozen=True)
class TokenizedExample:
    """One training example as a token sequence.

    Attributes:
      tokens: int32 [n], BOS + prompt + response (+ EOS unless the response was cut).
      prompt_length: number of leading tokens (BOS + prompt) that carry no loss.
      prompt_truncated: the prompt was shortened to fit (the response never is).
    """

    tokens: np.ndarray
    prompt_length: int
    prompt_truncated: bool = False

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
    min_prompt_tokens: int,
    protected: int = 0,
) -> tuple[int, int] | None:
    """How many prompt tokens to keep next to the whole response.

    Args:
      prompt_len: prompt tokens, without BOS.
      response_len: response tokens including EOS (always kept whole).
      sequence_length: decoder length L; BOS + prompt + response must be <= L + 1.
      min_prompt_tokens: tokens of the cuttable part (the question) a truncation keeps.
      protected: prompt tokens that are never cut (the chat header).

    Returns:
      (kept prompt tokens, response_len), or None when the response cannot fit.
    """
    budget = sequence_length  # L + 1 tokens minus BOS.
    if prompt_len + response_len <= budget:
        return prompt_len, response_len
    keep_prompt = budget - response_len
    protected = min(protected, prompt_len)
    if keep_prompt < protected + min(prompt_len - protected, min_prompt_tokens):
        return None
    return keep_prompt, response_len


def build_example(
    prompt_ids: list[int] | np.ndarray,
    response_ids: list[int] | np.ndarray,
    *,
    bos_id: int | None,
    eos_id: int | None,
    sequence_length: int,
    min_prompt_tokens: int = 16,
    keep_head: int = 0,
    keep_tail: int = 0,
) -> TokenizedExample | None:
    """[BOS] + prompt + response + [EOS], the prompt shortened to fit `sequence_length` (module doc).

    Args:
      bos_id: the BOS id, or None for a tokenizer that prepends nothing (SmolLM2, Qwen2).
      eos_id: the EOS id appended to the response, or None when `response_ids` already end as they should.
      keep_head, keep_tail: leading and trailing prompt tokens never cut (the chat
        header); tokens are cut from the start of the part between them.

    Returns None when the example must be dropped ('response_too_long').
    """
    suffix = [] if eos_id is None else [eos_id]
    response_full = np.concatenate([np.asarray(response_ids, np.int32), np.asarray(suffix, np.int32)])
    prompt = np.asarray(prompt_ids, np.int32)
    kept = truncation_lengths(
        len(prompt),
        len(response_full),
        sequence_length,
        min_prompt_tokens=min_prompt_tokens,
        protected=keep_head + keep_tail,
    )
    if kept is None:
        return None
    cut = len(prompt) - kept[0]
    if cut:
        prompt = np.concatenate([prompt[:keep_head], prompt[keep_head + cut :]])
    prefix = np.asarray([] if bos_id is None else [bos_id], np.int32)
    tokens = np.concatenate([prefix, prompt, response_full])
    return TokenizedExample(tokens=tokens, prompt_length=len(prefix) + len(prompt), prompt_truncated=bool(cut))


def prompt_pieces(
    template: prompts.ChatTemplate, system: str, question: str, omit_empty_system: bool
) -> tuple[str, str, str]:
    """(header, question, footer) texts whose concatenation is the rendered prompt."""
    head = ""
    if system.strip() or not omit_empty_system:
        head = template.system_prefix + system + template.system_suffix
    pieces = (head + template.user_prefix, question, template.user_suffix + template.assistant_prefix)
    if "".join(pieces) != template.render(system, question, omit_empty_system=omit_empty_system):
        raise ValueError(f"chat template {template.name!r} does not render as header + question + footer")
    return pieces


@dataclasses.dataclass
class ExamplePreprocessor:
    """OrcaRow -> TokenizedExample, or a drop reason (the one implementation; the SeqIO face calls it too).

    Attributes:
      tokenizer: the SentencePiece tokenizer.
      sequence_length: decoder length L of the packed batches.
      template: chat template name, or None for render_prompt's gin-configured default
        (read once, when the preprocessor is made).
      min_prompt_tokens: question tokens a truncation must keep, else 'response_too_long'.
      num_threads: SentencePiece threads for batch encoding.
    """

    tokenizer: Tokenizer
    sequence_length: int
    template: str | None = None
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

    def render_prompt(self, system: str, question: str) -> str:
        """The prompt text of (system message, question) under this preprocessor's template."""
        return self._template.render(system, question, omit_empty_system=self._omit_empty_system)

    def __call__(self, row: OrcaRow) -> TokenizedExample | str:
        return self.batch([row])[0]

    def batch(self, rows: list[OrcaRow] | tuple[OrcaRow, ...]) -> list[TokenizedExample | str]:
        """Preprocess several rows at once (one batched SentencePiece call per side)."""
        if not rows:
            return []
        prompt_texts = [self.render_prompt(r.system_prompt, r.question) for r in rows]
        target_texts = [prompts.render_target(r.response) for r in rows]
        prompt_ids = self.tokenizer.encode_batch(prompt_texts, self.num_threads)
        target_ids = self.tokenizer.encode_batch(target_texts, self.num_threads)
        out: list[TokenizedExample | str] = []
        for row, p, t in zip(rows, prompt_ids, target_ids):
            fits = len(p) + len(t) + 1 <= self.sequence_length  # prompt + response + EOS (BOS aside)
            example = self._example(p, t) if fits else self._shortened(row, p, t)
            out.append(RESPONSE_TOO_LONG if example is None else example)
        return out

    def _example(
        self, prompt_ids: list[int], target_ids: list[int], keep_head: int = 0, keep_tail: int = 0
    ) -> TokenizedExample | None:
        return build_example(
            prompt_ids,
            target_ids,
            bos_id=self.tokenizer.bos_id,
            eos_id=self.tokenizer.eos_id,
            sequence_length=self.sequence_length,
            min_prompt_tokens=self.min_prompt_tokens,
            keep_head=keep_head,
            keep_tail=keep_tail,
        )

    def _shortened(self, row: OrcaRow, prompt_ids: list[int], target_ids: list[int]) -> TokenizedExample | None:
        """An over-long row, cut inside its question; the header and footer tokens stay exactly as tokenized."""
        head, question, _ = prompt_pieces(self._template, row.system_prompt, row.question, self._omit_empty_system)
        keep_head = _common_prefix(self.tokenizer.encode(head), prompt_ids)
        keep_tail = len(prompt_ids) - _common_prefix(self.tokenizer.encode(head + question), prompt_ids)
        return self._example(prompt_ids, target_ids, keep_head=keep_head, keep_tail=keep_tail)


def _common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two id lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
