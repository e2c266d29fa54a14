"""Synthetic Orca-like example lengths, for packing tests and benchmarks.

Prompt and response lengths are log-normal (long-tailed) and clipped to Orca's
observed ranges: prompts 20-1500 tokens (median 190), responses 5-1500 (median
310). At sequence length 2048 that gives ~2.7 examples per packed row, the
packing factor Orca reported, and ~2% of examples need truncation.
"""

from __future__ import annotations

import numpy as np

from orca_jax.data.preprocessors import TokenizedExample, build_example

PROMPT_RANGE = (20, 1500)
RESPONSE_RANGE = (5, 1500)


def orca_like_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(prompt lengths, response lengths), int64 [n] each, in tokens (BOS/EOS not included)."""
    rng = np.random.default_rng(seed)
    prompt = np.clip(rng.lognormal(np.log(190), 1.0, n), *PROMPT_RANGE).astype(np.int64)
    response = np.clip(rng.lognormal(np.log(310), 1.0, n), *RESPONSE_RANGE).astype(np.int64)
    return prompt, response


def orca_like_examples(
    n: int, sequence_length: int = 2048, seed: int = 0, vocab_size: int = 32000
) -> list[TokenizedExample]:
    """`n` examples with Orca-like lengths and random token ids, truncated to `sequence_length`."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for p, r in zip(*orca_like_lengths(n, seed)):
        ex = build_example(
            rng.integers(3, vocab_size, p, dtype=np.int32),
            rng.integers(3, vocab_size, r, dtype=np.int32),
            bos_id=1,
            eos_id=2,
            sequence_length=sequence_length,
        )
        if ex is not None:
            out.append(ex)
    return out
