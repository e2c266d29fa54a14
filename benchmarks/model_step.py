"""Forward+backward throughput and MFU of a model preset on whatever devices exist.

    python benchmarks/model_step.py --preset tiny --batch 8 --length 256
    python benchmarks/model_step.py --preset llama_1b --batch 1 --length 512 --steps 2

The batch is sharded over all devices along (data, fsdp) with FSDP parameters; the loss
is the token-level cross-entropy of the model's next-token logits. Prints one line per
setting: tokens/s, step time and MFU against the device table in orca_jax/training/flops.py.
"""

from __future__ import annotations

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from orca_jax import partitioning
from orca_jax.models import Llama, get_preset
from orca_jax.training.flops import mfu, peak_flops_per_device


def build_step(cfg, mesh, rules, batch, length):
    """A jitted `(params, tokens) -> (loss, grads)` sharded over `mesh`, and initial params."""
    model = Llama(cfg)
    tokens_spec = jax.ShapeDtypeStruct((batch, length), jnp.int32)
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), tokens_spec)
    p_shard = partitioning.params_shardings(abstract, mesh, rules)["params"]
    b_shard = partitioning.batch_sharding(mesh, rules)

    def loss_fn(params, tokens):
        logits = model.apply({"params": params}, tokens)
        logp = jax.nn.log_softmax(logits[:, :-1])
        return -jnp.mean(jnp.take_along_axis(logp, tokens[:, 1:, None], axis=-1))

    with partitioning.mesh_context(mesh, rules):
        init = jax.jit(
            lambda rng: nn.unbox(model.init(rng, jnp.zeros((1, length), jnp.int32)))["params"], out_shardings=p_shard
        )
        params = init(jax.random.PRNGKey(0))
        step = jax.jit(jax.value_and_grad(loss_fn), in_shardings=(p_shard, b_shard), out_shardings=(None, p_shard))
    return step, params, b_shard


def run(preset: str, batch: int, length: int, steps: int, dtype: str, remat: str, attention: str) -> None:
    cfg = get_preset(preset, dtype=dtype, remat_policy=remat, attention_impl=attention, max_len=max(length, 8))
    mesh = partitioning.make_mesh((1, -1, 1))
    rules = partitioning.logical_axis_rules()
    step, params, b_shard = build_step(cfg, mesh, rules, batch, length)
    tokens = jax.device_put(
        np.random.default_rng(0).integers(0, cfg.vocab_size, (batch, length), dtype=np.int32), b_shard
    )
    with partitioning.mesh_context(mesh, rules):
        t0 = time.perf_counter()
        jax.block_until_ready(step(params, tokens))
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            loss, grads = step(params, tokens)
        jax.block_until_ready((loss, grads))
    step_s = (time.perf_counter() - t0) / steps
    tokens_per_s = batch * length / step_s
    n = len(jax.devices())
    util = mfu(cfg.flops_per_token(length), tokens_per_s, n, peak_flops_per_device())
    print(
        f"preset={preset} params={cfg.num_params() / 1e6:.1f}M devices={n}x{jax.devices()[0].device_kind} "
        f"batch={batch} length={length} dtype={dtype} remat={remat} attention={attention} | "
        f"compile {compile_s:.1f}s step {step_s * 1e3:.1f}ms tokens/s {tokens_per_s:,.0f} "
        f"MFU {util * 100 if util is not None else float('nan'):.2f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--remat", default="full")
    parser.add_argument("--attention", default="auto")
    args = parser.parse_args()
    run(args.preset, args.batch, args.length, args.steps, args.dtype, args.remat, args.attention)


if __name__ == "__main__":
    main()
