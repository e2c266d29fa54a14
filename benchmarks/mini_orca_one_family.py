"""How many training steps one mini-Orca family needs: expert traces vs bare answers, one family alone.

    python benchmarks/mini_orca_one_family.py --family=multi_digit_addition --steps=1600 \
        --eval_every=400 --output_dir=/tmp/one_family [--teachers=expert,answer_only]

For each teacher, trains the `demo` preset from random weights (seed 0) on the training queries
of one family (the demo's stage-one query set, 1,000 per family, answered by that teacher), through
the real trainer with the demo's gin file (single stage, 16 x 256, lr 2e-3, 20 warmup steps,
cosine over `--steps`), keeps a checkpoint every `--eval_every` steps, evaluates each on that
family's held-out sets (demo_bbh, demo_bbh_ood) and prints one table row per checkpoint.
docs/mini_orca.md ("One family, more steps") was measured with it: about 0.85 s a step on a
2-core CPU, so 1,600 steps take some 23 minutes per teacher.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence

import gin

from orca_jax import analysis, evaluate
from orca_jax.data import registry, sources
from orca_jax.demo import cli, conditions, dataset, families, files, teachers

TEACHERS = {"expert": teachers.EXPERT, "answer_only": teachers.ANSWER_ONLY}
BENCHMARKS = ("demo_bbh", "demo_bbh_ood")


def register_family_task(family: str, teacher: str, data_dir: str) -> str:
    """Write one family's rows answered by `teacher` (TEACHERS key) and register them as a task."""
    queries = dataset.build_demo_queries()
    os.makedirs(data_dir, exist_ok=True)
    paths = {}
    for split in ("train", "validation"):
        rows = [q.row(TEACHERS[teacher]) for q in queries[split] if q.problem.kind == family]
        paths[split] = (os.path.join(data_dir, f"{family}_{teacher}_{split}.parquet"),)
        sources.write_rows(paths[split][0], rows)
    name = f"one_family_{family}_{teacher}"
    registry.register_task(registry.TaskSpec(name, paths, TEACHERS[teacher], files.DEMO_TOKENIZER_PATH))
    return name


def train_family(task: str, model_dir: str, steps: int, eval_every: int) -> None:
    """The demo's single-stage, from-random-weights bindings (those of expert_only and answer_only,
    seed 0), on `task`, keeping every `eval_every`-th checkpoint."""
    extra = [
        "--gin.RunConfig.evaluate_after_stage=False",
        f"--gin.STAGE2_MIXTURE_OR_TASK_NAME='{task}'",
        f"--gin.STAGE2_TRAIN_STEPS={steps}",
        f"--gin.CheckpointConfig.save_every_steps={eval_every}",
        f"--gin.CheckpointConfig.keep={steps // eval_every + 1}",
    ]
    cli.train_run(model_dir, "runs/demo.gin", conditions.bindings(conditions.EXPERT_ONLY, 0, extra))


def evaluate_step(stage_dir: str, step: int, family: str) -> dict[str, float]:
    """Held-out accuracy (%) of checkpoint `step` on `family`, per benchmark."""
    out = os.path.join(stage_dir, f"eval_step{step}")
    gin.clear_config()
    evaluate.main(
        [
            "--gin_file=eval/demo.gin",
            f"--checkpoint={os.path.join(stage_dir, 'checkpoints', str(step))}",
            f"--output_dir={out}",
            "--tasks",
            family,
            "--batch_size=64",
            "--max_new_tokens=192",
        ]
    )
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)["benchmarks"]
    return {b: 100 * results[b]["tasks"][family]["accuracy"] for b in BENCHMARKS}


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", required=True, choices=families.KINDS)
    p.add_argument("--teachers", default="expert,answer_only", help=f"comma-separated, of {sorted(TEACHERS)}")
    p.add_argument("--steps", type=int, default=1600)
    p.add_argument("--eval_every", type=int, default=400)
    p.add_argument("--output_dir", default="/tmp/mini_orca_one_family")
    args = p.parse_args(argv)
    names = [t.strip() for t in args.teachers.split(",") if t.strip()]
    if unknown := [t for t in names if t not in TEACHERS]:
        p.error(f"unknown teachers {unknown}; expected some of {sorted(TEACHERS)}")
    if args.steps % args.eval_every:
        p.error("--steps must be a multiple of --eval_every")
    rows = []
    for teacher in names:
        run_dir = os.path.join(os.path.abspath(args.output_dir), teacher)
        task = register_family_task(args.family, teacher, os.path.join(run_dir, "data"))
        train_family(task, run_dir, args.steps, args.eval_every)
        stage_dir = os.path.join(run_dir, "stage2")
        losses = {m["step"]: m.get("loss") for m in analysis.load_stage(stage_dir).metrics}
        for step in range(args.eval_every, args.steps + 1, args.eval_every):
            rows.append((teacher, step, losses.get(step), evaluate_step(stage_dir, step, args.family)))
    print(f"\n{args.family} alone, {args.steps} steps of 16 x 256 (held-out accuracy, %)\n")
    print("| teacher | step | train loss | " + " | ".join(BENCHMARKS) + " |")
    print("|---|---:|---:|" + "---:|" * len(BENCHMARKS))
    for teacher, step, loss, acc in rows:
        loss_text = "-" if loss is None else f"{loss:.4g}"
        print(f"| {teacher} | {step} | {loss_text} | " + " | ".join(f"{acc[b]:.1f}" for b in BENCHMARKS) + " |")


if __name__ == "__main__":
    main()
