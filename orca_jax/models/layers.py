"""Building blocks of the LLaMA decoder: RMSNorm, rotary embeddings, attention, SwiGLU MLP.

Parameters carry logical axis names (embed, heads, kv_heads, head_dim, mlp, vocab, norm);
activations are constrained with `act_*` names. partitioning.py maps both to mesh axes.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.ad_checkpoint import checkpoint_name

from orca_jax.models.attention import dot_product_attention
from orca_jax.models.config import LlamaConfig


def _param(
    module: nn.Module, name: str, shape: tuple[int, ...], axes: tuple[str, ...], init: nn.initializers.Initializer
) -> jax.Array:
    """A parameter of `shape` with logical axis names `axes`, stored in the config's param dtype."""
    boxed = nn.with_logical_partitioning(init, axes)
    return module.param(name, boxed, shape, module.config.weights_dtype)


class RMSNorm(nn.Module):
    """x / rms(x) * scale, computed in fp32, returned in the compute dtype. `[..., embed]`."""

    config: LlamaConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = _param(self, "scale", (x.shape[-1],), ("norm",), nn.initializers.ones)
        x32 = x.astype(jnp.float32)
        x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.config.norm_eps)
        return x32.astype(self.config.compute_dtype) * scale.astype(self.config.compute_dtype)


