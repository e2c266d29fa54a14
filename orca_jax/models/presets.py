"""Named model presets: the LLaMA sizes Orca uses and tiny ones for tests and demos."""

from __future__ import annotations

import gin

from orca_jax.models.config import LlamaConfig

PRESETS: dict[str, LlamaConfig] = {
    # LLaMA-1 13B, Orca's student: vocab 32000 + 1 pad token.
    "llama_13b": LlamaConfig(
        vocab_size=32001, d_model=5120, n_layers=40, n_heads=40, d_ff=13824, max_len=2048, norm_eps=1e-6
    ),
    "llama_7b": LlamaConfig(
        vocab_size=32001, d_model=4096, n_layers=32, n_heads=32, d_ff=11008, max_len=2048, norm_eps=1e-6
    ),
    "llama2_7b": LlamaConfig(
        vocab_size=32001, d_model=4096, n_layers=32, n_heads=32, d_ff=11008, max_len=4096, norm_eps=1e-5
    ),
    "llama2_13b": LlamaConfig(
        vocab_size=32001, d_model=5120, n_layers=40, n_heads=40, d_ff=13824, max_len=4096, norm_eps=1e-5
    ),
    # LLaMA-shaped models for benchmarks (~1B and ~3B parameters).
    "llama_1b": LlamaConfig(
        vocab_size=32001, d_model=2048, n_layers=16, n_heads=16, d_ff=5632, max_len=2048, norm_eps=1e-5
    ),
    "llama_3b": LlamaConfig(
        vocab_size=32001, d_model=3072, n_layers=28, n_heads=24, n_kv_heads=8, d_ff=8192, max_len=2048, norm_eps=1e-5
    ),  # Llama-3.2-3B's shape (head_dim 128)
    # Tiny presets for tests and the CPU demo.
    "tiny": LlamaConfig(
        vocab_size=1024, d_model=64, n_layers=2, n_heads=4, d_ff=176, max_len=256, norm_eps=1e-6, dtype="float32"
    ),
    "tiny_gqa": LlamaConfig(
        vocab_size=1024,
        d_model=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=176,
        max_len=256,
        norm_eps=1e-6,
        dtype="float32",
    ),
    "demo": LlamaConfig(
        vocab_size=1024,
        d_model=128,
        n_layers=4,
        n_heads=4,
        n_kv_heads=2,
        d_ff=352,
        max_len=256,
        norm_eps=1e-6,
        dtype="float32",
    ),
}


def get_preset(name: str, **overrides) -> LlamaConfig:
    """The preset `name`, with any fields replaced by `overrides`."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


@gin.configurable
def model_config(preset: str = "tiny", overrides: dict | None = None) -> LlamaConfig:
    """The gin entry point for the model: `model_config.preset = "llama_13b"` and field overrides,
    e.g. `model_config.overrides = {"remat_policy": "save_dots", "attention_impl": "auto"}`."""
    return get_preset(preset, **(overrides or {}))
