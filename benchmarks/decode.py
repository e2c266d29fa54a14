"""Generated tokens per second with and without the KV cache (random weights).

    python benchmarks/decode.py --preset=tiny --batch_size=8 --prompt_len=64 --new_tokens=64

Both decoders are orca_jax.evaluation.decoding.Decoder: `use_cache=True` prefills the
prompt once, then feeds one token per step; `use_cache=False` reruns the whole sequence at
every step (the reference used in tests). EOS is disabled, so every row generates
`new_tokens` tokens. The first call (compilation) is timed apart; the reported rate is the
median of `--repeats` timed calls: batch_size * new_tokens / seconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from orca_jax.evaluation.decoding import Decoder
from orca_jax.models import Llama, get_preset


def measure(decoder: Decoder, prompts: list[list[int]], new_tokens: int, repeats: int) -> dict:
    t0 = time.perf_counter()
    out = decoder.generate(prompts, new_tokens)
    first = time.perf_counter() - t0
    assert all(len(t) == new_tokens for t in out.tokens)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decoder.generate(prompts, new_tokens)
        times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    return {"first_call_s": round(first, 3), "median_s": round(seconds, 4),
            "tokens_per_s": round(len(prompts) * new_tokens / seconds, 1), "tokens": out.tokens}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--prompt_len", type=int, default=64)
    p.add_argument("--new_tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default=None, help="compute dtype override, e.g. bfloat16")
    p.add_argument("--skip_no_cache", action="store_true", help="only the KV-cache decoder (large models)")
    args = p.parse_args()

    overrides = {"remat_policy": "none", "max_len": max(args.prompt_len + args.new_tokens, 16)}
    if args.dtype:
        overrides["dtype"] = args.dtype
    cfg = get_preset(args.preset, **overrides)
    params = jax.jit(lambda k: nn.unbox(Llama(cfg).init(k, jnp.zeros((1, 1), jnp.int32)))["params"])(
        jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, cfg.vocab_size, args.prompt_len).tolist() for _ in range(args.batch_size)]
    kw = dict(batch_size=args.batch_size, eos_id=-1, pad_id=0, min_prompt_bucket=args.prompt_len)
    rows = {"kv_cache": measure(Decoder(cfg, params, use_cache=True, **kw), prompts, args.new_tokens, args.repeats)}
    if not args.skip_no_cache:
        rows["no_cache"] = measure(Decoder(cfg, params, use_cache=False, **kw), prompts, args.new_tokens, args.repeats)
        same = rows["kv_cache"]["tokens"] == rows["no_cache"]["tokens"]
    header = {"preset": args.preset, "backend": jax.default_backend(), "device": str(jax.devices()[0]),
              "batch_size": args.batch_size, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens,
              "dtype": cfg.dtype, "params": cfg.num_params()}
    print(json.dumps(header))
    for name, r in rows.items():
        print(f"{name:9s} {r['tokens_per_s']:>10.1f} generated tokens/s  (median of {args.repeats}: "
              f"{r['median_s']:.3f}s; first call incl. compile {r['first_call_s']:.1f}s)")
    if not args.skip_no_cache:
        print(f"speed-up {rows['kv_cache']['tokens_per_s'] / rows['no_cache']['tokens_per_s']:.1f}x; "
              f"greedy tokens identical: {same}")


if __name__ == "__main__":
    main()
