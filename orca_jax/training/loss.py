"""The training loss: fp32 cross-entropy on response tokens (pure functions).

Sums, not means: the train step divides by the number of response tokens in the GLOBAL
batch, so gradient accumulation over microbatches gives the gradient of one big batch.
Logits stay sharded over the vocabulary (`act_vocab` -> tensor): the target logit is taken
with a one-hot contraction rather than a gather, and logsumexp reduces across shards.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gin
import jax
import jax.numpy as jnp

from orca_jax.models import Llama


@gin.configurable
@dataclasses.dataclass(frozen=True)
class LossConfig:
    """How the loss is computed."""

    z_loss: float = 0.0
    """Weight of the auxiliary z-loss `logsumexp(logits)^2` per response token (PaLM uses 1e-4)."""
    chunk_size: int | None = None
    """Compute the head and loss over sequence chunks of this many tokens (under remat), so the
    fp32 logits of the whole batch never exist at once; None: one pass over the full sequence."""


def token_losses(logits: jax.Array, targets: jax.Array, z_loss: float) -> tuple[jax.Array, jax.Array]:
    """Per-token (cross-entropy, cross-entropy + z_loss * logsumexp^2) from logits `[..., vocab]`."""
    logits = logits.astype(jnp.float32)
    lse = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.sum(logits * jax.nn.one_hot(targets, logits.shape[-1], dtype=logits.dtype), axis=-1)
    ce = lse - target_logit
    return ce, ce + z_loss * jnp.square(lse)


def weighted_sums(
    logits: jax.Array, targets: jax.Array, weights: jax.Array, z_loss: float
) -> tuple[jax.Array, jax.Array]:
    """(sum of the loss, sum of the cross-entropy) over tokens with weight > 0."""
    ce, total = token_losses(logits, targets, z_loss)
    w = weights.astype(jnp.float32)
    return jnp.sum(total * w), jnp.sum(ce * w)


def loss_sums(
    params: Any, model: Llama, batch: dict[str, jax.Array], config: LossConfig
) -> tuple[jax.Array, jax.Array]:
    """(loss sum, cross-entropy sum) of `model` on `batch` (the batch contract)."""
    args = (batch["decoder_input_tokens"], batch["decoder_positions"], batch["decoder_segment_ids"])
    targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
    if config.chunk_size is None:
        logits = model.apply({"params": params}, *args)
        return weighted_sums(logits, targets, weights, config.z_loss)
    hidden = model.apply({"params": params}, *args, return_hidden=True)
    return chunked_sums(params, model, hidden, targets, weights, config)


def chunked_sums(
    params: Any, model: Llama, hidden: jax.Array, targets: jax.Array, weights: jax.Array, config: LossConfig
) -> tuple[jax.Array, jax.Array]:
    """`weighted_sums` over sequence chunks with lax.map; each chunk's logits are recomputed
    in the backward pass (jax.checkpoint), so only one chunk's fp32 logits are live."""
    b, length, d = hidden.shape
    c = config.chunk_size
    if length % c:
        raise ValueError(f"sequence length {length} is not divisible by LossConfig.chunk_size {c}")

    def split(x):  # [b, l, ...] -> [l // c, b, c, ...]
        return jnp.swapaxes(x.reshape(b, length // c, c, *x.shape[2:]), 0, 1)

    @jax.checkpoint
    def one_chunk(chunk):
        h, t, w = chunk
        logits = model.apply({"params": params}, h, method="logits_from_hidden")
        return weighted_sums(logits, t, w, config.z_loss)

    loss, ce = jax.lax.map(one_chunk, (split(hidden), split(targets), split(weights)))
    return jnp.sum(loss), jnp.sum(ce)
