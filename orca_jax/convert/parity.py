"""Logit parity between transformers' Llama/Mistral/Qwen2ForCausalLM and orca-jax after conversion.

Used by tests/convert and benchmarks/hf_parity_sweep.py. Needs torch and transformers
(the `[test]`/`[convert]` extras), imported here only; the converter itself never imports them.
"""

from __future__ import annotations

import os

import numpy as np

from orca_jax.convert import hf_llama


def random_hf_llama(seed: int = 0, model_type: str = "llama", **hf_config_kwargs):
    """A randomly initialised fp32 eager-attention transformers causal LM of `model_type`
    (llama, mistral, qwen2) in eval mode.

    Weights are redrawn so that logits are O(1) (HF's default init, std 0.02, makes them ~0 and
    a parity check toothless): linear weights ~ N(0, 1/fan_in), embedding N(0, 1) (N(0, 1/hidden)
    when tied to the output head), biases N(0, 0.5^2), RMSNorm scales ~ 1 + N(0, 0.1^2).
    """
    import torch
    import transformers

    config = transformers.AutoConfig.for_model(model_type, **hf_config_kwargs)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).to(torch.float32).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed_tokens" in name:  # tied: also the output head, so keep logits O(1)
                p.copy_(torch.randn_like(p) / (p.shape[1] ** 0.5 if config.tie_word_embeddings else 1.0))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
    return model


def jax_leaves(tree) -> list:
    """The array leaves of a (params) pytree."""
    import jax

    return jax.tree_util.tree_leaves(tree)


def hf_logits(model, tokens: np.ndarray) -> np.ndarray:
    """fp32 logits `[batch, len, vocab]` of a transformers causal LM on int tokens `[batch, len]`."""
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(tokens, dtype=torch.long)).logits.float().numpy()


def orca_logits(params: dict, config, tokens: np.ndarray) -> np.ndarray:
    """fp32 logits of orca-jax's Llama (computed in float32) on int tokens `[batch, len]`."""
    import jax.numpy as jnp

    from orca_jax.models import Llama

    config = config.replace(dtype="float32", remat_policy="none", attention_impl="xla")
    return np.asarray(Llama(config).apply({"params": params}, jnp.asarray(tokens, jnp.int32)))


def hf_parity(
    work_dir: str,
    *,
    scan_layers: bool = True,
    seed: int = 0,
    batch: int = 2,
    seq_len: int = 12,
    max_shard_size: str | None = None,
    export: bool = True,
    model_type: str = "llama",
    ablate: dict | None = None,
    **hf_config_kwargs,
) -> dict[str, float]:
    """Import a random HF model of `model_type` built from `hf_config_kwargs`; compare logits with
    transformers.

    Saves the model under `work_dir/hf` (sharded when `max_shard_size` is given), imports it with
    `scan_layers`, and returns `{"import": max |ours - HF|, "logit_scale": max |HF|}`; with
    `export`, also writes our params back to `work_dir/export`, reloads them with
    `AutoModelForCausalLM.from_pretrained` (which must find every tensor and no extra one) and adds
    `{"export": max |reloaded HF - original HF|}`. Also returned: `"params"` (our parameter count)
    and `"hf_params"` (transformers'; tied weights counted once), and with `ablate` (LlamaConfig
    fields, e.g. `{"sliding_window": None}`) `"ablated"`: max |ours with those fields replaced - HF|,
    which shows that the feature matters for these inputs.
    """
    import transformers

    model = random_hf_llama(seed, model_type, **hf_config_kwargs)
    hf_dir = os.path.join(work_dir, "hf")
    save_kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(hf_dir, **save_kwargs)
    tokens = np.random.default_rng(seed).integers(0, model.config.vocab_size, (batch, seq_len))
    want = hf_logits(model, tokens)

    params, config = hf_llama.import_hf(hf_dir, scan_layers=scan_layers)
    result = {
        "logit_scale": float(np.abs(want).max()),
        "import": float(np.abs(orca_logits(params, config, tokens) - want).max()),
        "params": int(sum(np.size(x) for x in jax_leaves(params))),
        "hf_params": int(model.num_parameters()),
    }
    if ablate:
        result["ablated"] = float(np.abs(orca_logits(params, config.replace(**ablate), tokens) - want).max())
    if export:
        out = os.path.join(work_dir, "export")
        hf_llama.export_hf(params, config, out, dtype="float32", base_hf_config=hf_llama.read_hf_config(hf_dir))
        reloaded, info = transformers.AutoModelForCausalLM.from_pretrained(
            out, attn_implementation="eager", output_loading_info=True
        )
        if type(reloaded) is not type(model):
            raise AssertionError(f"exported {type(reloaded).__name__}, imported {type(model).__name__}")
        bad = {k: v for k, v in info.items() if v}
        if bad:
            raise AssertionError(f"exported checkpoint did not load cleanly: {bad}")
        result["export"] = float(np.abs(hf_logits(reloaded.eval(), tokens) - want).max())
    return result