def rope_inv_freq(config: LlamaConfig) -> np.ndarray:
    """Inverse RoPE frequencies `[head_dim // 2]` float32 for the config's rope_type.

    "default": theta^(-2i/d). "llama3": Llama-3.1's schedule (transformers'
    `_compute_llama3_parameters`): wavelengths longer than original_max_len / low_freq_factor are
    divided by `rope_factor`, those shorter than original_max_len / high_freq_factor are kept, and
    the band between is interpolated. Computed in float32 as transformers does.
    """
    d = config.dims_per_head
    inv_freq = 1.0 / (np.float32(config.rope_theta) ** (np.arange(0, d, 2, dtype=np.float32) / np.float32(d)))
    inv_freq = inv_freq.astype(np.float32)
    if config.rope_type == "default":
        return inv_freq
    factor, low, high = (
        np.float32(v) for v in (config.rope_factor, config.rope_low_freq_factor, config.rope_high_freq_factor)
    )
    old_len = np.float32(config.rope_original_max_len)
    wavelen = np.float32(2 * math.pi) / inv_freq
    scaled = np.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rotary_embedding(x: jax.Array, positions: jax.Array, theta: float, inv_freq: np.ndarray | None = None) -> jax.Array:
    """Rotate `x [batch, len, heads, head_dim]` by `positions [batch, len]`.

    Hugging Face's layout (rotate_half: the first and second halves of head_dim form the
    pairs), so LlamaForCausalLM q/k weights load without a permutation. `inv_freq`
    `[head_dim // 2]` (from `rope_inv_freq`) overrides the default theta^(-2i/d) schedule.
    """
    d = x.shape[-1]
    if inv_freq is None:
        inv_freq = 1.0 / (theta ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq, jnp.float32)  # [b, l, d/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]  # [b, l, 1, d]
    cos, sin = jnp.cos(emb).astype(x.dtype), jnp.sin(emb).astype(x.dtype)
    x1, x2 = jnp.split(x, 2, axis=-1)
    rotated = jnp.concatenate([-x2, x1], axis=-1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    """Grouped-query self-attention with rotary positions and an optional KV cache."""

    config: LlamaConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, segment_ids: jax.Array) -> jax.Array:
        """x `[batch, len, embed]` -> `[batch, len, embed]` in the compute dtype."""
        cfg = self.config
        h, kvh, hd, d = cfg.n_heads, cfg.num_kv_heads, cfg.dims_per_head, cfg.d_model
        init = nn.initializers.normal(cfg.initializer_range)
        dt = cfg.compute_dtype
        wq = _param(self, "q_proj", (d, h, hd), ("embed", "heads", "head_dim"), init)
        wk = _param(self, "k_proj", (d, kvh, hd), ("embed", "kv_heads", "head_dim"), init)
        wv = _param(self, "v_proj", (d, kvh, hd), ("embed", "kv_heads", "head_dim"), init)
        wo = _param(self, "o_proj", (h, hd, d), ("heads", "head_dim", "embed"), init)

        q = checkpoint_name(jnp.einsum("bld,dhk->blhk", x, wq.astype(dt)), "query_proj")
        k = checkpoint_name(jnp.einsum("bld,dhk->blhk", x, wk.astype(dt)), "key_proj")
        v = checkpoint_name(jnp.einsum("bld,dhk->blhk", x, wv.astype(dt)), "value_proj")
        if cfg.qkv_bias:  # Qwen2: biases on q/k/v only
            zeros = nn.initializers.zeros
            q = q + _param(self, "q_bias", (h, hd), ("heads", "head_dim"), zeros).astype(dt)
            k = k + _param(self, "k_bias", (kvh, hd), ("kv_heads", "head_dim"), zeros).astype(dt)
            v = v + _param(self, "v_bias", (kvh, hd), ("kv_heads", "head_dim"), zeros).astype(dt)
        q = nn.with_logical_constraint(q, ("batch", "length", "act_heads", "head_dim"))
        k = nn.with_logical_constraint(k, ("batch", "length", "act_kv_heads", "head_dim"))
        v = nn.with_logical_constraint(v, ("batch", "length", "act_kv_heads", "head_dim"))
        inv_freq = rope_inv_freq(cfg)
        q = rotary_embedding(q, positions, cfg.rope_theta, inv_freq)
        k = rotary_embedding(k, positions, cfg.rope_theta, inv_freq)

        if self.decode:
            k, v, kv_segment_ids, q_index, kv_index = self._update_cache(k, v, segment_ids)
            impl = "xla"
        else:
            idx = jnp.broadcast_to(jnp.arange(x.shape[1], dtype=jnp.int32), segment_ids.shape)
            kv_segment_ids, q_index, kv_index, impl = segment_ids, idx, idx, cfg.attention_impl
        out = dot_product_attention(
            q,
            k,
            v,
            q_segment_ids=segment_ids,
            kv_segment_ids=kv_segment_ids,
            q_index=q_index,
            kv_index=kv_index,
            impl=impl,
            sliding_window=cfg.sliding_window,
        )
        out = nn.with_logical_constraint(out, ("batch", "length", "act_heads", "head_dim"))
        out = jnp.einsum("blhk,hkd->bld", out, wo.astype(dt))
        return checkpoint_name(out, "out_proj")

    def _update_cache(self, k: jax.Array, v: jax.Array, segment_ids: jax.Array):
        """Write this call's k/v at the cache index; return the whole cache for attention.

        The cache is `[batch, cache_len, kv_heads, head_dim]`; all rows share one write index
        (prompts are left-padded with segment id 0, which real tokens never attend to).
        `cache_len` is the length of the cache passed in (evaluation.decoding sizes it to the
        request: prompt + new tokens, bucketed); a cache created here by `init` has `max_len` slots.
        """
        cfg = self.config
        b, l = segment_ids.shape
        shape = (b, cfg.max_len, cfg.num_kv_heads, cfg.dims_per_head)
        cached_k = self.variable("cache", "cached_key", jnp.zeros, shape, k.dtype)
        cached_v = self.variable("cache", "cached_value", jnp.zeros, shape, v.dtype)
        cached_seg = self.variable("cache", "cached_segment_ids", jnp.zeros, (b, cfg.max_len), jnp.int32)
        index = self.variable("cache", "cache_index", lambda: jnp.array(0, jnp.int32))
        cache_len = cached_k.value.shape[1]
        i = index.value
        cached_k.value = jax.lax.dynamic_update_slice(cached_k.value, k, (0, i, 0, 0))
        cached_v.value = jax.lax.dynamic_update_slice(cached_v.value, v, (0, i, 0, 0))
        cached_seg.value = jax.lax.dynamic_update_slice(cached_seg.value, segment_ids, (0, i))
        index.value = i + l
        q_index = jnp.broadcast_to(i + jnp.arange(l, dtype=jnp.int32), (b, l))
        kv_index = jnp.broadcast_to(jnp.arange(cache_len, dtype=jnp.int32), (b, cache_len))
        return cached_k.value, cached_v.value, cached_seg.value, q_index, kv_index


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x)). `[batch, len, embed]` -> same."""

    config: LlamaConfig

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        cfg = self.config
        init = nn.initializers.normal(cfg.initializer_range)
        dt = cfg.compute_dtype
        w_gate = _param(self, "gate_proj", (cfg.d_model, cfg.d_ff), ("embed", "mlp"), init)
        w_up = _param(self, "up_proj", (cfg.d_model, cfg.d_ff), ("embed", "mlp"), init)
        w_down = _param(self, "down_proj", (cfg.d_ff, cfg.d_model), ("mlp", "embed"), init)
        gate = jnp.einsum("bld,df->blf", x, w_gate.astype(dt))
        up = jnp.einsum("bld,df->blf", x, w_up.astype(dt))
        hidden = nn.with_logical_constraint(jax.nn.silu(gate) * up, ("batch", "length", "act_mlp"))
        return jnp.einsum("blf,fd->bld", hidden, w_down.astype(dt))


class DecoderBlock(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)); then + mlp(norm(x))."""

    config: LlamaConfig
    decode: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, positions: jax.Array, segment_ids: jax.Array):
        cfg = self.config
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        h = Attention(cfg, self.decode, name="attention")(
            RMSNorm(cfg, name="attention_norm")(x), positions, segment_ids
        )
        x = x + h
        x = x + MLP(cfg, name="mlp")(RMSNorm(cfg, name="mlp_norm")(x))
        x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
        return x
