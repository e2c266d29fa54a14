r"""Ahead-of-time compile a gin config's train step for a TPU slice, on any machine.

    python -m orca_jax.tools.aot_compile --gin_file=runs/orca_13b_v5p_128.gin --topology=v5p-128
    python -m orca_jax.tools.aot_compile --gin_file=runs/orca_13b.gin --topology=v4-256 \
        --gin.PartitioningConfig.mesh_shape="(1, -1, 1)" --stage=stage2 --skip_decode

What it builds is the trainer's own step, not a copy: gin is parsed exactly as
`orca_jax.train` parses it (orca_jax/gin_utils.py); `trainer.stage_config` builds the typed
config of the stage (`--stage`, default the first of `RunConfig.stages`) and
`trainer.build_setup` the mesh, rules, optimizer and sharded abstract state from it;
`train_step.compile_train_step` lowers and compiles it. The only differences from a run on
the slice: the mesh is built over the compile-only devices of
`jax.experimental.topologies.get_topology_desc` (passed to `build_setup`), and
`jax.default_backend()` answers "tpu" while the model is traced, so that `attention_impl='auto'` resolves as it does on a TPU VM. Inputs are ShapeDtypeStructs with
shardings: no weight is ever allocated.

It then prints, per device, `compiled.memory_analysis()` (arguments, outputs, aliased,
temporaries, generated code; total = arguments + temporaries + outputs - aliased, as
MaxText counts it) against the chip's HBM, and the FLOPs (XLA's cost_analysis, which counts
the body of a scanned layer stack once, beside the analytic count). Then it compiles the
evaluation's generate function (orca_jax.evaluation.decoding: prefill of the longest
prompt bucket + the KV-cache decode loop, at the evaluation batch size) and prints its
memory. Finally the analytic time of every stage on the slice: slots (steps x batch x
length) x `LlamaConfig.flops_per_token(length)` (6N + causal attention, the same figure as
the step time) / (chips x peak x --mfu).

`--max_batch` also finds the largest global batch whose train step fits with
`--min_headroom`: memory is close to affine in the batch, so the tool compiles at a second
batch, extrapolates to the budget, compiles that candidate and steps by the data-parallel
granularity (batch mesh axes x microbatches) until it holds a batch that fits next to one
that does not.

Exit status: 0 everything fits with `--min_headroom` to spare; 1 something does not fit
(the message names the topology, the total, the HBM and what to change); 2 a usage,
gin, mesh, batch or compile error, or libtpu missing (`pip install -e ".[tpu]"`).

Needs libtpu (jax[tpu]) but no TPU. The first check is analytic and costs no compile: the
sharded train state alone (fp32 params + Adam moments, 12 bytes per parameter) must fit.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from orca_jax import gin_utils
from orca_jax.tools import topologies as topo_lib

GiB = 1024**3
FIT, DOES_NOT_FIT, ERROR = 0, 1, 2
DEFAULT_EVAL_BATCH_SIZE = 32  # gin_configs/eval/paper_zero_shot.gin
DEFAULT_EVAL_MAX_NEW_TOKENS = 512  # gin_configs/eval/paper_zero_shot.gin
DEFAULT_MFU = 0.4
UNUSED_MODEL_DIR = "/nonexistent/aot_compile_writes_nothing"


class AotError(Exception):
    """A config, mesh, batch or environment problem: printed as `error: ...`, exit status 2."""


class DoesNotFit(Exception):
    """A compiled (or analytically sized) program exceeds the HBM budget: exit status 1."""


# ---------------------------------------------------------------------------------------------
# Flags and gin


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m orca_jax.tools.aot_compile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    gin_utils.add_gin_flags(parser)
    parser.add_argument(
        "--topology",
        required=True,
        help="TPU slice, e.g. v5p-128, v4-256, v5litepod-256 (see orca_jax/tools/topologies.py)",
    )
    parser.add_argument("--num_slices", type=int, default=1, help="multislice: number of slices (default 1)")
    parser.add_argument(
        "--stage", default=None, help="gin scope of the stage to compile (default: the first of RunConfig.stages)"
    )
    parser.add_argument("--skip_decode", action="store_true", help="do not compile the evaluation decode")
    parser.add_argument(
        "--eval_batch_size",
        type=int,
        default=DEFAULT_EVAL_BATCH_SIZE,
        help="evaluation decode rows (rounded up to the batch mesh axes, as the runner does)",
    )
    parser.add_argument(
        "--eval_max_new_tokens",
        type=int,
        default=None,
        help=f"evaluation generation budget (default {DEFAULT_EVAL_MAX_NEW_TOKENS}, at most a "
        "quarter of max_len); the prompt bucket is max_len minus this",
    )
    parser.add_argument(
        "--min_headroom",
        type=float,
        default=0.1,
        help="fraction of HBM that must stay free (default 0.1: XLA's numbers leave out "
        "runtime buffers and fragmentation)",
    )
    parser.add_argument("--hbm_gib", type=float, default=None, help="override the chip's HBM (GiB)")
    parser.add_argument(
        "--mfu",
        type=float,
        default=DEFAULT_MFU,
        help="model FLOPs utilisation assumed for the analytic stage times (default 0.4)",
    )
    parser.add_argument(
        "--max_batch",
        action="store_true",
        help="also find the largest global batch whose train step fits with --min_headroom "
        "(compiles at a second batch, extrapolates, confirms: 2-4 more compiles)",
    )
    parser.add_argument("--json", default=None, help="also write the results as JSON to this path")
    args = gin_utils.parse_known_gin_args(parser, argv)
    if not 0 <= args.min_headroom < 1:
        parser.error(f"--min_headroom={args.min_headroom}: expected a fraction in [0, 1)")
    if not 0 < args.mfu <= 1:
        parser.error(f"--mfu={args.mfu}: expected a fraction in (0, 1]")
    if args.num_slices < 1:
        parser.error(f"--num_slices={args.num_slices}: expected >= 1")
    return args


def parse_gin(args: argparse.Namespace) -> None:
    """Parse the config as `orca_jax.train` does; errors -> AotError. Nothing is written, so
    the run directory (MODEL_DIR, which runs/ files require) is bound to a placeholder."""
    bindings = [*args.gin_bindings, f"MODEL_DIR = {UNUSED_MODEL_DIR!r}"]
    try:
        gin_utils.parse_gin(args.gin_file, bindings, args.gin_search_paths)
    except Exception as e:  # gin raises ValueError, IOError, KeyError... with the file and line
        raise AotError(f"gin: {type(e).__name__}: {e}") from e


def resolve_stage(requested: str | None, stages: tuple[str, ...]) -> str:
    """The stage to compile: --stage, else the first of RunConfig.stages."""
    if requested is None:
        return stages[0]
    if requested not in stages:
        raise AotError(f"--stage={requested!r} is not one of RunConfig.stages {stages}")
    return requested


# ---------------------------------------------------------------------------------------------
# Topology and model tracing


def libtpu_available() -> bool:
    return importlib.util.find_spec("libtpu") is not None


def create_topology(name: str, num_slices: int):
    """(Topology, compile-only devices); libtpu is needed but no TPU."""
    topology = topo_lib.get_topology(name, flag="--topology")
    if not libtpu_available():
        raise AotError(
            "libtpu is not installed, and AOT compilation for a TPU topology needs it (no TPU "
            "needed): pip install 'jax[tpu]==0.10.2' (or pip install -e '.[tpu]')"
        )
    # libtpu looks for the local TPU VM's workers and type; there is none on a CPU machine.
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", topology.accelerator)
    # No TPU is opened, so other processes may load libtpu at the same time (else the second
    # one fails on /tmp/libtpu_lockfile).
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    try:
        desc = topo_lib.get_topology_desc(topology.accelerator, num_slices)
    except Exception as e:
        raise AotError(
            f"--topology={name}: libtpu could not describe {topology.topology_name} ({type(e).__name__}: {e})"
        ) from e
    devices = list(desc.devices)
    expected = topology.num_devices * num_slices
    if len(devices) != expected:
        raise AotError(f"--topology={name}: libtpu returned {len(devices)} devices, expected {expected}")
    return topology, devices


@contextlib.contextmanager
def platform_backend(platform: str) -> Iterator[None]:
    """`jax.default_backend()` answers `platform` while the model is traced and compiled.

    The model decides its attention kernel with jax.default_backend() (attention.resolve_impl;
    splash_attention's check reads the mesh's devices when a mesh is active); on a CPU machine
    compiling for a TPU slice that is "cpu".
    The persistent compilation cache is off meanwhile: a compile-only TPU executable cannot be
    read back without a TPU client (jax warns on every hit).
    """
    from unittest import mock

    import jax

    try:
        from jax._src.config import enable_compilation_cache

        no_cache = enable_compilation_cache(False)
    except (ImportError, TypeError):
        no_cache = contextlib.nullcontext()
    with mock.patch.object(jax, "default_backend", lambda: platform), no_cache:
        yield


# ---------------------------------------------------------------------------------------------
# Memory


@dataclasses.dataclass(frozen=True)
class Memory:
    """Per-device bytes of one compiled program (compiled.memory_analysis())."""

    arguments: int
    outputs: int
    aliased: int
    temporaries: int
    generated_code: int

    @property
    def total(self) -> int:
        return self.arguments + self.temporaries + self.outputs - self.aliased

    @classmethod
    def of(cls, compiled) -> Memory:
        m = compiled.memory_analysis()
        if m is None:
            raise AotError("compiled.memory_analysis() returned None for this backend")
        return cls(
            int(m.argument_size_in_bytes),
            int(m.output_size_in_bytes),
            int(m.alias_size_in_bytes),
            int(m.temp_size_in_bytes),
            int(m.generated_code_size_in_bytes),
        )

    def as_dict(self) -> dict[str, int]:
        return {**dataclasses.asdict(self), "total": self.total}


def gib(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if abs(n) >= 0.1 * GiB else f"{n / 2**20:.1f} MiB"


def shard_bytes(tree: Any) -> int:
    """Per-device bytes of a tree of ShapeDtypeStructs with shardings (the largest shard)."""
    import jax
    import numpy as np

    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        total += math.prod(shape) * np.dtype(leaf.dtype).itemsize
    return total


def compiled_flops(compiled) -> float | None:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    return None if not cost or "flops" not in cost else float(cost["flops"])


# ---------------------------------------------------------------------------------------------
# Checks


class _HostView:
    """A sharding as host `host` of the slice sees it (its addressable devices)."""

    def __init__(self, sharding, host: int):
        self._sharding, self._host = sharding, host

    def addressable_devices_indices_map(self, shape):
        return {d: i for d, i in self._sharding.devices_indices_map(shape).items() if d.process_index == self._host}

    def __getattr__(self, name):
        return getattr(self._sharding, name)


def host_feeding_problems(sharding, shape: tuple[int, ...]) -> list[str]:
    """Run the trainer's own `feeding.host_data_shard` as every host of the slice would.

    Returns one message per host it rejects (empty: every host can read its rows); hosts
    holding different rows must get different data shards.
    """
    from unittest import mock

    import jax

    from orca_jax.training.feeding import host_data_shard

    hosts = sorted({d.process_index for d in sharding.device_set})
    problems, shards = [], {}
    for host in hosts:
        view = _HostView(sharding, host)
        rows = tuple(sorted((i[0].start or 0, i[0].stop) for i in view.addressable_devices_indices_map(shape).values()))
        try:
            with mock.patch.object(jax, "process_index", lambda: host):
                shard = host_data_shard(view, shape)
        except ValueError as e:
            problems.append(f"host {host}: {e}")
            continue
        if shards.setdefault(shard, rows) != rows:
            problems.append(f"host {host}: data shard {shard} is also given to a host holding other rows")
    return problems


def suggestions(setup, activations: bool, state_bytes: int, budget: int) -> list[str]:
    """What to change, from what dominates the per-device total."""
    import jax

    from orca_jax import partitioning

    mesh = dict(setup.mesh.shape)
    batch_axes = partitioning.mesh_axes_size(setup.mesh, dict(setup.rules).get("batch"))
    config = setup.config
    data, microbatches = config.data, config.num_microbatches
    rows = data.batch_size // microbatches // batch_axes
    tips = []
    if state_bytes > 0.4 * budget:
        total_state = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(setup.abstract))
        tips.append(
            f"the train state (fp32 params + 2 Adam moments, 12 bytes/param) is {gib(state_bytes)} per "
            f"device ({gib(total_state)} in all, so at least {math.ceil(total_state / budget)} chips of "
            f"this HBM even fully sharded): shard it over more chips with a larger fsdp axis "
            f"(PartitioningConfig.mesh_shape now {tuple(mesh.values())}; (1, -1, 1) puts every chip on fsdp) "
            "or use a larger slice"
        )
    if activations:
        if config.model.remat_policy != "full":
            tips.append(
                f"remat_policy='full' (now {config.model.remat_policy!r}) keeps only each block's input "
                "for the backward pass (model_config.overrides)"
            )
        if rows > 1:
            tips.append(
                f"raise StageConfig.num_microbatches (now {microbatches}, {rows} rows per "
                "device per microbatch): activations shrink with the microbatch"
            )
        if config.loss.chunk_size is None:
            tips.append(
                f"set LossConfig.chunk_size = {min(512, data.sequence_length)} so that the fp32 "
                "logits [rows, length, vocab] are never materialised whole"
            )
        tips.append(
            f"or lower the global batch (DataConfig.batch_size={data.batch_size}) or sequence length "
            f"(DataConfig.sequence_length={data.sequence_length}), or move to chips with more HBM"
        )
    return tips


def verdict(what: str, topology, memory_total: int, hbm: int, min_headroom: float) -> str | None:
    """None if `memory_total` fits with the headroom, else the reason."""
    budget = int(hbm * (1 - min_headroom))
    if memory_total <= budget:
        return None
    if memory_total > hbm:
        return (
            f"{what} does not fit on {topology.accelerator}: {gib(memory_total)} per device > {gib(hbm)} HBM per chip"
        )
    return (
        f"{what} on {topology.accelerator} needs {gib(memory_total)} per device: it fits in the "
        f"{gib(hbm)} HBM but leaves less than the required {min_headroom:.0%} headroom "
        f"(budget {gib(budget)}; --min_headroom)"
    )


# ---------------------------------------------------------------------------------------------
# The two programs


def compile_train(setup, platform: str):
    """The trainer's step (`trainer.compile_step`) for `setup`, traced as on `platform`."""
    from orca_jax.training import trainer

    with platform_backend(platform):
        return trainer.compile_step(setup)


