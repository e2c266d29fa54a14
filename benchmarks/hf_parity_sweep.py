"""Logit parity with transformers on random llama / mistral / qwen2 configurations.

Draws configurations the tests do not use (family, head counts, kv heads, head_dim, RoPE theta and
llama3 scaling, Mistral sliding windows, vocab sizes, RMSNorm eps, depth, tied embeddings, scanned
or unrolled layout), converts a random fp32
HF model of each with orca_jax.convert, and prints the max |logit difference| of our model
against transformers (`import`) and of the exported-and-reloaded HF model (`export`).
Exits 1 if any exceeds the tolerance. CPU, about a second per configuration:

    python benchmarks/hf_parity_sweep.py [--n 10] [--seed 0] [--tol 1e-4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
from orca_jax.convert.parity import hf_parity


def random_config(rng: np.random.Generator) -> dict:
    """A small random configuration: `model_type` plus transformers config keyword arguments."""
    n_heads = int(rng.choice([1, 2, 3, 4, 6, 8]))
    divisors = [k for k in range(1, n_heads + 1) if n_heads % k == 0]
    model_type = str(rng.choice(["llama", "mistral", "qwen2"]))
    extra: dict = {}
    if model_type == "mistral":
        extra["sliding_window"] = int(rng.integers(2, 40)) if rng.random() < 0.7 else None
    if model_type == "llama" and rng.random() < 0.5:
        extra["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": float(rng.choice([8.0, 32.0])),
            "low_freq_factor": 1.0,
            "high_freq_factor": float(rng.choice([2.0, 4.0])),
            "original_max_position_embeddings": int(rng.choice([16, 32, 64])),
        }
    return dict(
        model_type=model_type,
        **extra,
        vocab_size=int(rng.integers(32, 400)),
        hidden_size=n_heads * int(rng.integers(1, 9)) * 4,  # transformers wants heads | hidden
        intermediate_size=int(rng.integers(4, 33)) * 4,
        num_hidden_layers=int(rng.integers(1, 4)),
        num_attention_heads=n_heads,
        num_key_value_heads=int(rng.choice(divisors)),
        head_dim=int(rng.choice([4, 8, 12, 16, 32])),
        rope_theta=float(10 ** rng.uniform(3, 6.5)),
        rms_norm_eps=float(rng.choice([1e-6, 1e-5, 1e-4])),
        tie_word_embeddings=bool(rng.random() < 0.3),
        max_position_embeddings=128,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="number of configurations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, default=1e-4)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    worst = 0.0
    for k in range(args.n):
        cfg = random_config(rng)
        scan = bool(rng.random() < 0.5)
        seq_len = int(rng.integers(4, 33))
        with tempfile.TemporaryDirectory() as work_dir:
            r = hf_parity(work_dir, scan_layers=scan, seed=args.seed + k, seq_len=seq_len, **cfg)
        worst = max(worst, r["import"], r["export"])
        family = cfg["model_type"] + "".join(
            f" {key}={cfg[key]}" for key in ("sliding_window", "rope_scaling") if cfg.get(key)
        )
        print(
            f"[{k}] {family} vocab={cfg['vocab_size']} d={cfg['hidden_size']} ff={cfg['intermediate_size']} "
            f"L={cfg['num_hidden_layers']} h={cfg['num_attention_heads']} kv={cfg['num_key_value_heads']} "
            f"hd={cfg['head_dim']} theta={cfg['rope_theta']:.0f} eps={cfg['rms_norm_eps']:g} "
            f"tied={cfg['tie_word_embeddings']} scan={scan} len={seq_len}: "
            f"max|diff| import={r['import']:.2e} export={r['export']:.2e} (|logits|<={r['logit_scale']:.1f})",
            flush=True,
        )
    ok = worst <= args.tol
    print(f"worst max|diff| = {worst:.2e} ({'within' if ok else 'ABOVE'} tol {args.tol:g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
