"""Attention kernels behind one function: causal, segment-masked, grouped-query.

Shapes: q `[batch, q_len, heads, head_dim]`, k/v `[batch, kv_len, kv_heads, head_dim]`.
`q_index`/`kv_index` are slot indices into the sequence (or KV cache) used for causality;
`*_segment_ids` give each packed example its own id (0 = padding): a query attends to a key
only when both carry the same segment id and the key's slot is not after the query's.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # fp32 mask value: exp underflows to exactly 0, never NaN.


def attention_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array,
                   q_index: jax.Array, kv_index: jax.Array) -> jax.Array:
    """Boolean mask `[batch, 1, q_len, kv_len]`: same segment and causal on slot index."""
    same_segment = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
    causal = q_index[:, :, None] >= kv_index[:, None, :]
    return (same_segment & causal)[:, None]


def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Reference attention: fp32 scores and softmax, `[batch, q_len, heads, head_dim]` out in q.dtype."""
    b, lq, h, d = q.shape
    kvh = k.shape[2]
    q = q.reshape(b, lq, kvh, h // kvh, d)
    scores = jnp.einsum("bqkgd,bskd->bkgqs", q, k, preferred_element_type=jnp.float32)
    scores = scores * (d ** -0.5)
    scores = jnp.where(mask[:, :, None], scores, NEG_INF)  # mask [b, 1, q, s] -> [b, 1, 1, q, s]
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgqs,bskd->bqkgd", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(b, lq, h, d).astype(q.dtype)


def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """cuDNN fused attention (GPU) through jax.nn.dot_product_attention with the segment mask."""
    try:
        return jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="cudnn")
    except (NotImplementedError, ValueError, RuntimeError) as e:  # pragma: no cover - GPU only
        raise NotImplementedError(
            "attention_impl='cudnn' could not express the packed-segment mask on this platform "
            f"({type(e).__name__}: {e}); use attention_impl='xla'") from e


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array,
                     q_segment_ids: jax.Array, kv_segment_ids: jax.Array) -> jax.Array:
    """Pallas splash attention (TPU) with causal mask and segment ids; training shapes only."""
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    b, lq, h, d = q.shape
    if k.shape[1] != lq:
        raise NotImplementedError("splash attention is used for training (q_len == kv_len) only")
    mask = sm.MultiHeadMask([sm.CausalMask((lq, lq)) for _ in range(h)])
    kernel = sk.make_splash_mha(mask=mask, head_shards=1, q_seq_shards=1)
    groups = h // k.shape[2]
    # Kernel layout is [heads, length, head_dim] per example; GQA by repeating kv heads.
    q_t = jnp.swapaxes(q * (d ** -0.5), 1, 2)
    k_t = jnp.swapaxes(jnp.repeat(k, groups, axis=2), 1, 2)
    v_t = jnp.swapaxes(jnp.repeat(v, groups, axis=2), 1, 2)
    seg = jax.vmap(sk.SegmentIds)(q_segment_ids, kv_segment_ids)
    out = jax.vmap(kernel)(q_t, k_t, v_t, segment_ids=seg)
    return jnp.swapaxes(out, 1, 2).astype(q.dtype)


def resolve_impl(impl: str) -> str:
    """'auto' -> the platform's fused kernel where one exists, else the reference."""
    if impl != "auto":
        return impl
    return {"gpu": "cudnn", "tpu": "splash"}.get(jax.default_backend(), "xla")


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, *,
                          q_segment_ids: jax.Array, kv_segment_ids: jax.Array,
                          q_index: jax.Array, kv_index: jax.Array, impl: str = "xla") -> jax.Array:
    """Causal, segment-masked grouped-query attention with the kernel `impl`."""
    impl = resolve_impl(impl)
    if impl == "splash" and k.shape[1] == q.shape[1]:
        return splash_attention(q, k, v, q_segment_ids, kv_segment_ids)
    mask = attention_mask(q_segment_ids, kv_segment_ids, q_index, kv_index)
    if impl == "cudnn":
        return cudnn_attention(q, k, v, mask)
    return xla_attention(q, k, v, mask)
