"""Tasks over the bundled demo dataset (orca_jax/demo_data; see orca_jax.data.demo_tasks).

  orca_demo_stage1_terse       all training queries, terse answers (stage one, ChatGPT stand-in)
  orca_demo_stage2_explained   the stage-two query subset, step-by-step answers (GPT-4 stand-in)
  orca_demo_answer_only        the same queries as stage two with terse answers (ablation)
  orca_demo_{terse,explained}_{cot,niv2,t0,flan2021}  per sub-collection
  orca_demo_stage1_mixture, orca_demo_stage2_mixture  the per-collection tasks mixed like the
                               real stages (rates: gin mixing_rate_mode; 'paper' by default)

Splits: 'train' and 'validation' (held-out queries of the same generators). The
BBH-format evaluation set is in demo_files.DEMO_BBH_EVAL_DIR.
"""

from __future__ import annotations

import os

from orca_jax.data import demo_files, registry
from orca_jax.data.system_messages import COLLECTIONS
from tasks.registration import add_mixture, add_task

STAGE1_TASK = "orca_demo_stage1_terse"
STAGE2_TASK = "orca_demo_stage2_explained"
ANSWER_ONLY_TASK = "orca_demo_answer_only"
TEACHERS = {"terse": "demo-terse", "explained": "demo-explained", "answer_only": "demo-terse"}
_TOKENIZER = "{demo_data_dir}/" + os.path.basename(demo_files.DEMO_TOKENIZER_PATH)


def _splits(dataset: str) -> dict[str, tuple[str, ...]]:
    return {
        split: ("{demo_data_dir}/" + os.path.basename(demo_files.demo_file(dataset, split)),)
        for split in demo_files.DEMO_SPLITS
    }


def _register() -> None:
    for name, dataset, what in (
        (STAGE1_TASK, "terse", "terse answers to all demo queries (stage one)"),
        (STAGE2_TASK, "explained", "explained answers to the stage-two subset (stage two)"),
        (ANSWER_ONLY_TASK, "answer_only", "terse answers to the stage-two subset (ablation)"),
    ):
        add_task(registry.TaskSpec(name, _splits(dataset), TEACHERS[dataset], _TOKENIZER, description="demo: " + what))
    for dataset, mixture in (("terse", "orca_demo_stage1_mixture"), ("explained", "orca_demo_stage2_mixture")):
        names = {}
        for collection in COLLECTIONS:
            name = f"orca_demo_{dataset}_{collection}"
            add_task(
                registry.TaskSpec(
                    name,
                    _splits(dataset),
                    TEACHERS[dataset],
                    _TOKENIZER,
                    collections=(collection,),
                    description=f"demo: {dataset} answers, {collection} queries",
                )
            )
            names[name] = collection
        add_mixture(registry.MixtureSpec(mixture, tuple(names), registry.paper_rates(names)))


_register()
