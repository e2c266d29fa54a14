"""Training throughput and MFU near the hardware limit: orca-jax's real train step against
Hugging Face transformers' LlamaForCausalLM on PyTorch, same model, batch, optimizer, device.

    # GPU (one H100): ~1B and ~3B LLaMA shapes, length 2048, packed Orca-like batches
    python benchmarks/train_throughput.py --presets llama_1b,llama_3b --batch 8,4 --length 2048 \\
        --steps 20 --warmup 3 --remat full --attention auto
    # cuDNN-vs-XLA attention correctness on a packed batch (GPU; skips on CPU)
    python benchmarks/train_throughput.py --check_fused
    # CPU smoke (what tests/benchmarks/test_train_throughput_smoke.py runs)
    python benchmarks/train_throughput.py --presets tiny --length 128 --batch 2 --steps 2 --warmup 1 --in_process

What each side runs, per preset:
  jax    orca_jax.training.train_step.compile_train_step, AOT-compiled with the state donated:
         fp32 master params, --dtype compute (LlamaConfig.dtype), the chosen remat policy, the
         sequence-chunked fp32 cross-entropy (LossConfig.chunk_size), clipping at 1.0 and
         make_optimizer's AdamW (b2 0.95), and the non-finite update skip.
  torch  benchmarks/_torch_peer.py: LlamaForCausalLM with fp32 master weights, computing in
         --dtype as the jax side does (bf16/fp16 autocast; no autocast for float32), SDPA (or
         flash_attention_2 when installed), torch.compile and fused AdamW on CUDA, gradient checkpointing when --remat is not none, clipping at 1.0.
Both get the same packed batches: Orca-like example lengths (orca_jax.testing.orca_like; scaled
by length/2048 below 2048 so short smoke rows still hold several examples) with random token
ids, packed by the real best-fit-decreasing packer (orca_jax.data.packing.PackedStream and
rows_from_bins). `--num_batches` distinct batches are put on the device before timing and
cycled. Timing: `--warmup` untimed steps, then `--steps` steps with no host sync inside and one
block_until_ready (jax) / cuda.synchronize (torch) at the end.

tokens/s counts token slots (padding included: the hardware computes on them); "real tok/s"
counts non-padding tokens. MFU = LlamaConfig.flops_per_token(length) x slots/s /
(devices x peak bf16 FLOP/s of the device kind, orca_jax/training/flops.py), the same formula
for both sides (causal attention FLOPs halved, as in MaxText; masked kernels that do the full
LxL work get no credit for it).

llama_3b (Llama-3.2-3B's shape: d_model 3072, 24 heads of 128, 8 kv heads) keeps fp32 Adam
state (~50 GB with grads) that leaves little of an 80 GB H100 for activations: use a smaller
--batch for it.

By default each (preset, framework) runs in its own subprocess so the two frameworks never
share the accelerator's memory (JAX preallocates); `--in_process` runs them in this process
(CPU smoke tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))  # run from a checkout
sys.path.insert(0, _HERE)  # sibling benchmark modules (packing.py, _torch_peer.py)


from packing import _ListSource  # noqa: E402  (benchmarks/packing.py)

from orca_jax.data.packing import PackedStream, fill_ratio, rows_from_bins  # noqa: E402
from orca_jax.data.preprocessors import build_example  # noqa: E402
from orca_jax.testing.orca_like import orca_like_lengths  # noqa: E402
from orca_jax.training.flops import PEAK_BF16_FLOPS, match_peak  # noqa: E402

RESULT_TAG = "@@RESULT "
ORCA_LENGTH = 2048  # the sequence length the Orca-like length distribution is calibrated for


# ----------------------------------------------------------------------------- peaks


def print_peak_table(override: str | None) -> None:
    print("Peak dense bf16 FLOP/s per device (orca_jax/training/flops.py; first substring match of device_kind):")
    for key, flops in PEAK_BF16_FLOPS:
        print(f"  {key:<10} {flops / 1e12:8.1f} TFLOP/s")
    if override:
        key, flops = match_peak(override)
        print(
            f"  --device_kind_override={override!r} -> "
            + (f"{key!r} {flops / 1e12:.1f} TFLOP/s" if flops else "no match: MFU not reported")
        )
    print()


# ----------------------------------------------------------------------------- batches


def packed_batches(
    length: int, batch: int, num_batches: int, vocab_size: int, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """`num_batches` batch-contract batches [batch, length] from the real packer over Orca-like
    examples (random token ids in [3, vocab)). Below length 2048 the Orca-like prompt and response
    lengths are scaled by length/2048 so a row still packs ~2.7 examples as Orca's do."""
    rows_needed = batch * num_batches
    scale = min(1.0, length / ORCA_LENGTH)
    n = max(256, 4 * rows_needed)  # ~2.7 examples per row; one packing window
    prompts, responses = orca_like_lengths(n, seed)
    rng = np.random.default_rng(seed + 1)
    examples = []
    for p, r in zip(prompts, responses):
        p, r = max(1, round(p * scale)), max(1, round(r * scale))
        ex = build_example(
            rng.integers(3, vocab_size, p, dtype=np.int32),
            rng.integers(3, vocab_size, r, dtype=np.int32),
            bos_id=1,
            eos_id=2,
            sequence_length=length,
            min_prompt_tokens=min(16, length // 4),
        )
        if ex is not None:
            examples.append(ex)
    stream = PackedStream(_ListSource(examples), length, window_size=len(examples), seed=seed)
    rows = [row for _, row in zip(range(rows_needed), stream)]
    if len(rows) < rows_needed:
        raise RuntimeError(f"packed only {len(rows)} rows, need {rows_needed}")
    pad_id = 0
    return [rows_from_bins(rows[i * batch : (i + 1) * batch], length, pad_id=pad_id) for i in range(num_batches)]


def batches_digest(batches: list[dict[str, np.ndarray]]) -> str:
    h = hashlib.sha1()
    for b in batches:
        for k in sorted(b):
            h.update(k.encode())
            h.update(np.ascontiguousarray(b[k]).tobytes())
    return h.hexdigest()[:12]


# ----------------------------------------------------------------------------- config


def model_config(preset: str, args: argparse.Namespace, attention_impl: str):
    from orca_jax.models import get_preset
    from orca_jax.models.presets import PRESETS

    if preset not in PRESETS:
        raise SystemExit(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    return get_preset(
        preset,
        max_len=max(args.length, PRESETS[preset].max_len),
        dtype=args.dtype,
        param_dtype="float32",
        remat_policy=args.remat,
        scan_layers=not args.unroll,
        attention_impl=attention_impl,
    )


def resolve_jax_attention(requested: str, head_dim: int) -> tuple[str, str | None]:
    """(impl, note): 'auto' as the library resolves it, except that cuDNN's fused kernel needs a
    head_dim that is a multiple of 8 (<= 128 before Hopper, <= 256 from Hopper on)."""
    from orca_jax.models.attention import resolve_impl

    impl = resolve_impl(requested)
    if impl == "cudnn" and head_dim % 8:
        if requested == "auto":
            return "xla", (
                f"jax attention: auto -> cudnn is impossible for head_dim={head_dim} (cuDNN needs a "
                "multiple of 8); fell back to xla"
            )
        raise SystemExit(f"--attention cudnn: head_dim={head_dim} is not a multiple of 8 (cuDNN's requirement)")
    return impl, None


# ----------------------------------------------------------------------------- jax worker


def run_jax(preset: str, args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from orca_jax import partitioning
    from orca_jax.models import get_preset
    from orca_jax.training import train_state as ts
    from orca_jax.training.feeding import to_global
    from orca_jax.training.loss import LossConfig
    from orca_jax.training.optimizer import make_optimizer
    from orca_jax.training.train_step import batch_abstract, compile_train_step

    notes: list[str] = []
    impl, note = resolve_jax_attention(args.attention, get_preset(preset).dims_per_head)
    if note:
        notes.append(note)
    config = model_config(preset, args, impl)
    chunk = min(args.chunk, args.length) if args.chunk else None
    batch = args.batch_of[preset]
    batches = packed_batches(args.length, batch, args.num_batches, config.vocab_size, args.seed)
    mesh = partitioning.make_mesh(tuple(int(x) for x in args.mesh.split(",")))
    rules = partitioning.logical_axis_rules()
    optimizer = make_optimizer(args.warmup + args.steps + 1000)
    shardings = ts.state_shardings(config, optimizer, mesh, rules)
    abstract = ts.abstract_state(config, optimizer, shardings)
    batch_spec = batch_abstract((batch, args.length), mesh, rules)

    def compile_step(cfg):
        return compile_train_step(
            cfg, optimizer, LossConfig(chunk_size=chunk), args.microbatches, mesh, rules, abstract, batch_spec
        )

    start = time.perf_counter()
    try:
        step = compile_step(config)
    except Exception as e:  # noqa: BLE001  (NotImplementedError from the kernel's checks, or an XLA error)
        if impl == "xla" or args.attention != "auto":
            raise
        first = [ln for ln in str(e).splitlines() if ln.strip()][:1] or [type(e).__name__]
        notes.append(f"jax attention: {impl} failed to compile ({first[0][:160]}); fell back to xla")
        impl, config = "xla", config.replace(attention_impl="xla")
        step = compile_step(config)
    compile_s = time.perf_counter() - start
    state = ts.init_state(config, optimizer, shardings, seed=args.seed)
    sharding = batch_spec["decoder_input_tokens"].sharding
    device_batches = [to_global(b, sharding, batch) for b in batches]
    jax.block_until_ready(device_batches)

    state, metrics = step(state, device_batches[0])
    first_loss = float(metrics["loss"])  # host sync, warm-up only
    for i in range(1, args.warmup):
        state, metrics = step(state, device_batches[i % len(device_batches)])
    jax.block_until_ready((state, metrics))
    start = time.perf_counter()
    for i in range(args.steps):
        state, metrics = step(state, device_batches[(args.warmup + i) % len(device_batches)])
    jax.block_until_ready((state, metrics))
    step_s = (time.perf_counter() - start) / args.steps

    device = jax.devices()[0]
    peak_gib = None
    try:
        stats = device.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            peak_gib = stats["peak_bytes_in_use"] / 2**30
    except Exception:  # noqa: BLE001  (CPU backends may not implement memory_stats)
        pass
    attention_desc = {
        "xla": "xla dense-masked",
        "cudnn": "cudnn mask-as-bias",
        "splash": "splash segment-ids",
    }[impl]
    if impl == "xla":
        notes.append(
            "jax xla attention: fp32 scores over the full LxL, block-diagonal causal mask from "
            "decoder_segment_ids (segments isolated, no block skipping)"
        )
    elif impl == "cudnn":
        notes.append(
            "jax cudnn attention: jax.nn.dot_product_attention(implementation='cudnn', is_causal=True) "
            "with the block-diagonal segment mask passed as a dense [B,1,L,L] bias (segments isolated; "
            "is_causal lets cuDNN skip tiles above the diagonal; cross-segment tiles below it are computed)"
        )
    return {
        "framework": "jax",
        "batch": batch,
        "device_kind": device.device_kind,
        "num_devices": mesh.size,
        "attention": attention_desc,
        "remat": config.remat_policy,
        "precision": f"fp32 master + {config.dtype} compute",
        "compute_dtype": str(config.dtype),
        "compile_s": compile_s,
        "step_s": step_s,
        "first_loss": first_loss,
        "loss": float(metrics["loss"]),
        "grad_norm": float(metrics["grad_norm"]),
        "peak_mem_gib": peak_gib,
        "num_params": int(config.num_params()),
        "flops_per_token": config.flops_per_token(args.length),
        "fill": float(np.mean([fill_ratio(b) for b in batches])),
        "digest": batches_digest(batches),
        "extras": f"jax {jax.__version__} mesh={dict(mesh.shape)} chunk={chunk} microbatches={args.microbatches} "
        f"scan={config.scan_layers}",
        "notes": notes,
    }


def run_torch_worker(preset: str, args: argparse.Namespace) -> dict[str, Any]:
    from _torch_peer import run_torch

    config = model_config(preset, args, "xla")
    batches = packed_batches(args.length, args.batch_of[preset], args.num_batches, config.vocab_size, args.seed)
    result = run_torch(
        config,
        batches,
        steps=args.steps,
        warmup=args.warmup,
        remat=args.remat,
        attention=args.torch_attention,
        compile_mode=args.torch_compile,
        fused=args.torch_fused,
        seed=args.seed,
        dtype=args.dtype,
    )
    result["digest"] = batches_digest(batches)
    result["batch"] = args.batch_of[preset]
    result["fill"] = float(np.mean([fill_ratio(b) for b in batches]))
    result["flops_per_token"] = config.flops_per_token(args.length)
    return result


# ----------------------------------------------------------------------------- orchestration


def worker_argv(args: argparse.Namespace, framework: str, preset: str) -> list[str]:
    argv = [sys.executable, os.path.abspath(__file__), "--worker", framework, "--presets", preset]
    argv += ["--batch", str(args.batch_of[preset])]
    for name in (
        "length",
        "steps",
        "warmup",
        "remat",
        "attention",
        "torch_attention",
        "torch_compile",
        "torch_fused",
        "chunk",
        "mesh",
        "microbatches",
        "dtype",
        "num_batches",
        "seed",
    ):
        value = getattr(args, name)
        argv += [f"--{name}", "0" if value is None else str(value)]
    if args.unroll:
        argv.append("--unroll")
    return argv


def run_one(args: argparse.Namespace, framework: str, preset: str) -> dict[str, Any]:
    if args.in_process:
        try:
            return (run_jax if framework == "jax" else run_torch_worker)(preset, args)
        except Exception as e:  # noqa: BLE001  (report the failure as a row, keep going)
            last = [ln for ln in str(e).splitlines() if ln.strip()][:1] or [""]
            return {"framework": framework, "error": f"{type(e).__name__}: {last[0][:240]}"}
    env = dict(os.environ)
    if framework == "jax":
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.95")  # the GPU is this process's alone
    else:
        env["JAX_PLATFORMS"] = "cpu"  # the torch worker must not let JAX grab the accelerator
        env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    proc = subprocess.run(worker_argv(args, framework, preset), env=env, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :])
    tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-1:] or [""]
    return {"framework": framework, "error": f"worker exited {proc.returncode} {tail[0][:200]}"}


@dataclasses.dataclass
class Row:
    preset: str
    result: dict[str, Any]


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def complete(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Adds slots/s, real tok/s and MFU (same formula for both frameworks)."""
    if "error" in result:
        return result
    slots = result["batch"] * args.length / result["step_s"]
    kind = args.device_kind_override or result["device_kind"]
    _, peak = match_peak(kind)
    result["slots_per_s"] = slots
    result["real_per_s"] = slots * result["fill"]
    result["peak"] = peak
    result["mfu"] = result["flops_per_token"] * slots / (result["num_devices"] * peak) if peak else None
    return result


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    header = (
        f"{'preset':<10} {'framework':<9} {'attention':<24} {'remat':<10} {'batch x len':<12} "
        f"{'compile_s':>9} {'step_ms':>9} {'tokens/s':>11} {'real tok/s':>11} {'MFU%':>6} "
        f"{'mem GiB':>7} {'loss0':>7} {'loss':>7}"
    )
    print(header)
    print("-" * len(header))
    by_preset: dict[str, dict[str, dict]] = {}
    for row in rows:
        r = row.result
        by_preset.setdefault(row.preset, {})[r["framework"]] = r
        shape = f"{args.batch_of[row.preset]}x{args.length}"
        if "error" in r:
            print(f"{row.preset:<10} {r['framework']:<9} FAILED: {r['error']}")
            continue
        print(
            f"{row.preset:<10} {r['framework']:<9} {r['attention']:<24} {r['remat']:<10} {shape:<12} "
            f"{r['compile_s']:>9.1f} {r['step_s'] * 1e3:>9.1f} {r['slots_per_s']:>11,.0f} "
            f"{r['real_per_s']:>11,.0f} {_fmt(None if r['mfu'] is None else r['mfu'] * 100, '6.2f'):>6} "
            f"{_fmt(r['peak_mem_gib'], '7.1f'):>7} {r['first_loss']:>7.3f} {r['loss']:>7.3f}"
        )
        if row is rows[-1] or rows[rows.index(row) + 1].preset != row.preset:
            pair = by_preset[row.preset]
            jx, tr = pair.get("jax"), pair.get("torch")
            if jx and tr and "error" not in jx and "error" not in tr:
                from _torch_peer import ISOLATION_TOL

                leak = tr.get("segment_isolation") is not None and tr["segment_isolation"] > ISOLATION_TOL
                print(
                    f"{row.preset:<10} {'ratio':<9} jax/torch tokens/s = {jx['slots_per_s'] / tr['slots_per_s']:.2f}x"
                    f"  (step {jx['step_s'] * 1e3:.1f} ms vs {tr['step_s'] * 1e3:.1f} ms)"
                    + ("  NOT LIKE-FOR-LIKE: torch attends across segments" if leak else "")
                )
            elif jx and tr:
                print(f"{row.preset:<10} {'ratio':<9} n/a (a side failed)")


def print_notes(rows: list[Row], args: argparse.Namespace) -> None:
    print("\nNotes:")
    seen: list[str] = []
    for row in rows:
        r = row.result
        if "error" in r:
            continue
        for line in [
            f"{row.preset} {r['framework']}: {r['precision']}; {r['extras']}; params {r['num_params']:,}; "
            f"device {r['device_kind']} x{r['num_devices']}, peak "
            f"{_fmt(None if not r['peak'] else r['peak'] / 1e12, 'g')} TFLOP/s; "
            f"fill {r['fill']:.3f}; batches {r['digest']}"
        ] + r["notes"]:
            if line not in seen:
                seen.append(line)
    presets = {row.preset for row in rows}
    for preset in sorted(presets):
        pair = {
            row.result["framework"]: row.result for row in rows if row.preset == preset and "error" not in row.result
        }
        if len(pair) == 2:
            if pair["jax"]["digest"] != pair["torch"]["digest"]:
                seen.append(f"{preset}: WARNING the two sides saw different batches")
            if pair["jax"].get("compute_dtype") != pair["torch"].get("compute_dtype"):
                seen.append(
                    f"{preset}: WARNING compute dtypes differ (jax {pair['jax'].get('compute_dtype')}, "
                    f"torch {pair['torch'].get('compute_dtype')})"
                )
            if pair["jax"]["num_params"] != pair["torch"]["num_params"]:
                seen.append(
                    f"{preset}: WARNING parameter counts differ "
                    f"({pair['jax']['num_params']:,} vs {pair['torch']['num_params']:,})"
                )
    seen += [
        "tokens/s = token slots/s incl. padding (what MFU counts); real tok/s excludes padding. MFU = "
        "flops_per_token(length) x slots/s / (devices x peak), identical for both rows.",
        "loss0/loss: loss at the first warm-up step and the last timed step (both near ln(vocab) at init; "
        "different random inits, same distribution).",
        "jax also runs the non-finite update skip (jnp.where over params and Adam state) and a warmup "
        "schedule; torch uses a constant learning rate and no skip.",
    ]
    if any(r.result.get("device_kind", "").lower() == "cpu" for r in rows) and not args.device_kind_override:
        seen.append(
            "CPU: the peak is flops.py's nominal 0.1 TFLOP/s per device; CPU MFU and the ratio are smoke "
            "values, not comparable to accelerators (torch runs eager, no fused AdamW)"
        )
    if args.device_kind_override:
        seen.append(f"peak FLOP/s taken from --device_kind_override={args.device_kind_override!r}")
    for line in seen:
        print(f"  - {line}")


# ----------------------------------------------------------------------------- check_fused


def check_fused(args: argparse.Namespace) -> int:
    """cuDNN vs XLA attention on a packed bf16 batch: kernel outputs and q/k/v gradients, and the
    loss and parameter gradients of a small model. Returns the exit status (0 PASS/SKIP, 1 FAIL)."""
    import jax
    import jax.numpy as jnp

    from orca_jax.models import LlamaConfig
    from orca_jax.models.attention import attention_mask, cudnn_attention, xla_attention
    from orca_jax.training.loss import LossConfig, loss_sums
    from orca_jax.training.train_state import init_params

    backend = jax.default_backend()
    if backend != "gpu":
        print(
            f"check_fused: cuDNN fused attention is unavailable on backend {backend!r} "
            f"(devices: {jax.devices()[0].device_kind}); SKIP"
        )
        return 0
    length, batch = args.check_length, 4
    tol_out, tol_grad, tol_loss = 2e-2, 5e-2, 1e-2  # bf16: eps 7.8e-3; errors relative to max|ref|
    b = packed_batches(length, batch, 1, 1024, args.seed)[0]
    seg = jnp.asarray(b["decoder_segment_ids"])
    idx = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), seg.shape)
    mask = attention_mask(seg, seg, idx, idx)
    failures = []

    def rel(a, ref):
        a, ref = jnp.asarray(a, jnp.float32), jnp.asarray(ref, jnp.float32)
        return float(jnp.max(jnp.abs(a - ref))), float(
            jnp.max(jnp.abs(a - ref)) / jnp.maximum(jnp.max(jnp.abs(ref)), 1e-30)
        )

    def report(name, a, ref, tol):
        abs_d, rel_d = rel(a, ref)
        ok = rel_d <= tol
        if not ok:
            failures.append(name)
        print(f"  {name:<34} max|diff| {abs_d:.3e}  rel {rel_d:.3e}  (tol {tol:.0e})  {'ok' if ok else 'FAIL'}")

    print(
        f"check_fused: {jax.devices()[0].device_kind}, packed batch {batch}x{length}, "
        f"fill {fill_ratio(b):.3f}, segments/row {np.mean(b['decoder_segment_ids'].max(axis=1)):.1f}, bf16"
    )
    keys = jax.random.split(jax.random.PRNGKey(args.seed), 4)
    for heads, kv_heads, hd in ((8, 8, 64), (8, 2, 128)):
        q = jax.random.normal(keys[0], (batch, length, heads, hd), jnp.bfloat16)
        k = jax.random.normal(keys[1], (batch, length, kv_heads, hd), jnp.bfloat16)
        v = jax.random.normal(keys[2], (batch, length, kv_heads, hd), jnp.bfloat16)
        ct = jax.random.normal(keys[3], q.shape, jnp.bfloat16)

        def fwd_bwd(fn):
            def run(q_, k_, v_, ct_, mask_):  # arguments, not closures: no constant folding
                out, vjp = jax.vjp(lambda a, b_, c: fn(a, b_, c, mask_), q_, k_, v_)
                return (out, *vjp(ct_))

            return jax.jit(run)(q, k, v, ct, mask)

        ref = fwd_bwd(xla_attention)
        got = fwd_bwd(cudnn_attention)
        for name, a, r in zip(("out", "dq", "dk", "dv"), got, ref):
            report(f"kernel h{heads} kv{kv_heads} hd{hd} {name}", a, r, tol_out if name == "out" else tol_grad)
        # Only real-token rows matter for training; padding rows (segment 0) are checked too above.

    base = LlamaConfig(
        vocab_size=1024,
        d_model=512,
        n_layers=2,
        n_heads=8,
        d_ff=1376,
        max_len=length,
        dtype="bfloat16",
        remat_policy="none",
        attention_impl="xla",
    )
    params = jax.jit(lambda r: init_params(base, r))(jax.random.PRNGKey(args.seed))
    dev_batch = {k_: jnp.asarray(v_) for k_, v_ in b.items()}
    denom = float(max(b["decoder_loss_weights"].sum(), 1))

    def loss_and_grads(cfg):
        from orca_jax.models import Llama

        fn = lambda p, bt: loss_sums(p, Llama(cfg), bt, LossConfig())[0] / denom  # noqa: E731
        return jax.jit(jax.value_and_grad(fn))(params, dev_batch)

    ref_loss, ref_grads = loss_and_grads(base)
    loss, grads = loss_and_grads(base.replace(attention_impl="cudnn"))
    report("model loss", loss, ref_loss, tol_loss)
    flat_ref = jax.tree_util.tree_flatten_with_path(ref_grads)[0]
    flat_got = jax.tree.leaves(grads)
    worst = max(
        ((rel(g, r)[1], jax.tree_util.keystr(path), g, r) for (path, r), g in zip(flat_ref, flat_got)),
        key=lambda t: t[0],
    )
    report(f"model grads (worst: {worst[1][-28:]})", worst[2], worst[3], tol_grad)
    for preset in ("llama_1b", "llama_3b"):
        from orca_jax.models import get_preset

        hd = get_preset(preset).dims_per_head
        print(
            f"  {preset}: head_dim {hd} -> cuDNN fused attention "
            f"{'supported' if hd % 8 == 0 else 'NOT supported (not a multiple of 8); auto falls back to xla'}"
        )
    print(f"check_fused: {'PASS' if not failures else 'FAIL (' + ', '.join(failures) + ')'}")
    return 0 if not failures else 1


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="llama_1b,llama_3b", help="comma-separated orca_jax.models presets")
    p.add_argument(
        "--batch",
        default="8",
        help="packed rows per step (global); one value, or one per preset (e.g. 8,4 for --presets llama_1b,llama_3b)",
    )
    p.add_argument("--length", type=int, default=2048)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (>= 1; includes torch.compile)")
    p.add_argument(
        "--remat",
        default="full",
        help="LlamaConfig.remat_policy; torch: none -> no checkpointing, "
        "anything else -> full per-layer gradient checkpointing",
    )
    p.add_argument("--attention", default="auto", help="LlamaConfig.attention_impl: xla|cudnn|splash|auto")
    p.add_argument(
        "--torch_attention",
        default="auto",
        help="sdpa|flash_attention_2|eager|auto "
        "(auto: flash_attention_2 if flash_attn is installed and on CUDA, else sdpa)",
    )
    p.add_argument("--torch_compile", default="auto", choices=("auto", "on", "off"), help="auto: on for CUDA")
    p.add_argument("--torch_fused", default="auto", choices=("auto", "on", "off"), help="fused AdamW; auto: CUDA")
    p.add_argument("--no_torch", action="store_true", help="jax rows only")
    p.add_argument("--chunk", type=int, default=512, help="LossConfig.chunk_size (0: unchunked)")
    p.add_argument("--mesh", default="1,-1,1", help="data,fsdp,tensor")
    p.add_argument("--microbatches", type=int, default=1)
    p.add_argument(
        "--dtype",
        default="bfloat16",
        choices=("bfloat16", "float16", "float32"),
        help="compute dtype of both sides: jax LlamaConfig.dtype, torch autocast (none for float32); params stay fp32",
    )
    p.add_argument("--unroll", action="store_true", help="scan_layers=False")
    p.add_argument("--num_batches", type=int, default=4, help="distinct packed batches staged on device, cycled")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--device_kind_override",
        "--device_kind-override",
        "--device-kind-override",
        dest="device_kind_override",
        default=None,
        help="take the peak FLOP/s of this device kind from the table (e.g. 'h100'); "
        "note the table's h100 is the SXM peak (PCIe: 756 TFLOP/s is not in it)",
    )
    p.add_argument("--in_process", action="store_true", help="run both frameworks in this process (CPU smoke)")
    p.add_argument("--check_fused", action="store_true", help="cuDNN vs XLA attention correctness, then exit")
    p.add_argument("--check_length", type=int, default=1024)
    p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.chunk = args.chunk or None
    presets = [s for s in args.presets.split(",") if s]
    sizes = [int(x) for x in str(args.batch).split(",") if x]
    if len(sizes) == 1:
        sizes = sizes * len(presets)
    if len(sizes) != len(presets) or min(sizes) < 1:
        p.error(f"--batch {args.batch!r}: give one size, or one per preset ({len(presets)})")
    args.batch_of = dict(zip(presets, sizes))
    if args.warmup < 1 or args.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    presets = [s for s in args.presets.split(",") if s]
    if args.worker:
        try:
            result = (run_jax if args.worker == "jax" else run_torch_worker)(presets[0], args)
        except Exception as e:  # noqa: BLE001  (the orchestrator prints it as a FAILED row)
            import traceback

            traceback.print_exc()
            last = [ln for ln in str(e).splitlines() if ln.strip()][:1] or [""]
            print(
                RESULT_TAG + json.dumps({"framework": args.worker, "error": f"{type(e).__name__}: {last[0][:240]}"}),
                flush=True,
            )
            return 1
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    print_peak_table(args.device_kind_override)
    if args.check_fused:
        return check_fused(args)
    rows = []
    for preset in presets:
        for framework in ("jax",) + (() if args.no_torch else ("torch",)):
            print(f"running {preset} {framework} ...", file=sys.stderr, flush=True)
            rows.append(Row(preset, complete(run_one(args, framework, preset), args)))
    kinds = sorted({r.result["device_kind"] for r in rows if "device_kind" in r.result})
    print(
        f"device: {', '.join(kinds)}; presets {presets}; batch {args.batch} x length {args.length}; "
        f"{args.steps} timed steps after {args.warmup} warm-up\n"
    )
    print_table(rows, args)
    print_notes(rows, args)
    return 1 if any("error" in r.result for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
