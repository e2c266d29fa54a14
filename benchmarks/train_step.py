"""Throughput and MFU of the full train step (loss, AdamW, clipping, accumulation) on the
devices present, as the trainer compiles it.

    python benchmarks/train_step.py --preset tiny --batch 16 --length 128
    python benchmarks/train_step.py --preset llama_1b --batch 8 --length 2048 --chunk 512 --mesh 1,-1,1

Prints one line: compile time, step time, token slots/s and MFU (orca_jax/training/flops.py).
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from orca_jax import partitioning
from orca_jax.models import get_preset
from orca_jax.training import train_state as ts
from orca_jax.training.batches import SyntheticBatches
from orca_jax.training.feeding import to_global
from orca_jax.training.flops import mfu, peak_flops_per_device
from orca_jax.training.loss import LossConfig
from orca_jax.training.optimizer import make_optimizer
from orca_jax.training.train_step import batch_abstract, compile_train_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--microbatches", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=None, help="LossConfig.chunk_size")
    parser.add_argument("--mesh", default="1,-1,1", help="data,fsdp,tensor")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()

    config = get_preset(args.preset, max_len=max(args.length, 8))
    mesh = partitioning.make_mesh(tuple(int(x) for x in args.mesh.split(",")))
    rules = partitioning.logical_axis_rules()
    optimizer = make_optimizer(1000)
    shardings = ts.state_shardings(config, optimizer, mesh, rules)
    batch_spec = batch_abstract((args.batch, args.length), mesh, rules)
    start = time.perf_counter()
    step = compile_train_step(
        config,
        optimizer,
        LossConfig(chunk_size=args.chunk),
        args.microbatches,
        mesh,
        rules,
        ts.abstract_state(config, optimizer, shardings),
        batch_spec,
    )
    compile_s = time.perf_counter() - start
    state = ts.init_state(config, optimizer, shardings, seed=0)
    source = SyntheticBatches(args.length, args.batch)
    batch = to_global(next(source), batch_spec["decoder_input_tokens"].sharding, args.batch)
    state, metrics = step(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(args.steps):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    step_s = (time.perf_counter() - start) / args.steps
    slots_per_s = args.batch * args.length / step_s
    util = mfu(config.flops_per_token(args.length), slots_per_s, mesh.size, peak_flops_per_device())
    print(
        f"preset={args.preset} devices={mesh.size}x{jax.devices()[0].device_kind} mesh={dict(mesh.shape)} "
        f"batch={args.batch} length={args.length} microbatches={args.microbatches} chunk={args.chunk} | "
        f"compile {compile_s:.1f}s step {step_s * 1e3:.1f}ms slots/s {slots_per_s:,.0f} "
        f"MFU {np.nan if util is None else util * 100:.2f}% loss {float(metrics['loss']):.3f}"
    )


if __name__ == "__main__":
    main()