def compile_decode(setup, eval_batch_size: int, max_new_tokens: int | None, platform: str):
    """AOT-compile the evaluation's `_generate_cached` (prefill + KV-cache decode loop) as
    `Decoder.generate` jits it, for the longest prompt bucket; returns (compiled, batch, prompt)."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from orca_jax import partitioning
    from orca_jax.evaluation import decoding

    mesh, rules = setup.mesh, setup.rules
    # As evaluation.runner.evaluate: the batch is rounded up to the batch mesh axes.
    batch = decoding.round_up(eval_batch_size, partitioning.mesh_axes_size(mesh, dict(rules).get("batch")))
    config = setup.config.model.replace(remat_policy="none", attention_impl="xla")  # as Decoder.__init__
    if max_new_tokens is None:
        max_new_tokens = min(DEFAULT_EVAL_MAX_NEW_TOKENS, config.max_len // 4)
    prompt = config.max_len - max_new_tokens
    if prompt < 1:
        raise AotError(f"--eval_max_new_tokens={max_new_tokens} leaves no prompt in max_len={config.max_len}")
    rows = partitioning.batch_spec(rules)[0]

    def rows_sharded(shape, dtype):
        spec = PartitionSpec(rows, *([None] * (len(shape) - 1)))
        return jax.ShapeDtypeStruct(shape, dtype, sharding=NamedSharding(mesh, spec))

    scalar = lambda dtype: jax.ShapeDtypeStruct((), dtype, sharding=partitioning.replicated(mesh))  # noqa: E731
    params = setup.abstract.params  # fp32 as checkpoints.load_params restores them, same shardings
    args = (
        params,
        rows_sharded((batch, prompt), jnp.int32),
        rows_sharded((batch, prompt), jnp.int32),
        rows_sharded((batch, prompt), jnp.int32),
        rows_sharded((batch, 2), jnp.uint32),
        rows_sharded((batch,), jnp.bool_),
        scalar(jnp.int32),
        scalar(jnp.int32),
        scalar(jnp.float32),
        scalar(jnp.float32),
    )
    fn = decoding._jitted(
        decoding._generate_cached,
        config,  # noqa: SLF001  the Decoder's own jit
        (("greedy", True), ("max_new_tokens", max_new_tokens)),
    )
    with platform_backend(platform), partitioning.mesh_context(mesh, rules):
        compiled = fn.lower(*args).compile()
    return compiled, batch, prompt, max_new_tokens


# ---------------------------------------------------------------------------------------------
# Analytic stage times


def stage_times(topology, stages: dict[str, Any], mfu: float, num_slices: int = 1) -> list[dict[str, Any]]:
    """Per stage (name -> StageConfig): slots = steps x batch x length; hours at the model's
    `flops_per_token(length)` (6N + causal attention), the figure the step time uses too."""
    out = []
    for stage, config in stages.items():
        steps, (batch, length) = config.num_train_steps, config.data.batch_shape
        if not steps:
            continue
        tokens = steps * batch * length
        flops_per_token = config.model.flops_per_token(length)
        flops = flops_per_token * tokens
        seconds = flops / (topology.num_chips * num_slices * topology.peak_bf16_flops_per_chip * mfu)
        out.append(
            {
                "stage": stage,
                "steps": steps,
                "batch_size": batch,
                "sequence_length": length,
                "tokens": tokens,
                "flops_per_token": flops_per_token,
                "flops": flops,
                "hours": seconds / 3600,
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Largest batch


@dataclasses.dataclass(frozen=True)
class BatchSearch:
    """The largest global batch whose train step fits the budget, and how it was found."""

    batch_size: int | None  # None: not even `granularity` rows fit
    total: int | None  # per-device bytes at batch_size
    granularity: int  # the step between valid batches (batch mesh axes x microbatches)
    compiled: tuple[tuple[int, int | None], ...]  # (batch, per-device total; None = compiler OOM), in order
    slope: float | None  # extrapolated bytes per extra row of global batch

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "compiled": [list(c) for c in self.compiled]}


def search_max_batch(
    total_at, start: int, start_total: int, granularity: int, budget: int, max_compiles: int = 12
) -> BatchSearch:
    """The largest multiple of `granularity` whose per-device total fits `budget`.

    `total_at(batch)` compiles the train step and returns its per-device total (None when the
    compiler runs out of memory); `start` is a batch known to fit, at `start_total`. Memory is
    close to affine in the batch: compile at 2 x start, then repeatedly extrapolate along the
    line through the last two compiled batches (a secant step) and compile the candidate,
    keeping it strictly between the largest batch known to fit and the smallest known not
    to. Stops with a compiled batch that fits next to a compiled one that does not.
    """
    seen: dict[int, int | None] = {start: start_total}

    def fits(batch: int) -> bool:
        return seen[batch] is not None and seen[batch] <= budget

    slope = None
    candidate = start + max(granularity, start // granularity * granularity)
    while True:
        if len(seen) > max_compiles:
            raise AotError(f"--max_batch: no answer after {max_compiles} compiles ({sorted(seen.items())})")
        seen[candidate] = total_at(candidate)
        lo = max(b for b in seen if fits(b)) if any(fits(b) for b in seen) else 0
        above = [b for b in seen if not fits(b)]
        hi = min(above) if above else None
        if hi is not None and hi - lo <= granularity:
            break
        measured = [b for b in seen if seen[b] is not None][-2:]  # the secant of the last two
        guess = None
        if len(measured) == 2 and seen[measured[0]] != seen[measured[1]]:
            (b0, m0), (b1, m1) = ((b, seen[b]) for b in measured)
            slope = (m1 - m0) / (b1 - b0)
            if slope > 0:
                guess = int((b0 + (budget - m0) / slope) // granularity) * granularity
        if hi is not None and (guess is None or guess >= hi):  # the line leaves the bracket: halve it
            guess = (lo + hi) // 2 // granularity * granularity
        elif guess is None:  # no usable line and nothing known not to fit: double
            guess = 2 * max(lo, granularity)
        candidate = max(guess, lo + granularity)
        if hi is not None:
            candidate = min(candidate, hi - granularity)
        if candidate in seen:  # only if memory is not monotone in the batch
            raise AotError(f"--max_batch: memory is not monotone in the batch ({sorted(seen.items())})")
    found = lo or None  # 0: not even `granularity` rows fit
    return BatchSearch(found, seen[lo] if found else None, granularity, tuple(seen.items()), slope)


def train_total_at(setup, batch: int, platform: str) -> int | None:
    """Per-device total of the train step compiled at global `batch` (None: compiler OOM)."""
    from orca_jax.training.train_step import batch_abstract

    config = dataclasses.replace(setup.config, data=dataclasses.replace(setup.config.data, batch_size=batch))
    at_batch = dataclasses.replace(
        setup, config=config, batch=batch_abstract(config.data.batch_shape, setup.mesh, setup.rules)
    )
    try:
        compiled = compile_train(at_batch, platform)
    except Exception as e:  # XLA:TPU refuses what cannot fit in HBM
        if "RESOURCE_EXHAUSTED" in str(e):
            return None
        raise
    total = Memory.of(compiled).total
    print(f"   --max_batch: batch {batch} x {config.data.sequence_length}: {gib(total)} per device")
    return total


def batch_granularity(setup) -> int:
    """The step between valid global batches: every microbatch splits over the batch mesh axes."""
    from orca_jax import partitioning

    return partitioning.mesh_axes_size(setup.mesh, dict(setup.rules).get("batch")) * setup.config.num_microbatches


# ---------------------------------------------------------------------------------------------
# Main


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Everything but printing the final verdict; raises AotError / DoesNotFit."""
    topo_lib.get_topology(args.topology, flag="--topology")  # a bad name fails before anything
    parse_gin(args)  # before anything else: a typo fails in a second
    from orca_jax.training import trainer

    try:  # the trainer's own typed configs, built and checked as it builds them
        run_config, stages = trainer.configs_from_gin()
        stage = resolve_stage(args.stage, run_config.stages)
        config = stages[stage]
        trainer.validate(config, stage)
    except ValueError as e:
        raise AotError(f"gin: {e}") from e
    data = config.data
    topology, devices = create_topology(args.topology, args.num_slices)
    platform = devices[0].platform
    hbm = int(args.hbm_gib * GiB) if args.hbm_gib else topology.hbm_bytes_per_chip
    budget = int(hbm * (1 - args.min_headroom))

    with platform_backend(platform):
        try:
            setup = trainer.build_setup(config, stage, devices)
        except NotImplementedError as e:
            raise AotError(explain_kernel_error(e, "building the train state (trainer.build_setup)")) from e
        except ValueError as e:
            raise AotError(f"stage {stage!r} on {topology.accelerator}: {e}") from e
    feeding = host_feeding_problems(setup.batch["decoder_input_tokens"].sharding, data.batch_shape)

    cfg = config.model
    result: dict[str, Any] = {
        "topology": topology.accelerator,
        "topology_name": topology.topology_name,
        "num_slices": args.num_slices,
        "chips": topology.num_chips * args.num_slices,
        "hosts": topology.num_hosts * args.num_slices,
        "hbm_bytes_per_chip": hbm,
        "min_headroom": args.min_headroom,
        "stage": stage,
        "mesh": dict(setup.mesh.shape),
        "batch_size": data.batch_size,
        "sequence_length": data.sequence_length,
        "num_microbatches": config.num_microbatches,
        "remat_policy": cfg.remat_policy,
        "attention_impl": cfg.attention_impl,
        "scan_layers": cfg.scan_layers,
        "num_params": cfg.num_params(),
    }
    print(
        f"== {topology.accelerator} ({topology.topology_name}, {result['chips']} chips, {result['hosts']} hosts, "
        f"{gib(hbm)} HBM/chip), stage {stage}"
    )
    print(
        f"   model {cfg.num_params() / 1e9:.2f}B params ({cfg.n_layers} layers, d_model {cfg.d_model}), "
        f"remat {cfg.remat_policy}, attention {cfg.attention_impl}, scan_layers {cfg.scan_layers}"
    )
    print(
        f"   mesh {' '.join(f'{k}={v}' for k, v in setup.mesh.shape.items())}; global batch {data.batch_size} x {data.sequence_length}, "
        f"{config.num_microbatches} microbatch(es)"
    )
    result["host_feeding_problems"] = feeding
    if feeding:
        print(
            f"   WARNING: the trainer's feeding.host_data_shard rejects this mesh on {topology.accelerator} "
            f"({len(feeding)} of {result['hosts']} hosts), e.g. {feeding[0]}\n"
            "   (the hosts' batch rows must be disjoint, equal shards of the batch; the memory below is "
            "unaffected, but training would stop at startup)"
        )

    # Analytic pre-check: the sharded train state must fit before anything is compiled.
    state_bytes = shard_bytes(setup.abstract)
    result["state_bytes_per_device"] = state_bytes
    print(f"   train state per device (analytic, from the shardings): {gib(state_bytes)}")
    if state_bytes > budget:
        reason = verdict("the train state alone", topology, state_bytes, hbm, args.min_headroom)
        raise DoesNotFit(
            with_tips(reason + " (checked before compiling)", suggestions(setup, False, state_bytes, budget))
        )

    start = time.perf_counter()
    try:
        compiled = compile_train(setup, platform)
    except Exception as e:
        raise compile_failure(e, "the train step", topology, suggestions(setup, True, state_bytes, budget)) from e
    compile_s = time.perf_counter() - start
    memory = Memory.of(compiled)
    xla_flops = compiled_flops(compiled)
    tokens = data.batch_size * data.sequence_length
    model_flops = cfg.flops_per_token(data.sequence_length) * tokens / len(devices)
    result["train"] = {
        "compile_seconds": compile_s,
        "memory": memory.as_dict(),
        "xla_flops_per_device": xla_flops,
        "model_flops_per_device": model_flops,
        "ideal_step_seconds": model_flops / topology.peak_bf16_flops_per_chip,
    }
    print_memory("train step", memory, hbm, compile_s)
    print(
        f"   FLOPs per device per step: model {model_flops:.3e} (6N + attention, LlamaConfig.flops_per_token); "
        f"XLA cost_analysis {xla_flops:.3e} (counts a scanned layer's body once)"
        if xla_flops is not None
        else f"   FLOPs per device per step: model {model_flops:.3e}"
    )
    print(f"   step time at 100% MFU: {model_flops / topology.peak_bf16_flops_per_chip:.2f} s")
    problems = []
    reason = verdict("the train step", topology, memory.total, hbm, args.min_headroom)
    if reason:
        activations = memory.temporaries > 0.3 * budget
        problems.append(with_tips(reason, suggestions(setup, activations, state_bytes, budget)))
    del compiled
    if args.max_batch and not problems:
        result["max_batch"] = report_max_batch(setup, platform, memory.total, budget, args.min_headroom).as_dict()
    elif args.max_batch:
        print(f"   --max_batch: skipped, the configured batch {data.batch_size} does not fit already")

    if not args.skip_decode:
        start = time.perf_counter()
        decode_tips = [
            "lower the evaluation batch (--eval_batch_size, gin evaluate.batch_size; rounded up to the "
            "batch mesh axes) or --eval_max_new_tokens"
        ]
        try:
            compiled, eval_batch, prompt, new_tokens = compile_decode(
                setup, args.eval_batch_size, args.eval_max_new_tokens, platform
            )
        except Exception as e:
            raise compile_failure(e, "the evaluation decode", topology, decode_tips) from e
        compile_s = time.perf_counter() - start
        dmem = Memory.of(compiled)
        result["decode"] = {
            "compile_seconds": compile_s,
            "memory": dmem.as_dict(),
            "batch_size": eval_batch,
            "prompt_length": prompt,
            "max_new_tokens": new_tokens,
            "kv_cache_length": cfg.max_len,
        }
        print(
            f"   eval decode: batch {eval_batch}, prompt bucket {prompt}, {new_tokens} new tokens, "
            f"KV cache {cfg.max_len} slots (prefill + decode loop of evaluation.decoding)"
        )
        print_memory("eval decode", dmem, hbm, compile_s)
        reason = verdict("the evaluation decode", topology, dmem.total, hbm, args.min_headroom)
        if reason:
            problems.append(with_tips(reason, decode_tips))

    times = stage_times(topology, stages, args.mfu, args.num_slices)
    result["stage_times"] = times
    result["mfu"] = args.mfu
    for t in times:
        print(
            f"   {t['stage']}: {t['steps']} steps x {t['batch_size']} x {t['sequence_length']} = "
            f"{t['tokens'] / 1e9:.2f}B token slots; {t['flops_per_token']:.3e} FLOPs/token (6N + attention, "
            f"as the step time); {t['hours']:.1f} h at {args.mfu:.0%} MFU on {result['chips']} chips"
        )
    result["fits"] = not problems
    if args.json:
        write_json(args.json, result)
    if problems:
        raise DoesNotFit("\n".join(problems))
    return result


