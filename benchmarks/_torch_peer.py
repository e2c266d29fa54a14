"""The PyTorch peer of benchmarks/train_throughput.py: one Hugging Face LlamaForCausalLM train
step on the same model shape, the same packed batches and the same optimizer.

Numerics (chosen to match orca-jax's train step):
  * fp32 parameters (the master weights) and fp32 AdamW state; the forward and backward run
    in the compute dtype of the jax side (train_throughput.py --dtype): under
    `torch.autocast(bfloat16)` for bfloat16 (bf16 matmuls, fp32 RMSNorm as transformers writes
    it), like orca-jax's bf16 compute over fp32 params; `autocast(float16)` for float16; no
    autocast (fp32 throughout) for float32. Logits are upcast to fp32 for the loss.
  * loss: sum of token cross-entropy over the response tokens (decoder_loss_weights = 1) divided
    by their count, on the already shifted decoder_target_tokens (no second shift).
  * clip to global norm 1.0, then AdamW(b1 0.9, b2 0.95, eps 1e-8, weight decay 0), fused on
    CUDA. Constant learning rate (orca-jax follows a warmup schedule; the work is the same).
  * packing: `position_ids` restart at 0 for every packed example and no attention_mask is
    passed, which is transformers' padding-free packing path. The padding tail of a row gets
    its own 0.. run of positions, so it forms one segment as segment id 0 does in orca-jax.
    With attn_implementation="sdpa" transformers turns the position ids into an explicit
    block-diagonal causal boolean mask `[batch, 1, L, L]` (masking_utils.find_packed_sequence_
    indices); SDPA then cannot use its flash kernel (flash takes no mask) and runs the
    memory-efficient kernel with that mask: segments are isolated, no causal block skipping.
    With "flash_attention_2" (if flash_attn is installed) transformers derives cu_seqlens
    from the position ids and runs varlen flash attention: isolated and no masked work.
    This detection only happens with no KV cache: `use_cache=False` is essential (a cache
    silently turns it off and the packed examples attend to each other). Before timing, the
    peer checks isolation on the real model: a packed row's second example must give the
    same logits as that example alone (`segment_isolation`, reported in the notes).

No host synchronisation inside a step: the loss normaliser is a device tensor, clipping
returns a tensor, fused AdamW keeps its step on the device. (In eager mode transformers'
packed-sequence detection does one `.all()` check on the host per forward; under
torch.compile it is traced away.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

TORCH_ATTENTIONS = ("auto", "sdpa", "flash_attention_2", "eager")


def torch_positions(positions: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
    """position_ids for transformers' packed path: the packer's positions, with the padding
    tail of each row renumbered 0, 1, 2, ... so it is one segment (as segment id 0 in orca-jax)."""
    out = positions.astype(np.int64).copy()
    for r in range(out.shape[0]):
        pad = np.flatnonzero(segment_ids[r] == 0)
        if pad.size:
            out[r, pad] = np.arange(pad.size)
    return out


def resolve_attention(requested: str, device_type: str) -> str:
    if requested != "auto":
        return requested
    if device_type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


ISOLATION_TOL = 5e-2  # bf16 autocast noise is ~3e-3; attention across segments gives ~1e-1..1
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


def compute_context(torch, dtype: str, device):
    """The autocast context for compute dtype `dtype` (a jax dtype name); none for float32."""
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"torch peer: compute dtype {dtype!r} is not one of {COMPUTE_DTYPES}")
    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


def precision_label(dtype: str) -> str:
    """ "fp32 master + bf16 autocast", ... as printed in the notes."""
    short = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[dtype]
    return "fp32 master + fp32 compute (no autocast)" if dtype == "float32" else f"fp32 master + {short} autocast"


def segment_isolation(torch, model, batches, device, dtype: str = "bfloat16") -> float | None:
    """max|logits(2nd example in its packed row) - logits(that example alone)| / max|logits(alone)|,
    in eager mode in the compute dtype, for the first row that packs at least two examples; None if
    there is none. ~1e-3 when transformers isolates the packed segments, O(0.1-1) when it does not."""
    for b in batches:
        for r in range(b["decoder_segment_ids"].shape[0]):
            seg = b["decoder_segment_ids"][r]
            cols = np.flatnonzero(seg == 2)
            if cols.size < 2:
                continue
            ids = torch.as_tensor(b["decoder_input_tokens"][r : r + 1].astype(np.int64), device=device)
            pos = torch.as_tensor(
                torch_positions(b["decoder_positions"][r : r + 1], b["decoder_segment_ids"][r : r + 1]), device=device
            )
            idx = torch.as_tensor(cols, device=device)
            with torch.no_grad(), compute_context(torch, dtype, device):
                packed = model(input_ids=ids, position_ids=pos, use_cache=False).logits[0, idx].float()
                alone = model(input_ids=ids[:, idx], position_ids=pos[:, idx], use_cache=False).logits[0].float()
            return float((packed - alone).abs().max() / alone.abs().max().clamp_min(1e-30))
    return None


def sdpa_kernel_with_mask(torch, config, length: int, device, dtype: str = "bfloat16") -> str | None:
    """Which SDPA kernel a [1, heads, length, head_dim] call in the compute dtype with a boolean mask can use on
    this CUDA device ("flash" cannot take a mask): "mem-efficient" or "math"; None off CUDA."""
    if device.type != "cuda":
        return None
    try:
        q = torch.zeros(1, config.n_heads, length, config.dims_per_head, dtype=getattr(torch, dtype), device=device)
        mask = torch.ones(1, 1, length, length, dtype=torch.bool, device=device)
        params = torch.backends.cuda.SDPAParams(q, q, q, mask, 0.0, False, False)
        return "mem-efficient" if torch.backends.cuda.can_use_efficient_attention(params, False) else "math"
    except Exception:  # noqa: BLE001  (the probe's API differs across torch versions)
        return None


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_torch(
    config,
    batches: Sequence[dict[str, np.ndarray]],
    *,
    steps: int,
    warmup: int,
    remat: str,
    attention: str = "auto",
    compile_mode: str = "auto",
    fused: str = "auto",
    learning_rate: float = 2e-5,
    seed: int = 0,
    dtype: str = "bfloat16",
) -> dict[str, Any]:
    """Train `steps` timed steps (after `warmup`) of LlamaForCausalLM shaped like `config`
    (an orca_jax LlamaConfig) over `batches` (the batch contract, cycled) with compute dtype
    `dtype` (the jax side's `LlamaConfig.dtype`); returns the results."""
    import torch
    import torch.nn.functional as F
    import transformers

    from orca_jax.convert.hf_llama import hf_config_from_llama

    notes: list[str] = []
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    compute_context(torch, dtype, device)  # an unknown dtype fails before the model is built
    torch.manual_seed(seed)
    attn_impl = resolve_attention(attention, device.type)
    use_compile = compile_mode == "on" or (compile_mode == "auto" and device.type == "cuda")
    use_fused = fused == "on" or (fused == "auto" and device.type == "cuda")
    use_ckpt = remat != "none"

    hf = hf_config_from_llama(config)
    hf.pop("torch_dtype", None)
    hf_config = transformers.LlamaConfig(**hf)
    hf_config.use_cache = False
    torch.set_default_dtype(torch.float32)
    with torch.device(device):
        try:
            model = transformers.LlamaForCausalLM._from_config(
                hf_config, attn_implementation=attn_impl, dtype=torch.float32
            )
        except TypeError:  # transformers 4.x
            model = transformers.LlamaForCausalLM._from_config(
                hf_config, attn_implementation=attn_impl, torch_dtype=torch.float32
            )
    model.train()
    if use_ckpt:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    isolation = segment_isolation(torch, model, batches, device, dtype)
    if isolation is None:
        notes.append("torch segment isolation: not checked (no row with two segments)")
    else:
        verdict = "isolated" if isolation <= ISOLATION_TOL else "NOT ISOLATED: the torch rows attend across segments"
        notes.append(
            f"torch segment isolation check (eager, {precision_label(dtype).split(' + ')[1]}): logits of a row's 2nd packed example "
            f"vs the example alone differ by {isolation:.1e} of max|logit| (tol {ISOLATION_TOL}) -> {verdict}"
        )
    if remat not in ("none", "full"):
        notes.append(
            f"torch remat: orca-jax policy {remat!r} has no transformers equivalent; torch uses "
            "full per-layer gradient checkpointing (recomputes more than jax)"
        )
    n_params = sum(p.numel() for p in model.parameters())
    params = [p for p in model.parameters()]
    opt_kwargs = dict(lr=learning_rate, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.0)
    try:
        optimizer = torch.optim.AdamW(params, fused=use_fused, **opt_kwargs)
    except (RuntimeError, ValueError) as e:  # fused unsupported on this device/dtype
        notes.append(f"torch: fused AdamW unavailable ({e}); foreach AdamW")
        use_fused = False
        optimizer = torch.optim.AdamW(params, foreach=True, **opt_kwargs)
    vocab = hf_config.vocab_size

    def forward_loss(input_ids, position_ids, labels, denominator):
        with compute_context(torch, dtype, device):
            logits = model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits
        ce = F.cross_entropy(logits.float().view(-1, vocab), labels.view(-1), ignore_index=-100, reduction="sum")
        return ce / denominator

    fwd = torch.compile(forward_loss) if use_compile else forward_loss

    def to_device(b: dict[str, np.ndarray]) -> tuple:
        labels = np.where(b["decoder_loss_weights"] > 0, b["decoder_target_tokens"], -100).astype(np.int64)
        denominator = max(float(b["decoder_loss_weights"].sum()), 1.0)
        return (
            torch.as_tensor(b["decoder_input_tokens"].astype(np.int64), device=device),
            torch.as_tensor(torch_positions(b["decoder_positions"], b["decoder_segment_ids"]), device=device),
            torch.as_tensor(labels, device=device),
            torch.tensor(denominator, dtype=torch.float32, device=device),
        )

    device_batches = [to_device(b) for b in batches]

    def step(i: int):
        loss = fwd(*device_batches[i % len(device_batches)])
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach(), grad_norm

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    try:
        first_loss, _ = step(0)
        first_loss = float(first_loss)  # host sync: the first step includes torch.compile
    except Exception as e:  # noqa: BLE001  (a torch.compile failure: say so and run eager)
        if not use_compile or isinstance(e, torch.cuda.OutOfMemoryError):
            raise
        notes.append(
            f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}); "
            "the torch row runs EAGER"
        )
        use_compile, fwd = False, forward_loss
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        first_loss = float(step(0)[0])
    first_step_s = time.perf_counter() - start
    for i in range(1, warmup):
        step(i)
    _sync(torch, device)
    start = time.perf_counter()
    for i in range(steps):
        loss, grad_norm = step(warmup + i)
    _sync(torch, device)
    step_s = (time.perf_counter() - start) / steps
    peak_gib = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None

    if attn_impl == "sdpa":
        kernel = sdpa_kernel_with_mask(torch, config, int(device_batches[0][0].shape[1]), device, dtype)
        attention_desc = "sdpa+block-diag mask" if kernel is None else f"sdpa {kernel}+mask"
        notes.append(
            "torch sdpa: transformers builds a block-diagonal causal bool mask [B,1,L,L] from the "
            "restarting position_ids; SDPA cannot use its flash kernel with a mask and runs the "
            f"{kernel or 'memory-efficient (or math)'} kernel: segments isolated, full LxL work, "
            "no causal block skipping"
        )
        if kernel == "math":
            notes.append(
                f"torch sdpa: the memory-efficient kernel refuses head_dim {config.dims_per_head} "
                "with a mask here; the math path materialises LxL scores (slow, memory-hungry)"
            )
    elif attn_impl == "flash_attention_2":
        attention_desc = "flash2 varlen"
        notes.append(
            "torch flash_attention_2: varlen flash over cu_seqlens derived from position_ids: segments "
            "isolated and no cross-segment work (less attention work than a masked kernel)"
        )
    else:
        attention_desc = attn_impl
    return {
        "framework": "torch",
        "device_kind": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "num_devices": 1,
        "attention": attention_desc,
        "remat": "full(ckpt)" if use_ckpt else "none",
        "precision": precision_label(dtype),
        "compute_dtype": dtype,
        "compile_s": first_step_s,
        "step_s": step_s,
        "first_loss": first_loss,
        "loss": float(loss),
        "grad_norm": float(grad_norm),
        "peak_mem_gib": peak_gib,
        "num_params": int(n_params),
        "extras": f"torch {torch.__version__} transformers {transformers.__version__} "
        f"compile={'on' if use_compile else 'off'} adamw={'fused' if use_fused else 'foreach'}",
        "segment_isolation": isolation,
        "notes": notes,
    }
