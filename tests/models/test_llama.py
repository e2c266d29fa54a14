"""Model behaviour: packing isolation, rotary restarts, KV cache, remat/scan equivalence."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orca_jax.models import Llama, get_preset


def _init(cfg, length=16, seed=0):
    tokens = jnp.zeros((1, length), jnp.int32)
    return nn.unbox(Llama(cfg).init(jax.random.PRNGKey(seed), tokens))["params"]


def _jit_decode_step(model):
    """model.apply(variables, tokens, positions, segments) -> (logits, {"cache": ...}), compiled
    once for all the equal-shaped steps (an eager call of the scanned model recompiles each time)."""
    return jax.jit(functools.partial(model.apply, mutable=["cache"]))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny", "tiny_gqa"])
def test_packed_logits_equal_each_example_alone(preset):
    cfg = get_preset(preset)
    params = _init(cfg)
    rng = np.random.default_rng(0)
    a, b = rng.integers(3, cfg.vocab_size, 7), rng.integers(3, cfg.vocab_size, 5)
    pad = 4
    tokens = np.concatenate([a, b, np.zeros(pad, int)])[None]
    segments = np.array([[1] * 7 + [2] * 5 + [0] * pad])
    positions = np.array([list(range(7)) + list(range(5)) + [0] * pad])
    packed = Llama(cfg).apply({"params": params}, tokens, positions, segments)
    alone_a = Llama(cfg).apply({"params": params}, a[None])
    alone_b = Llama(cfg).apply({"params": params}, b[None])
    np.testing.assert_allclose(packed[0, :7], alone_a[0], atol=1e-5)
    np.testing.assert_allclose(packed[0, 7:12], alone_b[0], atol=1e-5)


def test_segments_isolate_even_with_same_positions():
    """Changing segment 1's tokens must not change segment 2's logits."""
    cfg = get_preset("tiny")
    params = _init(cfg)
    seg = np.array([[1] * 6 + [2] * 6])
    pos = np.array([list(range(6)) * 2])
    t1 = np.arange(12)[None] + 3
    t2 = t1.copy()
    t2[0, :6] += 100
    out1 = Llama(cfg).apply({"params": params}, t1, pos, seg)
    out2 = Llama(cfg).apply({"params": params}, t2, pos, seg)
    np.testing.assert_array_equal(out1[0, 6:], out2[0, 6:])
    assert np.abs(out1[0, :6] - out2[0, :6]).max() > 1e-3


def _logits_and_grads(cfg, params, tokens):
    """Logits and d(mean logit)/d(params), compiled as one call."""

    def logits(p):
        return Llama(cfg).apply({"params": p}, tokens)

    return jax.jit(lambda p: (logits(p), jax.grad(lambda q: logits(q).mean())(p)))(params)


@pytest.fixture(scope="module")
def unrolled_reference():
    """tiny_gqa unrolled without remat: (config, params, tokens, logits, grads), computed once."""
    base = get_preset("tiny_gqa", remat_policy="none", scan_layers=False)
    params = _init(base)
    tokens = jnp.arange(20)[None] % base.vocab_size
    return (base, params, tokens, *_logits_and_grads(base, params, tokens))


@pytest.mark.slow
@pytest.mark.parametrize("remat_policy", ["none", "full", "save_dots", "save_qkv_out"])
def test_scan_remat_variants_agree(remat_policy, unrolled_reference):
    base, params, tokens, ref, g_ref = unrolled_reference
    stacked = {k: v for k, v in params.items() if not k.startswith("layers_")}
    stacked["layers"] = {
        "block": jax.tree_util.tree_map(
            lambda *xs: jnp.stack(xs), *[params[f"layers_{i}"] for i in range(base.n_layers)]
        )
    }
    out, g = _logits_and_grads(base.replace(scan_layers=True, remat_policy=remat_policy), stacked, tokens)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    np.testing.assert_allclose(g["lm_head"]["kernel"], g_ref["lm_head"]["kernel"], atol=1e-6)
    np.testing.assert_allclose(
        g["layers"]["block"]["mlp"]["up_proj"][1], g_ref["layers_1"]["mlp"]["up_proj"], atol=1e-6
    )


@pytest.mark.slow
def test_kv_cache_matches_full_forward_with_left_padding():
    cfg = get_preset("tiny_gqa", max_len=32)
    params = _init(cfg)
    rng = np.random.default_rng(1)
    real = rng.integers(3, cfg.vocab_size, 9)
    full = Llama(cfg).apply({"params": params}, real[None])
    # Row 0: 3 pads on the left then the 9 real tokens, fed as a 6-token prefill then 1 by 1.
    pads = 3
    tokens = np.concatenate([np.zeros(pads, int), real])[None]
    segs = np.array([[0] * pads + [1] * 9])
    pos = np.array([[0] * pads + list(range(9))])
    model = Llama(cfg, decode=True)
    cache = jax.tree_util.tree_map(jnp.zeros_like, nn.unbox(model.init(jax.random.PRNGKey(0), tokens[:, :1]))["cache"])
    step = _jit_decode_step(model)
    outs = []
    bounds = [(0, 6)] + [(i, i + 1) for i in range(6, tokens.shape[1])]
    for lo, hi in bounds:
        logits, vars_ = step({"params": params, "cache": cache}, tokens[:, lo:hi], pos[:, lo:hi], segs[:, lo:hi])
        cache = vars_["cache"]
        outs.append(logits)
    decoded = jnp.concatenate(outs, axis=1)[0, pads:]
    np.testing.assert_allclose(decoded, full[0], atol=1e-5)


@pytest.mark.slow
def test_bf16_compute_keeps_fp32_params_and_logits():
    cfg = get_preset("tiny", dtype="bfloat16")
    params = _init(cfg)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))
    logits = Llama(cfg).apply({"params": params}, jnp.ones((1, 8), jnp.int32))
    assert logits.dtype == jnp.float32
    ref = Llama(cfg.replace(dtype="float32")).apply({"params": params}, jnp.ones((1, 8), jnp.int32))
    np.testing.assert_allclose(logits, ref, atol=5e-2)


def test_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="n_kv_heads=3 must divide n_heads=4"):
        get_preset("tiny", n_kv_heads=3)
    with pytest.raises(ValueError, match="attention_impl"):
        get_preset("tiny", attention_impl="flash9000")
    with pytest.raises(ValueError, match="unknown model preset"):
        get_preset("llama_99b")


def test_13b_preset_matches_llama_13b():
    cfg = get_preset("llama_13b")
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.vocab_size, cfg.max_len) == (
        40,
        5120,
        40,
        13824,
        32001,
        2048,
    )
    # LLaMA-13B has 13.0B parameters with its 32000-row vocabulary.
    assert abs(cfg.replace(vocab_size=32000).num_params() - 13_015_864_320) < 1e6


def test_tied_head_is_the_embedding_one_parameter():
    cfg = get_preset("tiny", tie_word_embeddings=True)
    params = _init(cfg)
    assert "lm_head" not in params
    assert sum(np.size(x) for x in jax.tree_util.tree_leaves(params)) == cfg.num_params()
    tokens = jnp.arange(8)[None]
    hidden = Llama(cfg).apply({"params": params}, tokens, return_hidden=True)
    np.testing.assert_allclose(
        Llama(cfg).apply({"params": params}, tokens),
        np.einsum("bld,vd->blv", hidden, params["embed"]),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.slow
def test_qkv_bias_params_exist_and_change_the_output():
    cfg = get_preset("tiny_gqa", qkv_bias=True, scan_layers=False)
    params = _init(cfg)
    attn = params["layers_0"]["attention"]
    assert attn["q_bias"].shape == (4, 16) and attn["k_bias"].shape == attn["v_bias"].shape == (2, 16)
    tokens = jnp.arange(8)[None]
    apply = jax.jit(Llama(cfg).apply)  # one compile for both calls
    base = apply({"params": params}, tokens)
    params["layers_0"]["attention"]["k_bias"] = attn["k_bias"] + 1.0
    assert np.abs(apply({"params": params}, tokens) - base).max() > 1e-3


@pytest.mark.slow
def test_sliding_window_kv_cache_matches_full_forward():
    cfg = get_preset("tiny_gqa", max_len=32, sliding_window=4)
    params = _init(cfg)
    real = np.random.default_rng(2).integers(3, cfg.vocab_size, 12)[None]
    full = Llama(cfg).apply({"params": params}, real)
    assert np.abs(full - Llama(cfg.replace(sliding_window=None)).apply({"params": params}, real)).max() > 1e-3
    model = Llama(cfg, decode=True)
    cache = jax.tree_util.tree_map(jnp.zeros_like, nn.unbox(model.init(jax.random.PRNGKey(0), real[:, :1]))["cache"])
    step = _jit_decode_step(model)
    outs = []
    for i in range(12):
        logits, vars_ = step(
            {"params": params, "cache": cache}, real[:, i : i + 1], np.array([[i]]), np.ones((1, 1), np.int32)
        )
        cache = vars_["cache"]
        outs.append(logits)
    np.testing.assert_allclose(jnp.concatenate(outs, axis=1), full, atol=1e-5)


def test_config_rejects_bad_family_fields():
    with pytest.raises(ValueError, match="rope_type"):
        get_preset("tiny", rope_type="yarn")
    with pytest.raises(ValueError, match="sliding_window"):
        get_preset("tiny", sliding_window=0)
    with pytest.raises(ValueError, match="family"):
        get_preset("tiny", family="gemma")
