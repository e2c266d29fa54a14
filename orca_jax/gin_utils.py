"""Command-line flags -> gin, for every entry point (train, evaluate, aot_compile, launch, sweep).

Flags: `--gin_file` (repeatable), `--gin.NAME=VALUE` (repeatable; a VALUE that is not a
Python/gin literal or reference is taken as a string, so `--gin.MODEL_DIR=/tmp/x` works
unquoted), `--gin_bindings='NAME = VALUE'` and `--gin_search_paths`. Files are looked up on
the search paths (default: the repository's gin_configs/ and the working directory).
`parse_gin` clears gin, registers every configurable, parses, and locks the config; an
error names the file or the binding that caused it.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import logging
import os
import re
from collections.abc import Sequence

import gin

DEFAULT_SEARCH_PATHS = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin_configs"),
    os.getcwd(),
)
_FLAG = re.compile(r"--gin\.([^=]+)=(.*)", re.S)


def add_gin_flags(parser: argparse.ArgumentParser) -> None:
    """`--gin_file`, `--gin_bindings` and `--gin_search_paths`."""
    parser.add_argument("--gin_file", action="append", default=[], help="gin file (repeatable)")
    parser.add_argument("--gin_bindings", action="append", default=[], help="'NAME = VALUE' (repeatable)")
    parser.add_argument(
        "--gin_search_paths",
        action="append",
        default=None,
        help="where gin files and their includes are looked up (repeatable; default: "
        "the repository's gin_configs/ and the working directory)",
    )


def split_gin_flag(flag: str) -> tuple[str, str] | None:
    """`--gin.NAME=VALUE` -> (NAME, VALUE) as typed; None for any other argument."""
    match = _FLAG.fullmatch(flag)
    return (match.group(1), match.group(2)) if match else None


def parse_known_gin_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; every `--gin.NAME=VALUE` left over becomes a binding in `args.gin_bindings`."""
    args, rest = parser.parse_known_args(argv)
    for flag in rest:
        pair = split_gin_flag(flag)
        if pair is None:
            parser.error(f"unrecognized argument {flag!r} (gin bindings are --gin.NAME=VALUE)")
        args.gin_bindings.append(binding(*pair))
    return args


def binding(name: str, value: str) -> str:
    """The gin text `NAME = VALUE` of a command-line binding (`gin_value` decides the quoting)."""
    return f"{name} = {gin_value(value)}"


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


def register_configurables() -> None:
    """Import every module with gin configurables before parsing (the config is locked after)."""
    import orca_jax.data.pipeline  # noqa: F401  make_batch_iterator (no TensorFlow)
    import orca_jax.evaluation.runner  # noqa: F401  evaluate (run_stages may call it)
    import orca_jax.models  # noqa: F401  model_config
    import orca_jax.partitioning  # noqa: F401  PartitioningConfig
    import orca_jax.training.trainer  # noqa: F401  RunConfig, StageConfig and the configs they hold


def parse_gin(files: Sequence[str], bindings: Sequence[str], search_paths: Sequence[str] | None = None) -> None:
    """Clear gin, parse `files` (looked up on `search_paths`, default DEFAULT_SEARCH_PATHS) then
    `bindings`, lock the config.

    Unknown configurables, parameters and macros raise ValueError here, naming the file or
    the binding (`--gin.NAME=VALUE`) at fault.
    """
    gin.clear_config()
    register_configurables()
    add_search_paths(search_paths or DEFAULT_SEARCH_PATHS)
    quiet = _DropGinPathProbes()
    logging.getLogger().addFilter(quiet)
    try:
        gin.parse_config_files_and_bindings(files, None, finalize_config=False)
    finally:
        logging.getLogger().removeFilter(quiet)
    for text in bindings:
        try:
            gin.parse_config(text)
        except Exception as e:  # gin raises ValueError, KeyError, SyntaxError... for a bad binding
            raise ValueError(f"gin binding {text!r}: {e}") from e
    gin.finalize()
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
    by code (e.g. ORCA_DATA_DIR): log them."""
    config = gin.config_str()
    known = sorted(set(re.findall(r"%([A-Za-z_][A-Za-z0-9_]*)", config)))
    for text in bindings:
        name = text.split("=", 1)[0].strip()
        if "." in name or "/" in name or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
        if close:
            raise ValueError(
                f"gin binding {text!r}: macro {name} is not used by any configurable; "
                f"did you mean {close[0]}? (macros in use: {known})"
            )
        logging.warning("gin macro %s is not referenced by any binding (fine if code reads it)", name)
