"""The LLaMA decoder: embedding, scanned (or unrolled) decoder blocks, final norm, output head
(its own `lm_head/kernel`, or the embedding table transposed when `tie_word_embeddings`)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from orca_jax.models.config import LlamaConfig
from orca_jax.models.layers import DecoderBlock, RMSNorm, _param

_REMAT_POLICIES = {
    "full": None,  # save nothing: recompute the block in the backward pass
    "save_dots": jax.checkpoint_policies.checkpoint_dots,
    "save_dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    "save_qkv_out": jax.checkpoint_policies.save_only_these_names("query_proj", "key_proj", "value_proj", "out_proj"),
}


def _block_class(config: LlamaConfig):
    """DecoderBlock wrapped in remat per the config's policy."""
    if config.remat_policy == "none":
        return DecoderBlock
    return nn.remat(DecoderBlock, policy=_REMAT_POLICIES[config.remat_policy], prevent_cse=not config.scan_layers)


class _ScanBody(nn.Module):
    """Adapts a block to nn.scan's (carry, broadcast args) -> (carry, None) signature."""

    config: LlamaConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x, positions, segment_ids):
        return _block_class(self.config)(self.config, self.decode, name="block")(x, positions, segment_ids), None


class Llama(nn.Module):
    """LLaMA-style decoder-only LM.

    Call with tokens/positions/segment_ids `[batch, len]` int32 and get logits
    `[batch, len, vocab]` in fp32 (or the final hidden states `[batch, len, embed]` in the
    compute dtype with `return_hidden=True`, for a chunked loss). With `decode=True` the
    attention layers keep a KV cache in the "cache" collection (see layers.Attention).
    """

    config: LlamaConfig
    decode: bool = False

    def setup(self):
        cfg = self.config
        self.embed_table = self.param(
            "embed",
            nn.with_logical_partitioning(nn.initializers.normal(cfg.initializer_range), ("vocab", "embed")),
            (cfg.vocab_size, cfg.d_model),
            cfg.weights_dtype,
        )
        if cfg.scan_layers:
            self.layers = nn.scan(
                _ScanBody,
                variable_axes={"params": 0, "cache": 0},
                split_rngs={"params": True},
                in_axes=(nn.broadcast, nn.broadcast),
                length=cfg.n_layers,
                metadata_params={nn.PARTITION_NAME: "layers"},
            )(cfg, self.decode, name="layers")
        else:
            block = _block_class(cfg)
            self.blocks = [block(cfg, self.decode, name=f"layers_{i}") for i in range(cfg.n_layers)]
        self.final_norm = RMSNorm(cfg, name="final_norm")
        if not cfg.tie_word_embeddings:
            self.lm_head = _LMHead(cfg, name="lm_head")

    def __call__(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        segment_ids: jax.Array | None = None,
        return_hidden: bool = False,
    ) -> jax.Array:
        cfg = self.config
        if segment_ids is None:
            segment_ids = jnp.ones_like(tokens)
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
        # Gather from a table replicated over the vocab axis (sharded only along embed), so a
        # vocab-sharded table does not force XLA into a full rematerialisation of the gather.
        table = nn.with_logical_constraint(self.embed_table, (None, "embed"))
        x = jnp.take(table, tokens, axis=0).astype(cfg.compute_dtype)
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        if cfg.scan_layers:
            x, _ = self.layers(x, positions, segment_ids)
        else:
            for block in self.blocks:
                x = block(x, positions, segment_ids)
        x = self.final_norm(x)
        if return_hidden:
            return x
        return self.logits_from_hidden(x)

    def logits_from_hidden(self, hidden: jax.Array) -> jax.Array:
        """Apply the output head to hidden states `[..., embed]` -> fp32 logits `[..., vocab]`."""
        cfg = self.config
        if not cfg.tie_word_embeddings:
            return self.lm_head(hidden)
        # Tied: the head is the embedding table `[vocab, embed]` itself, contracted on embed.
        logits = jnp.einsum(
            "...d,vd->...v", hidden, self.embed_table.astype(cfg.compute_dtype), preferred_element_type=jnp.float32
        )
        return nn.with_logical_constraint(logits, ("batch", "length", "act_vocab"))


class _LMHead(nn.Module):
    """Untied output projection `[embed, vocab]`; fp32 logits from compute-dtype inputs."""

    config: LlamaConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        w = _param(
            self,
            "kernel",
            (cfg.d_model, cfg.vocab_size),
            ("embed", "vocab"),
            nn.initializers.normal(cfg.initializer_range),
        )
        logits = jnp.einsum("...d,dv->...v", x, w.astype(cfg.compute_dtype), preferred_element_type=jnp.float32)
        return nn.with_logical_constraint(logits, ("batch", "length", "act_vocab"))
