"""Greedy decoding tokens/s: orca-jax with the KV cache, orca-jax without it, and transformers.generate,
alternated in one run on the same weights, prompts and CPU/accelerator.

    # a real pretrained model (a Hugging Face directory, e.g. orca_jax.testing.smollm2.build_hf_dir):
    python benchmarks/decode.py --hf_dir=/tmp/smollm2_hf --batch_size=4 --prompt_len=32 --new_tokens=64
    # a preset with random weights (exported to a temporary HF directory for transformers):
    python benchmarks/decode.py --preset=demo --batch_size=8 --prompt_len=128 --new_tokens=128

Sides (`--sides`, default all three):
  jax_kv       orca_jax.evaluation.decoding.Decoder(use_cache=True): one jit per request that
               prefills the prompt, then a lax.while_loop feeding one token per step with the KV
               cache sized to the request (prompt + new tokens rounded up to 64 slots).
  jax_nocache  Decoder(use_cache=False): every step reruns the whole sequence (the test reference).
  hf           transformers `model.generate(do_sample=False)` with its dynamic KV cache, fp32,
               eager PyTorch, torch's default thread count (or --torch_threads).
Every prompt has `prompt_len` random tokens (no padding on either side); EOS is disabled on every
side, so each row generates exactly `new_tokens` tokens. Each side runs once untimed (compilation,
warm-up), then the sides are timed in turn, `--repeats` rounds, the order rotated every round, so a
slow patch of a shared machine hits every side alike. Printed per side: min / median / max of
batch_size * new_tokens / seconds, and whether the greedy tokens agree with the jax_kv side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
from orca_jax.convert import import_hf  # noqa: E402
from orca_jax.evaluation.decoding import Decoder  # noqa: E402
from orca_jax.models import LlamaConfig, get_preset  # noqa: E402

SIDES = ("jax_kv", "jax_nocache", "hf")


def jax_side(
    config: LlamaConfig,
    params,
    batch_size: int,
    new_tokens: int,
    prompt_len: int,
    use_cache: bool,
    unroll_layers: bool = False,
) -> Callable[[list[list[int]]], list[list[int]]]:
    """prompts -> generated tokens, with orca-jax's Decoder (EOS disabled: eos_id -1)."""
    decoder = Decoder(
        config,
        params,
        batch_size=batch_size,
        eos_id=-1,
        pad_id=0,
        use_cache=use_cache,
        min_prompt_bucket=prompt_len,
        unroll_layers=unroll_layers,
    )
    return lambda prompts: decoder.generate(prompts, new_tokens).tokens


def hf_side(hf_dir: str, new_tokens: int, threads: int | None = None) -> Callable[[list[list[int]]], list[list[int]]]:
    """prompts -> generated tokens, with transformers' greedy `generate` (fp32, EOS disabled) on
    `threads` torch threads (None: torch's default, one per core)."""
    import torch
    import transformers

    if threads:
        torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # generate exactly new_tokens, as the jax sides do
    model.generation_config.pad_token_id = 0

    def run(prompts: list[list[int]]) -> list[list[int]]:
        ids = torch.as_tensor(prompts, dtype=torch.long)
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                do_sample=False,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                use_cache=True,
            )
        return out[:, ids.shape[1] :].tolist()

    return run


def random_hf_dir(config: LlamaConfig, out_dir: str, seed: int = 0) -> str:
    """A random transformers model of `config`'s shape saved at `out_dir` (weights scaled so that
    the logits are O(1), see orca_jax.convert.parity.random_hf_llama)."""
    from orca_jax.convert import hf_config_from_llama
    from orca_jax.convert.parity import random_hf_llama

    hf = hf_config_from_llama(config)
    for key in ("architectures", "model_type", "torch_dtype"):
        hf.pop(key)
    random_hf_llama(seed, config.family, **hf).save_pretrained(out_dir)
    return out_dir


