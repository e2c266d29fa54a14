"""Attention kernels behind one function: causal, segment-masked, grouped-query.

Shapes: q `[batch, q_len, heads, head_dim]`, k/v `[batch, kv_len, kv_heads, head_dim]`.
`q_index`/`kv_index` are slot indices into the sequence (or KV cache) used for causality;
`*_segment_ids` give each packed example its own id (0 = padding): a query attends to a key
only when both carry the same segment id and the key's slot is not after the query's.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

NEG_INF = -1e30  # fp32 mask value: exp underflows to exactly 0, never NaN.


def attention_mask(
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    q_index: jax.Array,
    kv_index: jax.Array,
    sliding_window: int | None = None,
) -> jax.Array:
    """Boolean mask `[batch, 1, q_len, kv_len]`: same segment and causal on slot index.

    With `sliding_window` (Mistral), also key slot > query slot - sliding_window, as transformers'
    `sliding_window_overlay`. Slots of one segment are contiguous (packing, left-padded KV cache),
    so the slot distance is the token distance.
    """
    same_segment = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
    causal = q_index[:, :, None] >= kv_index[:, None, :]
    mask = same_segment & causal
    if sliding_window is not None:
        mask &= kv_index[:, None, :] > q_index[:, :, None] - sliding_window
    return mask[:, None]


def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Reference attention: fp32 scores and softmax, `[batch, q_len, heads, head_dim]` out in q.dtype."""
    b, lq, h, d = q.shape
    kvh = k.shape[2]
    q = q.reshape(b, lq, kvh, h // kvh, d)
    scores = jnp.einsum("bqkgd,bskd->bkgqs", q, k, preferred_element_type=jnp.float32)
    scores = scores * (d**-0.5)
    scores = jnp.where(mask[:, :, None], scores, NEG_INF)  # mask [b, 1, q, s] -> [b, 1, 1, q, s]
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgqs,bskd->bqkgd", probs, v, preferred_element_type=jnp.float32)
    return out.reshape(b, lq, h, d).astype(q.dtype)


def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """cuDNN fused attention (GPU) via jax.nn.dot_product_attention with the segment mask.

    The block-diagonal causal mask goes in as `mask`; `is_causal` is also set for
    training shapes so cuDNN can skip the blocks above the diagonal.
    """
    try:
        return jax.nn.dot_product_attention(
            q, k, v, mask=mask, is_causal=q.shape[1] == k.shape[1], implementation="cudnn"
        )
    except (NotImplementedError, ValueError, RuntimeError) as e:
        raise NotImplementedError(
            "attention_impl='cudnn' could not express the packed-segment mask on this platform "
            f"({type(e).__name__}: {e}); use attention_impl='xla'"
        ) from e


def _target_platform() -> str:
    """Platform of the active mesh's devices (what the computation is compiled for), else the
    default backend."""
    mesh = jax.sharding.get_abstract_mesh()
    device = None if mesh.empty else getattr(mesh, "abstract_device", None)
    return getattr(device, "platform", None) or jax.default_backend()


def splash_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    interpret: bool = False,
) -> jax.Array:
    """Pallas splash attention (TPU) with a causal mask and segment ids; training shapes only.

    Under a mesh (partitioning.mesh_context) the kernel runs in shard_map, as XLA cannot
    partition a Mosaic kernel: rows split over the mesh axes of logical 'batch', heads over
    those of 'act_heads' (from flax's active logical axis rules); the length is not split.
    `interpret=True` runs the kernel in the Pallas interpreter (any platform; for tests).
    """
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
    from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

    b, length, h, d = q.shape
    platform = _target_platform()
    if not interpret and platform != "tpu":
        raise NotImplementedError(
            f"attention_impl='splash' needs a TPU (the computation targets "
            f"{platform!r}); use attention_impl='xla' or 'auto'"
        )
    block = min(512, length)
    if length % block or length % 128:
        raise NotImplementedError(f"splash attention needs a length divisible by 128, got {length}")
    sizes = sk.BlockSizes(
        block_q=block,
        block_kv=block,
        block_kv_compute=block,
        block_q_dkv=block,
        block_kv_dkv=block,
        block_kv_dkv_compute=block,
        block_q_dq=block,
        block_kv_dq=block,
    )
    # GQA by repeating kv heads before sharding, so that k/v heads shard exactly as q heads do.
    groups = h // k.shape[2]
    k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)

    def attend(q, k, v, q_segment_ids, kv_segment_ids):
        # This shard's heads; the kernel's layout is [heads, length, head_dim] per example.
        mask = sm.MultiHeadMask([sm.CausalMask((length, length)) for _ in range(q.shape[2])])
        kernel = sk.make_splash_mha(mask=mask, head_shards=1, q_seq_shards=1, block_sizes=sizes, interpret=interpret)
        q_t, k_t, v_t = (jnp.swapaxes(x, 1, 2) for x in (q * (d**-0.5), k, v))
        out = jax.vmap(lambda q_, k_, v_, qs, ks: kernel(q_, k_, v_, segment_ids=sk.SegmentIds(qs, ks)))(
            q_t, k_t, v_t, q_segment_ids, kv_segment_ids
        )
        return jnp.swapaxes(out, 1, 2)

    if not jax.sharding.get_abstract_mesh().empty:
        batch_axes, _, head_axes, _ = nn.logical_to_mesh_axes(("batch", "length", "act_heads", "head_dim"))
        qkv, segments = P(batch_axes, None, head_axes, None), P(batch_axes, None)
        attend = jax.shard_map(attend, in_specs=(qkv, qkv, qkv, segments, segments), out_specs=qkv, check_vma=False)
    return attend(q, k, v, q_segment_ids, kv_segment_ids).astype(q.dtype)


def resolve_impl(impl: str) -> str:
    """'auto' -> the platform's fused kernel where one exists, else the reference."""
    if impl != "auto":
        return impl
    return {"gpu": "cudnn", "tpu": "splash"}.get(jax.default_backend(), "xla")


def dot_product_attention(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    *,
    q_segment_ids: jax.Array,
    kv_segment_ids: jax.Array,
    q_index: jax.Array,
    kv_index: jax.Array,
    impl: str = "xla",
    sliding_window: int | None = None,
) -> jax.Array:
    """Causal, segment-masked grouped-query attention with the kernel `impl`.

    `sliding_window` (Mistral) limits each query to the last `sliding_window` slots; the splash
    kernel does not implement it and refuses sequences longer than the window.
    """
    impl = resolve_impl(impl)
    if impl == "splash":
        if sliding_window is not None and k.shape[1] > sliding_window:
            raise NotImplementedError(
                f"attention_impl='splash' does not implement sliding_window={sliding_window} and the "
                f"sequence ({k.shape[1]} slots) exceeds it; use attention_impl='xla'"
            )
        return splash_attention(q, k, v, q_segment_ids, kv_segment_ids)
    mask = attention_mask(q_segment_ids, kv_segment_ids, q_index, kv_index, sliding_window)
    if impl == "cudnn":
        return cudnn_attention(q, k, v, mask)
    return xla_attention(q, k, v, mask)