def report_max_batch(setup, platform: str, start_total: int, budget: int, min_headroom: float) -> BatchSearch:
    """Run `search_max_batch` from the configured batch and print its answer."""
    data, microbatches = setup.config.data, setup.config.num_microbatches
    granularity = batch_granularity(setup)
    found = search_max_batch(
        lambda b: train_total_at(setup, b, platform), data.batch_size, start_total, granularity, budget
    )
    shards = granularity // microbatches  # the batch mesh axes' size
    if found.batch_size is None:
        print(f"   largest global batch with {min_headroom:.0%} headroom: none (not even {granularity} rows)")
    else:
        print(
            f"   largest global batch with {min_headroom:.0%} headroom: {found.batch_size} x "
            f"{data.sequence_length} ({found.batch_size // shards} rows per batch shard), {gib(found.total)} "
            f"per device; {found.batch_size + granularity} does not fit (steps of {granularity}; "
            f"{len(found.compiled) - 1} more compiles)"
        )
    return found


def compile_failure(e: Exception, what: str, topology, tips: list[str]) -> Exception:
    """The exception to raise for a failed lowering/compile of `what` (re-raises unknown ones)."""
    text = str(e)
    if "RESOURCE_EXHAUSTED" in text:  # XLA:TPU refuses to compile what cannot fit in HBM
        detail = text.split("RESOURCE_EXHAUSTED:", 1)[-1].strip().splitlines()[0]
        return DoesNotFit(
            with_tips(
                f"{what} does not fit on {topology.accelerator}: the TPU compiler ran out of memory: {detail}", tips
            )
        )
    if isinstance(e, NotImplementedError):
        return AotError(explain_kernel_error(e, f"compiling {what}"))
    if isinstance(e, (ValueError, TypeError)):
        return AotError(f"compiling {what}: {type(e).__name__}: {e}")
    raise e


