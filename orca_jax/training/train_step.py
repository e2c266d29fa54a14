"""One optimisation step, a pure function of (state, global batch); and its jitted form.

Gradient accumulation: the batch is split into `num_microbatches` strided microbatches
(row i goes to microbatch i % M, so every device keeps its rows: no resharding) and
lax.scan sums their gradients. Each microbatch's loss is divided by the response-token
count of the GLOBAL batch, so the sum equals the gradient of one big batch.

A non-finite loss or gradient norm skips the update (params and optimizer state are kept,
via jnp.where) and is reported in the metrics as `skipped`.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from orca_jax import partitioning
from orca_jax.models import Llama, LlamaConfig
from orca_jax.training.batches import FEATURES
from orca_jax.training.loss import LossConfig, loss_sums
from orca_jax.training.optimizer import Optimizer, update_count
from orca_jax.training.train_state import TrainState

Batch = dict[str, jax.Array]


def split_microbatches(batch: Batch, num_microbatches: int) -> Batch:
    """`[B, L]` -> `[M, B/M, L]` with microbatch m = rows m, m+M, m+2M, ... (device-local)."""

    def split(x):
        b = x.shape[0]
        x = jnp.swapaxes(x.reshape(b // num_microbatches, num_microbatches, *x.shape[1:]), 0, 1)
        return nn.with_logical_constraint(x, (None, "batch", "length"))

    return jax.tree.map(split, batch)


def gradients(
    params: Any, batch: Batch, model: Llama, loss_config: LossConfig, num_microbatches: int
) -> tuple[jax.Array, jax.Array, Any]:
    """(loss, cross-entropy, grads), normalised by the global batch's response-token count."""
    denominator = jnp.maximum(jnp.sum(batch["decoder_loss_weights"].astype(jnp.float32)), 1.0)

    def loss_fn(p, b):
        loss_sum, ce_sum = loss_sums(p, model, b, loss_config)
        return loss_sum / denominator, ce_sum / denominator

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if num_microbatches == 1:
        (loss, ce), grads = grad_fn(params, batch)
        return loss, ce, grads

    def accumulate(carry, microbatch):
        (loss, ce), grads = grad_fn(params, microbatch)
        acc_loss, acc_ce, acc_grads = carry
        return (acc_loss + loss, acc_ce + ce, jax.tree.map(jnp.add, acc_grads, grads)), None

    zeros = jax.tree.map(jnp.zeros_like, params)
    init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), zeros)
    (loss, ce, grads), _ = jax.lax.scan(accumulate, init, split_microbatches(batch, num_microbatches))
    return loss, ce, grads


def train_step(
    state: TrainState,
    batch: Batch,
    *,
    model: Llama,
    optimizer: Optimizer,
    loss_config: LossConfig,
    num_microbatches: int = 1,
) -> tuple[TrainState, dict[str, jax.Array]]:
    """Forward, backward, clip, AdamW; skip the update if the loss or gradient is not finite."""
    loss, ce, grads = gradients(state.params, batch, model, loss_config, num_microbatches)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    updates, opt_state = optimizer.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep_if_finite = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
    rng, _ = jax.random.split(state.rng)
    new_state = TrainState(
        step=state.step + 1,
        params=jax.tree.map(keep_if_finite, params, state.params),
        opt_state=jax.tree.map(keep_if_finite, opt_state, state.opt_state),
        rng=rng,
    )
    metrics = {
        "loss": loss,
        "cross_entropy": ce,
        "grad_norm": grad_norm,
        "learning_rate": optimizer.schedule(update_count(state.opt_state)),
        "skipped": (~finite).astype(jnp.int32),
        "loss_tokens": jnp.sum(batch["decoder_loss_weights"]),
        "real_tokens": jnp.sum(batch["decoder_segment_ids"] > 0),
    }
    return new_state, metrics


def batch_abstract(batch_shape: tuple[int, int], mesh: Mesh, rules: partitioning.Rules) -> Batch:
    """ShapeDtypeStructs of the global batch contract `[batch, length]`, sharded over the batch axes."""
    sharding = partitioning.batch_sharding(mesh, rules)
    return {k: jax.ShapeDtypeStruct(batch_shape, jnp.int32, sharding=sharding) for k in FEATURES}


def compile_train_step(
    config: LlamaConfig,
    optimizer: Optimizer,
    loss_config: LossConfig,
    num_microbatches: int,
    mesh: Mesh,
    rules: partitioning.Rules,
    state: TrainState,
    batch: Batch,
):
    """AOT-compile `train_step` for abstract `state`/`batch` (ShapeDtypeStructs with shardings).

    The old state is donated; the new state keeps the same shardings; metrics are replicated.
    """

    def step(s, b):
        return train_step(
            s, b, model=Llama(config), optimizer=optimizer, loss_config=loss_config, num_microbatches=num_microbatches
        )

    state_sh = jax.tree.map(lambda x: x.sharding, state)
    batch_sh = jax.tree.map(lambda x: x.sharding, batch)
    jitted = jax.jit(
        step,
        in_shardings=(state_sh, batch_sh),
        out_shardings=(state_sh, partitioning.replicated(mesh)),
        donate_argnums=0,
    )
    with partitioning.mesh_context(mesh, rules):
        return jitted.lower(state, batch).compile()
