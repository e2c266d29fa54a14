r"""The main job: mini-Orca, the paper's two claims replayed at laptop scale.

    python -m orca_jax.demo                                  # progressive vs answer_only, seed 0
    python -m orca_jax.demo --seeds 3 --conditions all       # every condition, 3 seeds, report
    python -m orca_jax.demo --output_dir=/tmp/demo --gin.STAGE1_TRAIN_STEPS=100

A small LLaMA (preset `demo`) learns procedurally generated reasoning queries
(orca_jax/demo/families.py) from two synthetic teachers (teachers.py) through the real
SeqIO-registered demo tasks, trainer and orbax checkpoints (gin: gin_configs/runs/demo.gin),
under the conditions of orca_jax/demo/conditions.py, each seed from the same initial
weights. Every stage is evaluated zero-shot on the bundled held-out BBH-format tasks:
`demo_bbh` (fresh instances at training sizes) and `demo_bbh_ood` (longer chains, more digits).

Output: `<output_dir>/<condition>/seed<k>/stage*/` (gin configs, checkpoints, TensorBoard
logs, metrics.jsonl, eval/results.json), and `report.md` with the claims' verdicts, mean ±
sd tables and per-task plots with error bars. Rerunning resumes: finished stages are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence

import gin

from orca_jax import analysis, train
from orca_jax.demo import claims, conditions


def train_run(model_dir: str, gin_file: str, bindings: Sequence[str]) -> None:
    """One `python -m orca_jax.train` invocation, in-process, with a fresh gin config."""
    gin.clear_config()
    train.main([f"--gin_file={gin_file}", f"--gin.MODEL_DIR={model_dir}", *bindings])


def record_wall_time(run_dir: str, seconds: float) -> None:
    """`<run_dir>/wall_seconds.json`: the first invocation's seconds (a resumed no-op keeps it)."""
    path = os.path.join(run_dir, "wall_seconds.json")
    if not os.path.exists(path):
        with open(path, "w") as f:
            json.dump({"seconds": round(seconds, 1)}, f)


def held_out_tables(runs: Sequence[analysis.Run]) -> str:
    """Markdown: held-out accuracy (%) per task for each evaluated stage, in- and out-of-distribution."""
    return "\n".join(analysis.score_table(runs, benchmark=b) for b in (claims.IN_DIST, claims.OOD))


def difference_lines(runs: Sequence[analysis.Run]) -> list[str]:
    """The claims' differences on both held-out sets (seed-paired)."""
    out = []
    for better, worse in (
        (conditions.PROGRESSIVE, conditions.ANSWER_ONLY),
        (conditions.PROGRESSIVE, conditions.EXPERT_ONLY),
    ):
        for bench in (claims.IN_DIST, claims.OOD):
            if c := claims.compare(runs, better, worse, bench):
                out.append(c.describe())
    return out


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="orca-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output_dir", default=os.path.join("runs", "demo"))
    parser.add_argument("--gin_file", default="runs/demo.gin")
    parser.add_argument("--seeds", type=int, default=1, help="run seeds first_seed..first_seed+N-1")
    parser.add_argument(
        "--first_seed",
        type=int,
        default=0,
        help="first seed (to split seeds over processes; a later run over all seeds "
        "skips the finished ones and writes the combined report)",
    )
    parser.add_argument(
        "--conditions",
        default=",".join(conditions.DEFAULT_CONDITIONS),
        help=f"'all' or a comma-separated subset of {','.join(conditions.CONDITIONS)}",
    )
    parser.add_argument("--fresh", action="store_true", help="delete output_dir first")
    args, rest = parser.parse_known_args(argv)
    if bad := [a for a in rest if not a.startswith("--gin.")]:
        parser.error(f"unrecognized arguments {bad} (gin bindings are --gin.NAME=VALUE)")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        args.conditions = conditions.parse_conditions(args.conditions)
    except ValueError as e:
        parser.error(str(e))
    return args, rest


def main(argv: Sequence[str] | None = None) -> None:
    args, bindings = parse_args(sys.argv[1:] if argv is None else argv)
    out = os.path.abspath(args.output_dir)
    if args.fresh and os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    start = time.time()
    dirs = []
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for seed in seeds:
        for condition in args.conditions:
            run_dir = conditions.run_dir(out, condition, seed)
            t0 = time.time()
            train_run(run_dir, args.gin_file, conditions.bindings(condition, seed, bindings))
            record_wall_time(run_dir, time.time() - t0)
            dirs.append((f"{condition}/seed{seed}", run_dir))
    runs = [analysis.load_run(d, name) for name, d in dirs]
    wall = time.time() - start
    settings = (
        f"Conditions {', '.join(args.conditions)}; seeds {seeds[0]}..{seeds[-1]}; gin file "
        f"`{args.gin_file}`{' with ' + ' '.join(bindings) if bindings else ''}. Model: preset `demo` "
        "(LLaMA-shaped, random init). Held-out sets: orca_jax/demo_data/bbh_eval (fresh instances at "
        "training sizes) and bbh_eval_ood (longer chains, more digits), zero-shot, empty system "
        "message, greedy decoding; `avg:all` is the mean over tasks. Seconds per run (training and evaluation, first invocation): `<run>/wall_seconds.json`."
    )
    report = claims.write_report(out, runs, wall, settings)
    print("\n" + held_out_tables(runs))
    print("\n".join(difference_lines(runs)))
    print(f"\nwall time {wall:.0f} s; report: {report}")


if __name__ == "__main__":
    main()