def summarize(rates: list[float]) -> dict[str, float]:
    return {"min": min(rates), "median": statistics.median(rates), "max": max(rates)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--hf_dir", default=None, help="a Hugging Face llama/mistral/qwen2 directory")
    src.add_argument("--preset", default="demo", help="a model preset with random weights")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--prompt_len", type=int, default=128)
    p.add_argument("--new_tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dtype", default="float32", help="orca-jax compute dtype (transformers runs fp32)")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {SIDES}")
    p.add_argument("--unroll_layers", action="store_true", help="Decoder(unroll_layers=True) for the jax sides")
    p.add_argument(
        "--torch_threads",
        type=int,
        default=None,
        help="torch.set_num_threads for the hf side (default: torch's, one per core); on a "
        "machine shared with other jobs, torch's spinning OpenMP threads suffer more than XLA's",
    )
    args = p.parse_args()
    sides = args.sides.split(",")
    if unknown := set(sides) - set(SIDES):
        p.error(f"unknown sides {sorted(unknown)}; expected {SIDES}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.hf_dir:
            params, config = import_hf(args.hf_dir, config_overrides={"dtype": args.dtype})
            hf_dir, name = args.hf_dir, os.path.basename(os.path.normpath(args.hf_dir))
        else:
            preset = get_preset(args.preset)
            hf_dir = random_hf_dir(
                preset.replace(max_len=max(preset.max_len, args.prompt_len + args.new_tokens)), os.path.join(tmp, "hf")
            )
            params, config = import_hf(hf_dir, scan_layers=preset.scan_layers, config_overrides={"dtype": args.dtype})
            name = f"preset {args.preset} (random weights)"
        rng = np.random.default_rng(0)
        prompts = [rng.integers(3, config.vocab_size, args.prompt_len).tolist() for _ in range(args.batch_size)]
        run = {}
        for side in sides:
            if side == "hf":
                run[side] = hf_side(hf_dir, args.new_tokens, args.torch_threads)
            else:
                run[side] = jax_side(
                    config,
                    params,
                    args.batch_size,
                    args.new_tokens,
                    args.prompt_len,
                    use_cache=side == "jax_kv",
                    unroll_layers=args.unroll_layers,
                )
        tokens, first = {}, {}
        for side in sides:  # compile / warm up
            t0 = time.perf_counter()
            tokens[side] = run[side](prompts)
            first[side] = time.perf_counter() - t0
            assert all(len(t) == args.new_tokens for t in tokens[side]), side
        rates: dict[str, list[float]] = {side: [] for side in sides}
        for r in range(args.repeats):
            for side in sides[r % len(sides) :] + sides[: r % len(sides)]:
                t0 = time.perf_counter()
                run[side](prompts)
                rates[side].append(args.batch_size * args.new_tokens / (time.perf_counter() - t0))

    import torch

    print(
        json.dumps(
            {
                "model": name,
                "params": config.num_params(),
                "backend": jax.default_backend(),
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "batch_size": args.batch_size,
                "prompt_len": args.prompt_len,
                "new_tokens": args.new_tokens,
                "jax_dtype": config.dtype,
                "unroll_layers": args.unroll_layers,
                "repeats": args.repeats,
            }
        )
    )
    ref = tokens[sides[0]]
    for side in sides:
        s = summarize(rates[side])
        agree = np.mean([a == b for ra, rb in zip(tokens[side], ref) for a, b in zip(ra, rb)])
        print(
            f"{side:12s} tokens/s min {s['min']:8.1f}  median {s['median']:8.1f}  max {s['max']:8.1f}   "
            f"(first call {first[side]:.1f}s; greedy tokens equal to {sides[0]}: {agree:.1%})"
        )
    if "jax_kv" in rates and "hf" in rates:
        ratio = statistics.median(rates["jax_kv"]) / statistics.median(rates["hf"])
        print(f"jax_kv / hf median tokens/s: {ratio:.2f}x")


if __name__ == "__main__":
    main()
