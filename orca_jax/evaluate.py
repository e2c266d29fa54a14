"""Command line for zero-shot evaluation (console script `orca-evaluate`).

Evaluate a checkpoint::

    python -m orca_jax.evaluate --gin_file=gin_configs/eval/paper_zero_shot.gin \\
        --checkpoint=$MODEL_DIR/stage2 --output_dir=$MODEL_DIR/stage2/eval \\
        [--gin.EvalConfig.batch_size=16] \\
        [--bbh_dir=DIR] [--agieval_dir=DIR] [--bbh_format_dir=NAME=DIR ...] \\
        [--max_examples_per_task=N] [--tasks snarks lsat-ar ...]

Fetch the public benchmark files (27 BBH tasks, AGIEval v1 English + math) into a cache::

    python -m orca_jax.evaluate download --cache_dir=~/.cache/orca_jax/eval_data

Flags given on the command line override the gin bindings of `EvalConfig`
(orca_jax/evaluation/runner.py); everything else comes from the gin files.
The tokenizer and chat template come from the checkpoint's model_card.json (written by the
trainer and by `python -m orca_jax.convert import_hf`) unless --tokenizer_path / --template
are given (a logged note says when they override the card). A Hugging Face student runs with
no code::

    python -m orca_jax.convert import_hf --hf_dir=HF_DIR --out_dir=CONVERTED
    python -m orca_jax.evaluate --checkpoint=CONVERTED --output_dir=OUT --bbh_dir=BBH \
        --tasks snarks navigate --max_examples_per_task=30 --metric=both
`--checkpoint=random` (or `random:SEED`) evaluates a randomly initialised model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence

from orca_jax import gin_utils

# EvalConfig fields the command line overrides when given (name -> type).
_EVALUATE_FLAGS = {
    "tokenizer_path": str,
    "template": str,
    "system_message_id": int,
    "data_dir": str,
    "bbh_dir": str,
    "agieval_dir": str,
    "max_examples_per_task": int,
    "batch_size": int,
    "max_new_tokens": int,
    "metric": str,
    "temperature": float,
    "top_p": float,
    "seed": int,
    "dtype": str,
    "choice_format": str,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="orca-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    gin_utils.add_gin_flags(p)
    p.add_argument("--checkpoint", help="stage run dir, step dir, converted dir, or random[:seed]")
    p.add_argument("--output_dir", help="where results.json, predictions.jsonl, results.md go")
    p.add_argument("--tasks", nargs="+", help="only these tasks (bare or benchmark/task)")
    p.add_argument("--benchmarks", nargs="+", help="only these benchmarks (bbh, agieval, custom names)")
    p.add_argument(
        "--bbh_format_dir",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a custom BBH-format benchmark (repeatable)",
    )
    for name, kind in _EVALUATE_FLAGS.items():
        p.add_argument(f"--{name}", type=kind)
    return p


def _download_main(argv: Sequence[str]) -> int:
    from orca_jax.evaluation import download

    p = argparse.ArgumentParser(
        prog="orca-evaluate download", description="Fetch the public BBH and AGIEval files into a cache."
    )
    p.add_argument("--cache_dir", default=download.DEFAULT_CACHE_DIR)
    p.add_argument("--overwrite", action="store_true")
    args = p.parse_args(argv)
    dirs = download.download(args.cache_dir, overwrite=args.overwrite)
    print(json.dumps(dirs, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, apply gin, run `runner.evaluate`; prints the aggregates as JSON."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["download"]:
        return _download_main(argv[1:])
    args = gin_utils.parse_known_gin_args(_parser(), argv)
    if not args.checkpoint or not args.output_dir:
        _parser().error("--checkpoint and --output_dir are required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    gin_utils.parse_gin(args.gin_file, args.gin_bindings, args.gin_search_paths)
    from orca_jax.evaluation import runner

    kwargs = {name: getattr(args, name) for name in _EVALUATE_FLAGS if getattr(args, name) is not None}
    if args.tasks:
        kwargs["tasks"] = args.tasks
    if args.benchmarks:
        kwargs["benchmarks"] = args.benchmarks
    if args.bbh_format_dir:
        pairs = [spec.split("=", 1) for spec in args.bbh_format_dir]
        if any(len(p) != 2 for p in pairs):
            _parser().error("--bbh_format_dir takes NAME=DIR")
        kwargs["bbh_format_dirs"] = dict(pairs)
    try:
        config = dataclasses.replace(runner.EvalConfig(), **kwargs)
    except ValueError as e:
        _parser().error(str(e))
    results = runner.evaluate(args.checkpoint, args.output_dir, config)
    summary = {name: bench["aggregates"] for name, bench in results["benchmarks"].items()}
    print(json.dumps({"aggregates": summary, "files": results.get("files")}, indent=2))
    return 0


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
