r"""Train Orca's stages, configured with gin as in T5X.

    python -m orca_jax.train --gin_file=runs/tiny_cpu.gin --gin.MODEL_DIR=/tmp/orca_tiny
    python -m orca_jax.train --gin_file=runs/orca_13b.gin \
        --gin.MODEL_DIR="'gs://bucket/orca13b'" --gin.LEARNING_RATE=1e-5

`--gin_file` and `--gin.NAME=VALUE` repeat; files are found on `--gin_search_paths` (default:
the repository's gin_configs/ and the working directory). A VALUE that is not a Python/gin
literal or reference is taken as a string (`--gin.MODEL_DIR=/tmp/x` works unquoted). The
entry point is `run_stages` (orca_jax/training/trainer.py). Several hosts: pass
`--coordinator_address/--num_processes/--process_id`, or `--distributed` to let
jax.distributed.initialize detect the cluster (TPU pods, SLURM).

SIGTERM (a spot VM's preemption notice) stops training after the current step with a
checkpoint there, and exits 0 (or `--preempted_exit_code`) with a "preempted" message;
rerunning the same command resumes from it (orca_jax/training/preemption.py).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import logging
import os
import re
import sys
from typing import Sequence

import gin

DEFAULT_SEARCH_PATHS = (os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin_configs"),
                        os.getcwd())


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
    """`--gin_file`, `--gin_bindings` and `--gin_search_paths` (shared by the gin entry points)."""
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_bindings", action="append", default=[], help="'NAME = VALUE' (repeatable)")
    parser.add_argument("--gin_search_paths", action="append", default=None,
                        help="where gin files and their includes are looked up (repeatable; default: "
                             "the repository's gin_configs/ and the working directory)")


def parse_known_gin_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; every `--gin.NAME=VALUE` left over becomes a binding in `args.gin_bindings`."""
    args, rest = parser.parse_known_args(argv)
    for flag in rest:
        match = re.fullmatch(r"--gin\.([^=]+)=(.*)", flag, re.S)
        if not match:
            parser.error(f"unrecognized argument {flag!r} (gin bindings are --gin.NAME=VALUE)")
        args.gin_bindings.append(f"{match.group(1)} = {gin_value(match.group(2))}")
    return args


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Flags of `python -m orca_jax.train`."""
    parser = argparse.ArgumentParser(prog="orca-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    add_gin_flags(parser)
    parser.add_argument("--distributed", action="store_true", help="jax.distributed.initialize() with auto-detection")
    parser.add_argument("--coordinator_address", default=None, help="host:port of process 0")
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    parser.add_argument("--cpu_collectives", default=None, help="e.g. gloo, for several CPU processes")
    parser.add_argument("--preempted_exit_code", type=int, default=0,
                        help="exit code after SIGTERM stopped training with a checkpoint (the launcher passes 75 "
                             "so that its run script reruns the job instead of taking it as finished)")
    return parse_known_gin_args(parser, argv)


def gin_value(text: str) -> str:
    """`text` if it is a literal or a gin reference (@fn, %MACRO), else `text` as a string."""
    stripped = text.strip()
    if stripped.startswith(("@", "%")):
        return stripped
    try:
        ast.literal_eval(stripped)
        return stripped
    except (ValueError, SyntaxError):
        return repr(text)


def initialize_distributed(args: argparse.Namespace) -> None:
    """jax.distributed.initialize when several processes run this job (before any jax use)."""
    import jax
    if args.cpu_collectives:
        jax.config.update("jax_cpu_collectives_implementation", args.cpu_collectives)
    if args.distributed or args.coordinator_address or args.num_processes:
        jax.distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)


def register_configurables() -> None:
    """Import every module with gin configurables, so that parsing can check each binding."""
    import orca_jax.models  # noqa: F401  model_config
    import orca_jax.partitioning  # noqa: F401  make_mesh, logical_axis_rules
    import orca_jax.training.trainer  # noqa: F401  run_stages, train_stage and what they call


def parse_gin(files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str]) -> None:
    """Parse gin files and bindings; unknown configurables/parameters/macros raise here."""
    register_configurables()
    add_search_paths(search_paths)
    quiet = _DropGinPathProbes()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(files, bindings)
    finally:
        logging.getLogger().removeFilter(quiet)
    check_macros_used(bindings)


class _DropGinPathProbes(logging.Filter):
    """gin logs an error for every search path that does not hold an included file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Path not found", "system_path_file_exists"))


def add_search_paths(paths: Sequence[str]) -> None:
    """Look gin files up in `paths` first, before gin's own '' (working directory) prefix.

    Searched first so that an include such as 'models/tiny.gin' never reaches gin's Python
    system-path reader, which would take 'models' for an importable package of that name.
    """
    prefixes = getattr(gin.config, "_LOCATION_PREFIXES", None)
    for path in reversed(list(paths)):
        if prefixes is None:
            gin.add_config_file_search_path(path)
        elif path not in prefixes:
            prefixes.insert(0, path)


def check_macros_used(bindings: Sequence[str]) -> None:
    """A command-line macro that nothing references and that looks like a known macro is a
    typo (`--gin.LEARNIG_RATE=...`): raise naming both. Other unreferenced macros may be read
    by code (gin.query_parameter, e.g. ORCA_DATA_DIR): log them."""
    config = gin.config_str()
    known = sorted(set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)", config)))
    for binding in bindings:
        name = binding.split("=", 1)[0].strip()
        if "." in name or "/" in name or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            raise ValueError(f"gin binding {binding!r}: macro {name} is not used by any configurable; "
                             f"did you mean {close[0]}? (macros in use: {known})")
        logging.warning("gin macro %s is not referenced by any binding (fine if code reads it)", name)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    initialize_distributed(args)
    parse_gin(args.gin_file, args.gin_bindings, args.gin_search_paths or DEFAULT_SEARCH_PATHS)
    from orca_jax.training.preemption import Preempted
    from orca_jax.training.trainer import run_stages
    try:
        run_stages()
    except Preempted as e:  # a clean stop: the checkpoint is complete, a rerun resumes
        logging.warning("%s", e)
        if args.preempted_exit_code:
            sys.exit(args.preempted_exit_code)


def console_main() -> None:
    """Console script `orca-train`."""
    main(sys.argv[1:])


if __name__ == "__main__":
    main()
