r"""Train Orca's stages, configured with gin as in T5X.

    python -m orca_jax.train --gin_file=runs/tiny_cpu.gin --gin.MODEL_DIR=/tmp/orca_tiny
    python -m orca_jax.train --gin_file=runs/orca_13b.gin \
        --gin.MODEL_DIR="'gs://bucket/orca13b'" --gin.LEARNING_RATE=1e-5

Gin flags (`--gin_file`, `--gin.NAME=VALUE`): orca_jax/gin_utils.py. The typed configs of
the run and its stages are built from gin once (`trainer.configs_from_gin`), validated
together, and handed to `trainer.run_stages`. Several hosts: pass
`--coordinator_address/--num_processes/--process_id`, or `--distributed` to let
jax.distributed.initialize detect the cluster (TPU pods, SLURM).

SIGTERM (a spot VM's preemption notice) stops training after the current step with a
checkpoint there, and exits 0 (or `--preempted_exit_code`) with a "preempted" message;
rerunning the same command resumes from it (orca_jax/training/preemption.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from orca_jax import gin_utils


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Flags of `python -m orca_jax.train`."""
    parser = argparse.ArgumentParser(
        prog="orca-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    gin_utils.add_gin_flags(parser)
    parser.add_argument("--distributed", action="store_true", help="jax.distributed.initialize() with auto-detection")
    parser.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    parser.add_argument("--cpu_collectives", default=None, help="e.g. gloo, for several CPU processes")
    parser.add_argument(
        "--preempted_exit_code",
        type=int,
        default=0,
        help="exit code after SIGTERM stopped training with a checkpoint (the launcher passes 75 "
        "so that its run script reruns the job instead of taking it as finished)",
    )
    return gin_utils.parse_known_gin_args(parser, argv)


def initialize_distributed(args: argparse.Namespace) -> None:
    """jax.distributed.initialize when several processes run this job (before any jax use)."""
    import jax

    if args.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", args.cpu_collectives)
    if args.distributed or args.coordinator_address or args.num_processes:
        jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    initialize_distributed(args)
    gin_utils.parse_gin(args.gin_file, args.gin_bindings, args.gin_search_paths)
    from orca_jax.training import trainer
    from orca_jax.training.preemption import Preempted

    try:
        trainer.run_stages(*trainer.configs_from_gin())
    except Preempted as e:  # a clean stop: the checkpoint is complete, a rerun resumes
        logging.warning("%s", e)
        if args.preempted_exit_code:
            sys.exit(args.preempted_exit_code)


def console_main() -> None:
    """Console script `orca-train`."""
    main(sys.argv[1:])


if __name__ == "__main__":
    main()