def explain_kernel_error(e: Exception, when: str) -> str:
    text = str(e)
    if "automatically partitioned" in text:
        return (
            f"{when}: {text}\n  A Mosaic (Pallas) kernel was called outside shard_map on a mesh of more than "
            "one device (splash attention runs in shard_map under partitioning.mesh_context: "
            "orca_jax/models/attention.py); this fails on a real TPU too. Or use model_config.overrides "
            "attention_impl='xla'."
        )
    if "splash" in text:
        return (
            f"{when}: {text}\n  The splash kernel needs a TPU and lengths divisible by 128; use "
            "attention_impl='xla' for other shapes."
        )
    return f"{when}: {type(e).__name__}: {text}"


def with_tips(reason: str, tips: list[str]) -> str:
    return reason + "".join(f"\n  - {t}" for t in tips)


def print_memory(what: str, m: Memory, hbm: int, compile_s: float) -> None:
    print(
        f"   {what} per device: arguments {gib(m.arguments)}, outputs {gib(m.outputs)}, aliased {gib(m.aliased)}, "
        f"temporaries {gib(m.temporaries)}, generated code {gib(m.generated_code)}"
    )
    print(
        f"   {what} total (arguments + temporaries + outputs - aliased): {gib(m.total)} of {gib(hbm)} HBM "
        f"({m.total / hbm:.1%}; headroom {1 - m.total / hbm:.1%}); compiled in {compile_s:.1f} s"
    )


def write_json(path: str, result: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=2, default=str)


def main(argv: Sequence[str] | None = None) -> int:
    # No TPU backend is needed to compile for a topology; never try to open a local TPU.
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(args)
    except (AotError, ValueError) as e:  # ValueError: the --topology name, before gin
        print(f"error: {e}", file=sys.stderr)
        return ERROR
    except DoesNotFit as e:
        print(f"DOES NOT FIT: {e}", file=sys.stderr)
        return DOES_NOT_FIT
    print(
        f"OK: fits on {result['topology']} with at least {args.min_headroom:.0%} HBM headroom"
        + (" (WARNING: host feeding, see above)" if result["host_feeding_problems"] else "")
    )
    return FIT


if __name__ == "__main__":
    sys.exit(main())
