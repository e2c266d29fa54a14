"""LLaMA decoder configuration: one frozen dataclass, every field documented."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

ATTENTION_IMPLS = ("xla", "cudnn", "splash", "auto")
REMAT_POLICIES = ("none", "full", "save_dots", "save_qkv_out", "save_dots_no_batch")


@dataclasses.dataclass(frozen=True)
class LlamaConfig:
    """Shape and numerics of a LLaMA-style decoder."""

    vocab_size: int = 32001
    """Embedding rows and output logits: LLaMA's 32000 SentencePiece pieces + 1 pad token."""
    d_model: int = 5120
    """Width of the residual stream (`embed`)."""
    n_layers: int = 40
    """Number of decoder blocks."""
    n_heads: int = 40
    """Query heads."""
    n_kv_heads: int | None = None
    """Key/value heads for grouped-query attention; None means n_heads (plain multi-head)."""
    head_dim: int | None = None
    """Per-head width; None means d_model // n_heads."""
    d_ff: int = 13824
    """Hidden width of the SwiGLU MLP (`mlp`)."""
    max_len: int = 2048
    """Longest sequence the model is trained on (tokens)."""
    rope_theta: float = 10000.0
    """Base of the rotary embedding frequencies."""
    norm_eps: float = 1e-6
    """RMSNorm epsilon (LLaMA-1: 1e-6, LLaMA-2: 1e-5)."""
    param_dtype: str = "float32"
    """Storage dtype of the parameters (the fp32 master weights)."""
    dtype: str = "bfloat16"
    """Compute dtype of activations and matmul inputs; logits and softmax stay fp32."""
    scan_layers: bool = True
    """Stack the blocks under nn.scan (one compiled block, params with a leading `layers` axis)."""
    remat_policy: str = "full"
    """Activation checkpointing per block: none | full | save_dots | save_qkv_out | save_dots_no_batch."""
    attention_impl: str = "xla"
    """Attention kernel: xla (reference, any platform) | cudnn (GPU) | splash (TPU) | auto."""
    initializer_range: float = 0.02
    """Std of the normal initialiser for weights (as Hugging Face's `initializer_range`)."""

    def __post_init__(self):
        if self.d_model % self.n_heads and self.head_dim is None:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set head_dim")
        if self.num_kv_heads > self.n_heads or self.n_heads % self.num_kv_heads:
            raise ValueError(f"n_kv_heads={self.num_kv_heads} must divide n_heads={self.n_heads}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r}; expected one of {ATTENTION_IMPLS}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy={self.remat_policy!r}; expected one of {REMAT_POLICIES}")
        if self.dims_per_head % 2:
            raise ValueError(f"head_dim={self.dims_per_head} must be even for rotary embeddings")

    @property
    def num_kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def dims_per_head(self) -> int:
        return self.head_dim or self.d_model // self.n_heads

    @property
    def compute_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.dtype)

    @property
    def weights_dtype(self) -> jnp.dtype:
        return jnp.dtype(self.param_dtype)

    def replace(self, **changes) -> "LlamaConfig":
        return dataclasses.replace(self, **changes)

    def num_params(self, include_embedding: bool = True) -> int:
        """Parameter count (embedding and untied output head counted when asked)."""
        d, h, kv, hd = self.d_model, self.n_heads, self.num_kv_heads, self.dims_per_head
        attn = d * hd * (h + 2 * kv) + h * hd * d
        mlp = 3 * d * self.d_ff
        per_layer = attn + mlp + 2 * d
        total = self.n_layers * per_layer + d
        if include_embedding:
            total += 2 * self.vocab_size * d
        return total

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6 * non-embedding params + lm head, plus causal attention.

        Attention: 12 * layers * seq_len * heads * head_dim per token for forward+backward of
        QK^T and AV over a full (non-causal) window; halved for a causal mask, as in MaxText.
        """
        dense = 6 * (self.num_params(include_embedding=False) + self.vocab_size * self.d_model)
        attention = 12 * self.n_layers * seq_len * self.n_heads * self.dims_per_head / 2
        return float(dense + attention)
