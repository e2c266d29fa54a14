"""Attention kernels: the mask, the reference kernel, and any fused path that runs on CPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orca_jax.models import attention


def _qkv(b=2, l=12, h=4, kvh=2, d=8, seed=0):
    ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    return (
        jax.random.normal(ks[0], (b, l, h, d)),
        jax.random.normal(ks[1], (b, l, kvh, d)),
        jax.random.normal(ks[2], (b, l, kvh, d)),
    )


def test_mask_is_block_diagonal_causal():
    seg = jnp.array([[1, 1, 2, 2, 2, 0]])
    idx = jnp.arange(6)[None]
    m = np.asarray(attention.attention_mask(seg, seg, idx, idx))[0, 0]
    expected = np.array(
        [
            [1, 0, 0, 0, 0, 0],
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],
            [0, 0, 1, 1, 1, 0],
            [0, 0, 0, 0, 0, 1],
        ],
        bool,
    )
    np.testing.assert_array_equal(m, expected)


@pytest.mark.slow
def test_reference_matches_naive_per_head_softmax():
    q, k, v = _qkv()
    seg = jnp.array([[1] * 5 + [2] * 7, [1] * 12])
    idx = jnp.broadcast_to(jnp.arange(12), (2, 12))
    out = attention.dot_product_attention(
        q, k, v, q_segment_ids=seg, kv_segment_ids=seg, q_index=idx, kv_index=idx, impl="xla"
    )
    mask = np.asarray(attention.attention_mask(seg, seg, idx, idx))[:, 0]
    kk, vv = np.repeat(np.asarray(k), 2, axis=2), np.repeat(np.asarray(v), 2, axis=2)
    s = np.einsum("bqhd,bkhd->bhqk", np.asarray(q), kk) / np.sqrt(8)
    s = np.where(mask[:, None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    ref = np.einsum("bhqk,bkhd->bqhd", p, vv)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_jax_nn_xla_path_agrees_with_reference():
    """jax.nn.dot_product_attention (the API behind the cuDNN path) with our mask, on CPU."""
    q, k, v = _qkv()
    seg = jnp.array([[1] * 5 + [2] * 7, [1] * 10 + [0] * 2])
    idx = jnp.broadcast_to(jnp.arange(12), (2, 12))
    mask = attention.attention_mask(seg, seg, idx, idx)
    ref = attention.xla_attention(q, k, v, mask)
    out = jax.nn.dot_product_attention(q, k, v, mask=mask, implementation="xla")
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_auto_resolves_to_reference_on_cpu():
    assert attention.resolve_impl("auto") == (
        "xla" if jax.default_backend() == "cpu" else attention.resolve_impl("auto")
    )
    assert attention.resolve_impl("cudnn") == "cudnn"


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the refusal off-GPU")
def test_cudnn_refuses_clearly_off_gpu():
    q, k, v = _qkv()
    seg = jnp.ones((2, 12), jnp.int32)
    idx = jnp.broadcast_to(jnp.arange(12), (2, 12))
    with pytest.raises(NotImplementedError, match="cudnn"):
        attention.dot_product_attention(
            q, k, v, q_segment_ids=seg, kv_segment_ids=seg, q_index=idx, kv_index=idx, impl="cudnn"
        )


def test_splash_refuses_off_tpu():
    if jax.default_backend() == "tpu":
        pytest.skip("checks the refusal off-TPU")
    q, k, v = _qkv(l=128)
    seg = jnp.ones((2, 128), jnp.int32)
    idx = jnp.broadcast_to(jnp.arange(128), (2, 128))
    with pytest.raises(NotImplementedError, match="needs a TPU"):
        attention.dot_product_attention(
            q, k, v, q_segment_ids=seg, kv_segment_ids=seg, q_index=idx, kv_index=idx, impl="splash"
        )


@pytest.mark.slow
def test_splash_kernel_matches_reference_outputs_and_grads():
    """The TPU splash kernel (run in the Pallas interpreter) honours packing and causality."""
    b, length, h, kvh, d = 1, 256, 2, 1, 128
    q, k, v = _qkv(b, length, h, kvh, d, seed=3)
    seg = jnp.array([[1] * 100 + [2] * 120 + [0] * 36])
    idx = jnp.arange(length)[None]
    mask = attention.attention_mask(seg, seg, idx, idx)

    def ref(q, k, v):
        return attention.xla_attention(q, k, v, mask)

    def splash(q, k, v):
        return attention.splash_attention(q, k, v, seg, seg, interpret=True)

    np.testing.assert_allclose(splash(q, k, v), ref(q, k, v), atol=2e-5)
    ct = jax.random.normal(jax.random.PRNGKey(9), q.shape)
    g_ref = jax.grad(lambda *a: jnp.sum(ref(*a) * ct), argnums=(0, 1, 2))(q, k, v)
    g_splash = jax.grad(lambda *a: jnp.sum(splash(*a) * ct), argnums=(0, 1, 2))(q, k, v)
    for a, r in zip(g_splash, g_ref):
        np.testing.assert_allclose(a, r, atol=1e-4)


@pytest.mark.slow
def test_splash_kernel_on_a_mesh_matches_reference_outputs_and_grads():
    """Under a (2, 2, 2) mesh the Mosaic kernel runs in shard_map (XLA cannot partition it):
    rows split over (data, fsdp), heads over tensor, kv heads repeated before the split."""
    from orca_jax import partitioning

    b, length, h, kvh, d = 4, 256, 2, 1, 128
    q, k, v = _qkv(b, length, h, kvh, d, seed=4)
    seg = jnp.array([[1] * 100 + [2] * 120 + [0] * 36, [1] * 256, [3] * 200 + [0] * 56, [1] * 128 + [2] * 128])
    idx = jnp.broadcast_to(jnp.arange(length), (b, length))
    mask = attention.attention_mask(seg, seg, idx, idx)
    ct = jax.random.normal(jax.random.PRNGKey(9), q.shape)

    def value_and_grads(fn):
        loss = lambda *a: jnp.sum(fn(*a) * ct)  # noqa: E731
        return jax.jit(lambda *a: (fn(*a), jax.grad(loss, argnums=(0, 1, 2))(*a)))(q, k, v)

    mesh = partitioning.make_mesh((2, 2, 2))
    with partitioning.mesh_context(mesh, partitioning.logical_axis_rules()):
        jaxpr = str(jax.make_jaxpr(lambda *a: attention.splash_attention(*a, seg, seg, interpret=True))(q, k, v))
        out, grads = value_and_grads(lambda *a: attention.splash_attention(*a, seg, seg, interpret=True))
    assert "shard_map" in jaxpr
    ref_out, ref_grads = value_and_grads(lambda *a: attention.xla_attention(*a, mask))
    np.testing.assert_allclose(out, ref_out, atol=2e-5)
    for a, r in zip(grads, ref_grads):
        np.testing.assert_allclose(a, r, atol=1e-4)


def test_sliding_window_mask_keeps_the_last_window_slots():
    seg = jnp.ones((1, 6), jnp.int32)
    idx = jnp.arange(6)[None]
    mask = np.asarray(attention.attention_mask(seg, seg, idx, idx, sliding_window=3))[0, 0]
    # Query q sees keys q-2..q (transformers: kv_idx > q_idx - sliding_window).
    want = np.array([[0 <= q - k < 3 for k in range(6)] for q in range(6)])
    np.testing.assert_array_equal(mask, want)
    full = np.asarray(attention.attention_mask(seg, seg, idx, idx))[0, 0]
    np.testing.assert_array_equal(full, np.tril(np.ones((6, 6), bool)))


def test_splash_refuses_a_sequence_longer_than_the_sliding_window():
    q = jnp.zeros((1, 128, 2, 8))
    seg = jnp.ones((1, 128), jnp.int32)
    idx = jnp.arange(128)[None]
    with pytest.raises(NotImplementedError, match="sliding_window=64"):
        attention.dot_product_attention(
            q, q, q, q_segment_ids=seg, kv_segment_ids=seg, q_index=idx, kv_index=idx, impl="splash", sliding_window=64
        )
