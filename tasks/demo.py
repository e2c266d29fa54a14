"""Tasks over the bundled mini-Orca dataset (orca_jax/demo_data; see orca_jax.demo.dataset).

  orca_demo_stage1_assistant   all training queries, assistant traces (stage one, ChatGPT stand-in)
  orca_demo_stage2_expert      a random 1/5 of them, complete expert traces (stage two, GPT-4 stand-in)
  orca_demo_answer_only        the expert's queries with bare answers (the Vicuna-like baseline)
  orca_demo_{assistant,expert}_{cot,niv2,t0,flan2021}  per sub-collection
  orca_demo_stage1_mixture, orca_demo_stage2_mixture  the per-collection tasks mixed like the
                               real stages (rates: gin mixing_rate_mode; 'paper' by default)

Splits: 'train' and 'validation' (other queries of the same generators). The BBH-format
held-out sets are files.DEMO_BBH_EVAL_DIR and files.DEMO_BBH_OOD_DIR.
"""

from __future__ import annotations

import os

from orca_jax.data import registry
from orca_jax.data.system_messages import COLLECTIONS
from orca_jax.demo import files, teachers

STAGE1_TASK = "orca_demo_stage1_assistant"
STAGE2_TASK = "orca_demo_stage2_expert"
ANSWER_ONLY_TASK = "orca_demo_answer_only"
TEACHERS = {"assistant": teachers.ASSISTANT, "expert": teachers.EXPERT, "answer_only": teachers.ANSWER_ONLY}
_TOKENIZER = "{demo_data_dir}/" + os.path.basename(files.DEMO_TOKENIZER_PATH)


def _splits(dataset: str) -> dict[str, tuple[str, ...]]:
    return {
        split: ("{demo_data_dir}/" + os.path.basename(files.demo_file(dataset, split)),) for split in files.DEMO_SPLITS
    }


def _register() -> None:
    for name, dataset, what in (
        (STAGE1_TASK, "assistant", "assistant traces for all demo queries (stage one)"),
        (STAGE2_TASK, "expert", "expert traces for the stage-two subset (stage two)"),
        (ANSWER_ONLY_TASK, "answer_only", "bare answers to the stage-two subset (baseline)"),
    ):
        registry.register_task(
            registry.TaskSpec(name, _splits(dataset), TEACHERS[dataset], _TOKENIZER, description="demo: " + what)
        )
    for dataset, mixture in (("assistant", "orca_demo_stage1_mixture"), ("expert", "orca_demo_stage2_mixture")):
        names = {}
        for collection in COLLECTIONS:
            name = f"orca_demo_{dataset}_{collection}"
            registry.register_task(
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
        registry.register_mixture(registry.MixtureSpec(mixture, tuple(names), registry.paper_rates(names)))


_register()
