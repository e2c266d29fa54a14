"""The mini-Orca conditions: which stages run on which data, as gin bindings over runs/demo.gin.

  progressive   stage one on the assistant's traces, then stage two on the expert's from
                stage one's weights (Orca's progressive learning)
  expert_only   stage two's data and steps alone, from the initial weights (the paper's
                FLAN-1M-only ablation)
  answer_only   the expert's queries with bare answers, same steps, from the initial weights
                (imitating answers and style without explanations: the Vicuna-like baseline)

Every condition of one seed starts from the same initialisation (StageConfig.seed = SEED)
and runs stage two's number of steps on stage-two-sized data; the single-stage conditions
train in `<run>/stage2` so that stage two's evaluation sits at the same path everywhere.
The single-stage conditions start from random weights, so they take stage one's learning
rate and warmup (what a from-scratch run uses) instead of stage two's fine-tuning rate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

PROGRESSIVE, EXPERT_ONLY, ANSWER_ONLY = "progressive", "expert_only", "answer_only"
CONDITIONS = (PROGRESSIVE, EXPERT_ONLY, ANSWER_ONLY)
DEFAULT_CONDITIONS = (PROGRESSIVE, ANSWER_ONLY)

_FROM_SCRATCH = (
    "--gin.RunConfig.stages=('stage2',)",
    "--gin.stage2/StageConfig.init_from_previous_stage=False",
    "--gin.stage2/OptimizerConfig.learning_rate=%LEARNING_RATE",
)
BINDINGS: dict[str, tuple[str, ...]] = {
    PROGRESSIVE: (),
    EXPERT_ONLY: _FROM_SCRATCH,
    ANSWER_ONLY: (*_FROM_SCRATCH, "--gin.STAGE2_MIXTURE_OR_TASK_NAME='orca_demo_answer_only'"),
}


def parse_conditions(text: str) -> tuple[str, ...]:
    """'all' or a comma-separated subset of CONDITIONS, in CONDITIONS order."""
    names = CONDITIONS if text == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
    if unknown := [n for n in names if n not in CONDITIONS]:
        raise ValueError(f"unknown conditions {unknown}; expected 'all' or some of {CONDITIONS}")
    return tuple(n for n in CONDITIONS if n in names)


def run_dir(output_dir: str, condition: str, seed: int) -> str:
    """`<output_dir>/<condition>/seed<seed>`: one run (its stage directories inside)."""
    return os.path.join(output_dir, condition, f"seed{seed}")


def bindings(condition: str, seed: int, extra: Sequence[str] = ()) -> list[str]:
    """Command-line gin bindings of `condition` at `seed`; `extra` (the user's) come last and win."""
    if condition not in BINDINGS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {CONDITIONS}")
    return [*BINDINGS[condition], f"--gin.SEED={seed}", *extra]
