"""Command line of the teacher augmentation (`python -m orca_jax.augment` / `orca-augment`).

Subcommands, all working on one output folder `--out-dir`:

  sample    index FLAN-v2 inputs (JSONL/Parquet), draw the paper's per-collection quotas
            with Algorithm 1 (scaled by --size-factor), draw system messages, and write the
            manifest once (never resampled).
  subset    draw a uniformly random subset of another folder's manifest into a new folder
            (FLAN-1M for GPT-4 from FLAN-5M: --size-factor scales 1M, or give --size).
  run       ask the teacher (any OpenAI-compatible /chat/completions endpoint) for every
            unfinished query; resumable after any crash or kill -9. With --input and no
            manifest yet, samples first. The API key comes from the environment variable
            named by --api-key-env (default OPENAI_API_KEY), or none with --no-auth.
  finalize  write final/ as Parquet (training rows, rows kept apart) and the report.
  report    print and save report.json (counts, failures by reason, tokens, cost).

Example (FLAN-5M with ChatGPT, then FLAN-1M with GPT-4):

  orca-augment sample --input flan/ --out-dir out/flan5m --size-factor 1.0 --seed 0
  OPENAI_API_KEY=... orca-augment run --out-dir out/flan5m --base-url https://api.openai.com/v1 \\
      --model gpt-3.5-turbo --concurrency 64 --requests-per-minute 3500 --tokens-per-minute 90000
  orca-augment subset --from out/flan5m --out-dir out/flan1m
  orca-augment run --out-dir out/flan1m --base-url https://api.openai.com/v1 --model gpt-4
  orca-augment finalize --out-dir out/flan5m --price-prompt-per-1k 0.0015 --price-completion-per-1k 0.002

Exit status: 0 done; 1 error (including a fatal endpoint error: a rejected key, or an
endpoint that refuses every connection); 2 bad arguments; 3 `run` finished but some
queries failed permanently (recorded in failures.jsonl; ask them again with
--retry-failures, or pass --allow-failures to exit 0); 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from orca_jax.augment.run import RunOptions, run_augmentation
from orca_jax.augment.sampling.flan_input import InputFilter
from orca_jax.augment.sampling.quotas import subset_size
from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.finalize import finalize
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import has_manifest, write_subset
from orca_jax.augment.store.output_report import build_report, format_report, write_report
from orca_jax.augment.store.run_config import saved_prices
from orca_jax.augment.teacher.client import TeacherConfig, load_api_key
from orca_jax.augment.teacher.redaction import RedactingFilter, format_exception_scrubbed, scrub
from orca_jax.data.system_messages import COLLECTIONS

log = logging.getLogger("orca_jax.augment")

EXIT_OK, EXIT_ERROR, EXIT_FAILURES, EXIT_INTERRUPTED = 0, 1, 3, 130


def _quota(text: str) -> tuple[str, int]:
    collection, sep, number = text.partition("=")
    if not sep or collection not in COLLECTIONS or not number.isdigit():
        raise argparse.ArgumentTypeError(f"expected COLLECTION=N with COLLECTION in {COLLECTIONS}, got {text!r}")
    return collection, int(number)


def _add_sampling_args(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "--input", nargs="+", required=required, metavar="PATH", help="FLAN-v2 JSONL/Parquet files or folders"
    )
    parser.add_argument("--size-factor", type=float, default=1.0, help="scale of the paper's quotas (1.0 = FLAN-5M)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quota",
        type=_quota,
        action="append",
        default=[],
        metavar="COLLECTION=N",
        help="override one collection's quota",
    )
    parser.add_argument(
        "--include-few-shot", action="store_true", help="also sample few-shot templates (template_type fs_*)"
    )
    parser.add_argument(
        "--keep-t0-bigbench", action="store_true", help="keep T0's BIG-bench tasks (the paper removed them)"
    )


def _add_price_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--price-prompt-per-1k",
        type=float,
        help="price per 1K prompt tokens (default: as given to the last run, else 0)",
    )
    parser.add_argument(
        "--price-completion-per-1k",
        type=float,
        help="price per 1K completion tokens (default: as given to the last run, else 0)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orca-augment", description="Explanation-augmented FLAN from an OpenAI-compatible teacher."
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--debug", action="store_true", help="print (scrubbed) tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        """A subcommand; every one works on one output folder."""
        cmd = sub.add_parser(name, help=help)
        cmd.add_argument("--out-dir", required=True)
        return cmd

    sample = command("sample", "sample queries into a manifest")
    _add_sampling_args(sample, required=True)
    sample.add_argument("--force", action="store_true", help="replace an existing manifest (only before any run!)")

    subset = command("subset", "random subset of another folder's manifest (FLAN-1M)")
    subset.add_argument("--from", dest="source", required=True, help="output folder holding the parent manifest")
    subset.add_argument("--size", type=int, help="number of queries (default: 1M x --size-factor)")
    subset.add_argument("--size-factor", type=float, default=1.0)
    subset.add_argument("--seed", type=int, default=0)
    subset.add_argument("--force", action="store_true")

    run = command("run", "ask the teacher for every unfinished query")
    _add_sampling_args(run, required=False)
    run.add_argument(
        "--base-url", required=True, help="e.g. https://api.openai.com/v1 or http://localhost:8000/v1 (vLLM)"
    )
    run.add_argument("--model", required=True)
    run.add_argument("--teacher-name", help="name recorded in the rows (default: --model)")
    run.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="NAME of the environment variable holding the API key"
    )
    run.add_argument("--no-auth", action="store_true", help="send no Authorization header (local servers)")
    run.add_argument("--concurrency", type=int, default=64)
    run.add_argument("--requests-per-minute", type=float)
    run.add_argument("--tokens-per-minute", type=float)
    run.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    run.add_argument("--connect-timeout", type=float, default=10.0)
    run.add_argument("--max-tokens", type=int, default=2048, help="completion token limit; 0 sends none")
    run.add_argument("--temperature", type=float, help="default: the endpoint's")
    run.add_argument("--max-retries", type=int, default=6, help="retries on 5xx, timeouts, connection errors")
    run.add_argument("--max-rate-limit-retries", type=int, default=20, help="retries on 429")
    run.add_argument("--max-malformed-retries", type=int, default=2, help="retries on malformed 200 bodies")
    run.add_argument("--backoff-base", type=float, default=1.0, help="seconds; doubled per retry, jittered")
    run.add_argument("--backoff-max", type=float, default=60.0)
    run.add_argument("--max-retry-after", type=float, default=600.0, help="cap on a server's Retry-After, seconds")
    run.add_argument(
        "--max-connection-errors",
        type=int,
        default=5,
        help="stop (exit 1) after this many connection errors in a row before any request succeeded; 0 never stops",
    )
    run.add_argument("--retry-failures", action="store_true", help="ask again the queries that failed in earlier runs")
    run.add_argument("--allow-failures", action="store_true", help="exit 0 even if some queries failed permanently")
    run.add_argument("--limit", type=int, help="ask at most this many queries in this run")
    run.add_argument("--shard-rows", type=int, default=100_000, help="rows per data shard")
    run.add_argument("--flush-interval", type=float, default=0.5, help="seconds between group commits")
    run.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines (no TTY)")
    run.add_argument("--no-progress-bar", action="store_true", help="log lines even on a TTY")
    run.add_argument("--allow-teacher-change", action="store_true")
    _add_price_args(run)

    final = command("finalize", "write final/ Parquet and the report")
    final.add_argument("--rows-per-file", type=int, default=500_000)
    final.add_argument("--allow-incomplete", action="store_true")
    _add_price_args(final)

    report = command("report", "print and save the report")
    report.add_argument("--json", action="store_true", help="print JSON instead of text")
    _add_price_args(report)
    return parser


def _spec(args: argparse.Namespace) -> SamplingSpec:
    return SamplingSpec(
        size_factor=args.size_factor,
        seed=args.seed,
        quota_overrides=dict(args.quota),
        input_filter=InputFilter(zero_shot_only=not args.include_few_shot, drop_t0_bigbench=not args.keep_t0_bigbench),
    )


# TeacherConfig fields set from the `run` flag of the same name.
_TEACHER_FLAGS = (
    "base_url",
    "model",
    "api_key_env",
    "teacher_name",
    "temperature",
    "concurrency",
    "requests_per_minute",
    "tokens_per_minute",
    "max_retries",
    "max_rate_limit_retries",
    "max_malformed_retries",
    "max_connection_errors",
)


def _teacher_config(args: argparse.Namespace) -> TeacherConfig:
    return TeacherConfig(
        **{name: getattr(args, name) for name in _TEACHER_FLAGS},
        use_auth=not args.no_auth,
        max_tokens=args.max_tokens or None,
        timeout_s=args.timeout,
        connect_timeout_s=args.connect_timeout,
        backoff_base_s=args.backoff_base,
        backoff_max_s=args.backoff_max,
        max_retry_after_s=args.max_retry_after,
    )


def _prices(layout: OutputLayout, args: argparse.Namespace) -> tuple[float, float]:
    """Prices from the flags, falling back to those recorded by the last run."""
    saved_prompt, saved_completion = saved_prices(layout)
    prompt = args.price_prompt_per_1k if args.price_prompt_per_1k is not None else saved_prompt
    completion = args.price_completion_per_1k if args.price_completion_per_1k is not None else saved_completion
    return prompt, completion


def _print_report(layout: OutputLayout, args: argparse.Namespace, as_json: bool = False) -> dict:
    report = build_report(layout, *_prices(layout, args))
    write_report(layout, report)
    print(json.dumps(report, indent=2) if as_json else format_report(report), flush=True)
    return report


def _cmd_sample(args: argparse.Namespace) -> int:
    meta = sample_manifest(args.input, OutputLayout.at(args.out_dir), _spec(args), force=args.force)
    print(f"manifest: {meta.rows} queries {meta.counts} in {args.out_dir}", flush=True)
    return EXIT_OK


def _cmd_subset(args: argparse.Namespace) -> int:
    size = args.size if args.size is not None else subset_size(args.size_factor)
    meta = write_subset(OutputLayout.at(args.source), OutputLayout.at(args.out_dir), size, args.seed, force=args.force)
    print(f"manifest: {meta.rows} queries {meta.counts} in {args.out_dir}", flush=True)
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    layout = OutputLayout.at(args.out_dir)
    config = _teacher_config(args)
    api_key = load_api_key(config)
    if not has_manifest(layout):
        if not args.input:
            log.error("%s has no manifest; run `sample` first or pass --input", layout.root)
            return EXIT_ERROR
        sample_manifest(args.input, layout, _spec(args))
    elif args.input:
        log.info("%s already has a manifest; --input is ignored (the manifest is never resampled)", layout.root)
    same_named = (
        "retry_failures",
        "limit",
        "shard_rows",
        "allow_teacher_change",
        "price_prompt_per_1k",
        "price_completion_per_1k",
    )
    options = RunOptions(
        **{name: getattr(args, name) for name in same_named},
        flush_interval_s=args.flush_interval,
        progress_interval_s=args.progress_interval,
        use_tqdm=False if args.no_progress_bar else None,
    )
    summary = run_augmentation(layout, config, api_key, options)
    w = summary.written
    log.info(
        "this run: %d rows, %d kept apart, %d failed (%d queued)", w.rows, w.kept_apart, w.failures, summary.queued
    )
    report = _print_report(layout, args)
    if summary.fatal_error:
        log.error("the run stopped: %s", summary.fatal_error)
        return EXIT_ERROR
    if summary.interrupted:
        return EXIT_INTERRUPTED
    failed = report["totals"]["failed"]
    if failed and not args.allow_failures:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(report["failures_by_reason"].items()))
        log.error(
            "%d queries failed permanently (%s; see %s): ask them again with --retry-failures, "
            "or pass --allow-failures to exit 0",
            failed,
            reasons,
            layout.failures,
        )
        return EXIT_FAILURES
    return EXIT_OK


def _cmd_finalize(args: argparse.Namespace) -> int:
    layout = OutputLayout.at(args.out_dir)
    report = finalize(layout, args.rows_per_file, args.allow_incomplete, *_prices(layout, args))
    print(format_report(report), flush=True)
    print(f"wrote {layout.final_dir}", flush=True)
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    _print_report(OutputLayout.at(args.out_dir), args, as_json=args.json)
    return EXIT_OK


COMMANDS = {
    "sample": _cmd_sample,
    "subset": _cmd_subset,
    "run": _cmd_run,
    "finalize": _cmd_finalize,
    "report": _cmd_report,
}


def setup_logging(level: str) -> None:
    """Log to stderr through a filter that scrubs secrets; quiet httpx's per-request lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_orca_augment", False):
            root.removeHandler(old)
    handler._orca_augment = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run one subcommand, return the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        log.warning("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except Exception as exc:  # every message is scrubbed: httpx errors may carry URLs
        if args.debug:
            print(format_exception_scrubbed(exc), file=sys.stderr)
        log.error("%s", scrub(f"{type(exc).__name__}: {exc}"))
        return EXIT_ERROR
