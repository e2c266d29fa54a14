"""Decoding: the KV cache gives exactly the tokens of full recomputation, and a row's output
does not depend on its batch, its padding, or how the mesh shards the batch."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orca_jax import partitioning
from orca_jax.evaluation.decoding import Decoder, Sampling, _generate_cached, cache_length, left_pad, prompt_bucket
from orca_jax.models import Llama, get_preset

EOS, PAD = 2, 0
NEW = 12


def _init(cfg):
    return nn.unbox(Llama(cfg).init(jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32)))["params"]


def _prompts(cfg, lengths=(5, 17, 9, 30, 1, 12, 3)):
    rng = np.random.default_rng(0)
    return [rng.integers(3, cfg.vocab_size, n).tolist() for n in lengths]


@pytest.fixture(scope="module")
def model():
    # Unrolled layers compile about twice as fast on CPU; the scanned model is tested below.
    cfg = get_preset("tiny_gqa", max_len=64, scan_layers=False, remat_policy="none")
    return cfg, _init(cfg), _prompts(cfg)


def _decoder(cfg, params, batch_size=3, **kw):
    kw.setdefault("min_prompt_bucket", 32)  # one prompt bucket: fewer compiles
    return Decoder(cfg, params, batch_size=batch_size, eos_id=kw.pop("eos_id", EOS), pad_id=PAD, **kw)


@pytest.fixture(scope="module")
def greedy_b3(model):
    cfg, params, prompts = model
    return _decoder(cfg, params).generate(prompts, NEW)


def _teacher_forced_argmax(cfg, params, prompts, generated):
    """Argmax of one full forward over prompt + generated tokens, at each generated position."""
    seqs = [p + g for p, g in zip(prompts, generated)]
    length = max(map(len, seqs))
    tokens = np.zeros((len(seqs), length), np.int32)
    segments = np.zeros_like(tokens)
    for i, s in enumerate(seqs):  # right padding (segment 0) does not affect earlier positions
        tokens[i, : len(s)], segments[i, : len(s)] = s, 1
    logits = Llama(cfg).apply({"params": params}, tokens, None, segments)
    best = np.asarray(jnp.argmax(logits, axis=-1))
    return [best[i, len(p) - 1 : len(p) - 1 + len(g)].tolist() for i, (p, g) in enumerate(zip(prompts, generated))]


def test_left_pad_layout():
    tokens, positions, segments = left_pad([[7, 8], [9]], 4, pad_id=0, rows=3)
    np.testing.assert_array_equal(tokens, [[0, 0, 7, 8], [0, 0, 0, 9], [0, 0, 0, 0]])
    np.testing.assert_array_equal(positions, [[0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(segments, [[0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    assert [prompt_bucket(n) for n in (1, 16, 17, 100)] == [16, 16, 32, 128]


@pytest.mark.slow
def test_kv_cache_greedy_equals_full_recomputation(model, greedy_b3):
    cfg, params, prompts = model
    full = _decoder(cfg, params, use_cache=False).generate(prompts, NEW)
    assert greedy_b3.tokens == full.tokens
    assert all(len(t) == NEW for t in greedy_b3.tokens)  # random weights: EOS is never argmax here
    # And each generated token is the argmax of the plain forward pass over what precedes it.
    assert _teacher_forced_argmax(cfg, params, prompts, greedy_b3.tokens) == greedy_b3.tokens


@pytest.mark.slow
def test_kv_cache_with_scanned_layers():
    cfg = get_preset("tiny", max_len=64)  # scan_layers=True: the cache has a leading layers axis
    params, prompts = _init(cfg), _prompts(cfg, (4, 11, 7))
    cached = _decoder(cfg, params).generate(prompts, 8)
    assert cached.tokens == _decoder(cfg, params, use_cache=False).generate(prompts, 8).tokens
    unrolled = _decoder(cfg, params, unroll_layers=True)
    assert not unrolled.config.scan_layers and "layers_1" in unrolled.params
    assert unrolled.generate(prompts, 8).tokens == cached.tokens
    assert _teacher_forced_argmax(cfg, params, prompts, cached.tokens) == cached.tokens


@pytest.mark.slow
def test_outputs_do_not_depend_on_batch_or_padding(model, greedy_b3):
    cfg, params, prompts = model
    # Batches of one, with their own (smaller) prompt buckets: other padding, other batch.
    one = _decoder(cfg, params, batch_size=1, min_prompt_bucket=16).generate(prompts, NEW)
    assert one.tokens == greedy_b3.tokens
    # Reversed order: every batch of 3 mixes other lengths than before.
    reordered = _decoder(cfg, params).generate(prompts[::-1], NEW)
    assert reordered.tokens[::-1] == greedy_b3.tokens


def test_eos_stops_a_row_and_the_rest_continue(model, greedy_b3):
    cfg, params, prompts = model
    row = greedy_b3.tokens[0]
    eos = next(t for i, t in enumerate(row) if i >= 3 and t not in row[:i])
    out = _decoder(cfg, params, eos_id=eos).generate(prompts[:3], NEW)
    cut = row.index(eos)
    assert out.tokens[0] == row[:cut] and out.finished[0]
    for k in (1, 2):
        expected = greedy_b3.tokens[k]
        expected = expected[: expected.index(eos)] if eos in expected else expected
        assert out.tokens[k] == expected


def test_long_prompts_are_truncated_from_the_left(model, greedy_b3):
    cfg, params, prompts = model
    limit = cfg.max_len - NEW
    long_prompt = list(range(3, 3 + 20)) + prompts[3] * 2  # 80 tokens > 52
    dec = _decoder(cfg, params)
    out = dec.generate([long_prompt, prompts[0]], NEW)
    assert out.truncated == [len(long_prompt) - limit, 0]
    assert out.tokens[0] == dec.generate([long_prompt[-limit:]], NEW).tokens[0]
    assert out.tokens[1] == greedy_b3.tokens[0]


@pytest.mark.slow
def test_seeded_sampling_is_reproducible_and_batch_independent(model, greedy_b3):
    cfg, params, prompts = model
    sampling = Sampling(temperature=1.0, top_p=0.9, seed=3)
    ids = list(range(100, 100 + len(prompts)))
    dec = _decoder(cfg, params)
    a = dec.generate(prompts, NEW, sampling, ids)
    assert a.tokens != greedy_b3.tokens
    # The same examples in other batches (reversed order) sample the same tokens.
    assert dec.generate(prompts[::-1], NEW, sampling, ids[::-1]).tokens[::-1] == a.tokens
    assert dec.generate(prompts, NEW, Sampling(1.0, 0.9, 4), ids).tokens != a.tokens
    # top_p -> 0 keeps only the most likely token: greedy.
    assert dec.generate(prompts, NEW, Sampling(1.0, 1e-6, 3), ids).tokens == greedy_b3.tokens


@pytest.mark.slow
def test_option_loglik_equals_full_forward(model):
    cfg, params, prompts = model
    conts = [[5], [6, 7], [8, 9, 10], [11]]
    ps = [prompts[0], prompts[0], prompts[3], prompts[4]]
    got = _decoder(cfg, params).score(ps, conts)
    seqs = [p + c for p, c in zip(ps, conts)]
    tokens = np.zeros((len(seqs), max(map(len, seqs))), np.int32)
    segments = np.zeros_like(tokens)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)], segments[i, : len(s)] = s, 1
    logp = jax.nn.log_softmax(Llama(cfg).apply({"params": params}, tokens, None, segments), axis=-1)
    for i, (p, c) in enumerate(zip(ps, conts)):
        want = sum(float(logp[i, len(p) - 1 + k, t]) for k, t in enumerate(c))
        assert got[i] == pytest.approx(want, abs=1e-4)


@pytest.mark.slow
def test_sharded_decoding_matches_single_device(model, greedy_b3):
    cfg, params, prompts = model
    mesh = partitioning.make_mesh((2, -1, 1))  # 8 simulated devices: data 2 x fsdp 4
    dec = _decoder(cfg, params, batch_size=8, mesh=mesh)
    assert dec.params["lm_head"]["kernel"].sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert dec.generate(prompts, NEW).tokens == greedy_b3.tokens
    with pytest.raises(ValueError, match="not divisible"):
        _decoder(cfg, params, batch_size=3, mesh=mesh)


def test_a_splash_trained_model_decodes_and_scores_with_the_xla_kernel(model, greedy_b3):
    """Checkpoints record attention_impl='splash' (the pod configs); the parameter shardings and
    the decoder trace the xla kernel (splash rejects short prompt buckets and the 1-token init)."""
    cfg, params, prompts = model
    splash = cfg.replace(attention_impl="splash")
    dec = _decoder(splash, params, batch_size=8, mesh=partitioning.make_mesh((2, -1, 1)))
    assert dec.config == cfg
    assert dec.generate(prompts, NEW).tokens == greedy_b3.tokens
    ps, conts = [prompts[0], prompts[3]], [[5], [6, 7]]
    assert _decoder(splash, params).score(ps, conts) == _decoder(cfg, params).score(ps, conts)


# ----------------------------------------------------------------------------- KV cache size


def test_kv_cache_is_sized_to_the_request_not_the_model():
    """A model with max_len 4096 decodes with a cache of prompt bucket + new tokens (rounded to 64)
    slots, and gives the tokens of the same model with max_len 64."""
    cfg = get_preset("tiny_gqa", max_len=4096, scan_layers=False, remat_policy="none")
    params, prompts = _init(cfg), _prompts(cfg, (5, 17, 9))
    assert [cache_length(p, n) for p, n in ((32, 12), (32, 32), (32, 33), (128, 128))] == [64, 64, 128, 256]
    dec = _decoder(cfg, params)
    out = dec.generate(prompts, NEW)
    assert out.tokens == _decoder(cfg.replace(max_len=64), params).generate(prompts, NEW).tokens
    tokens, positions, segments = left_pad(prompts, 32, PAD, 3)
    args = (
        params,
        tokens,
        positions,
        segments,
        np.zeros((3, 2), np.uint32),
        np.ones(3, bool),
        np.int32(EOS),
        np.int32(PAD),
        np.float32(1.0),
        np.float32(1.0),
    )
    hlo = dec._jit(_generate_cached, max_new_tokens=NEW, greedy=True).lower(*args).as_text()
    kv = f"3x{cache_length(32, NEW)}x{cfg.num_kv_heads}x{cfg.dims_per_head}xf32"  # [batch, slots, kv, hd]
    assert kv in hlo and "4096" not in hlo


# ----------------------------------------------------------------------------- a real model


SMOLLM2_PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):\n",
    "Question: If a train travels 60 miles in 1.5 hours, what is its average speed?\nAnswer:",
    "<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.mark.torch
def test_smollm2_greedy_tokens_equal_transformers_generate(smollm2_hf_dir):
    """SmolLM2-135M-Instruct, 4 prompts of different lengths, 64 new tokens each (EOS off on both
    sides): the KV-cache decoder gives exactly transformers' greedy tokens."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from orca_jax.convert import import_hf

    hf_dir, new = str(smollm2_hf_dir), 64
    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    prompts = [tokenizer(t)["input_ids"] for t in SMOLLM2_PROMPTS]
    params, cfg = import_hf(hf_dir, config_overrides={"dtype": "float32"})
    ours = Decoder(cfg, params, batch_size=4, eos_id=-1, pad_id=tokenizer.pad_token_id).generate(prompts, new)

    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None
    tokenizer.padding_side = "left"
    batch = tokenizer(SMOLLM2_PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=new, min_new_tokens=new)
    theirs = out[:, batch["input_ids"].shape[1] :].tolist()
    assert [len(t) for t in ours.tokens] == [new] * 4
    assert ours.tokens == theirs
