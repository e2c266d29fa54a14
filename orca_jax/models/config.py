"""LLaMA decoder configuration: one frozen dataclass, every field documented."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

ATTENTION_IMPLS = ("xla", "cudnn", "splash", "auto")
REMAT_POLICIES = ("none", "full", "save_dots", "save_qkv_out", "save_dots_no_batch")
ROPE_TYPES = ("default", "llama3")
FAMILIES = ("llama", "mistral", "qwen2")


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
    tie_word_embeddings: bool = False
    """Output head = the embedding table transposed (ONE parameter, `embed`; no `lm_head` params),
    as SmolLM2, Llama-3.2-1B/3B and the small Qwen2.5 models have it."""
    qkv_bias: bool = False
    """Bias terms on the query/key/value projections (Qwen2/2.5); the output projection and the
    MLP never have biases."""
    rope_type: str = "default"
    """RoPE frequency schedule: "default" (theta^(-2i/d)) | "llama3" (Llama-3.1/3.2's rescaling of the
    low frequencies by `rope_factor`, smoothed between the low/high frequency factors)."""
    rope_factor: float = 1.0
    """rope_type "llama3": divisor of the low frequencies (`rope_scaling.factor`, 8 or 32 in Llama-3.x)."""
    rope_low_freq_factor: float = 1.0
    """rope_type "llama3": wavelengths above original_max_len / low_freq_factor are divided by rope_factor."""
    rope_high_freq_factor: float = 4.0
    """rope_type "llama3": wavelengths below original_max_len / high_freq_factor are kept as they are."""
    rope_original_max_len: int = 8192
    """rope_type "llama3": the pre-training context the frequencies were rescaled from
    (`original_max_position_embeddings`)."""
    sliding_window: int | None = None
    """Mistral's sliding-window attention: a query attends only to the last `sliding_window` slots
    (itself included), i.e. key slot > query slot - sliding_window; None means full causal attention.
    Honoured by the xla kernel (training, scoring, KV-cache decoding); the fused kernels refuse
    sequences longer than the window."""
    family: str = "llama"
    """Hugging Face architecture the weights come from and are exported as (`model_type`):
    llama | mistral | qwen2. Decides only the export's config.json; the numerics follow the fields above."""

    def __post_init__(self):
        if self.d_model % self.n_heads and self.head_dim is None:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set head_dim")
        if self.num_kv_heads > self.n_heads or self.n_heads % self.num_kv_heads:
            raise ValueError(f"n_kv_heads={self.num_kv_heads} must divide n_heads={self.n_heads}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r}; expected one of {ATTENTION_IMPLS}")
        if self.remat_policy not in REMAT_POLICIES:
            raise ValueError(f"remat_policy={self.remat_policy!r}; expected one of {REMAT_POLICIES}")
        if self.rope_type not in ROPE_TYPES:
            raise ValueError(f"rope_type={self.rope_type!r}; expected one of {ROPE_TYPES}")
        if self.rope_type == "llama3" and not self.rope_high_freq_factor > self.rope_low_freq_factor:
            raise ValueError(
                f"rope_high_freq_factor={self.rope_high_freq_factor} must exceed "
                f"rope_low_freq_factor={self.rope_low_freq_factor}"
            )
        if self.sliding_window is not None and self.sliding_window < 1:
            raise ValueError(f"sliding_window={self.sliding_window} must be >= 1 (or None)")
        if self.family not in FAMILIES:
            raise ValueError(f"family={self.family!r}; expected one of {FAMILIES}")
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

    def replace(self, **changes) -> LlamaConfig:
        return dataclasses.replace(self, **changes)

    def num_params(self, include_embedding: bool = True) -> int:
        """Parameter count (embedding and, when untied, the output head counted when asked)."""
        d, h, kv, hd = self.d_model, self.n_heads, self.num_kv_heads, self.dims_per_head
        attn = d * hd * (h + 2 * kv) + h * hd * d + (hd * (h + 2 * kv) if self.qkv_bias else 0)
        mlp = 3 * d * self.d_ff
        per_layer = attn + mlp + 2 * d
        total = self.n_layers * per_layer + d
        if include_embedding:
            total += (1 if self.tie_word_embeddings else 2) * self.vocab_size * d
        return total

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6 * non-embedding params + lm head, plus causal attention.

        Attention: 12 * layers * seq_len * heads * head_dim per token for forward+backward of
        QK^T and AV over a full (non-causal) window; halved for a causal mask, as in MaxText.
        """
        dense = 6 * (self.num_params(include_embedding=False) + self.vocab_size * self.d_model)
        attention = 12 * self.n_layers * seq_len * self.n_heads * self.dims_per_head / 2
        return float(dense + attention)
