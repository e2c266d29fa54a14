"""The real Orca tasks: OpenOrca-schema files per teacher, split by FLAN sub-collection, and the stage mixtures.

Files (globs under the data directory: the OpenOrca release files, or shards named
with the same prefix):
  chatgpt: {data_dir}/3_5M-GPT3_5-Augmented*.parquet   (stage one, FLAN-5M's ChatGPT answers)
  gpt-4:   {data_dir}/1M-GPT4-Augmented*.parquet       (stage two, FLAN-1M's GPT-4 answers)
Other files (e.g. the augmentation tool's JSONL shards), with gin:
`orca_teacher_patterns.gpt4 = ['gs://bucket/gpt4/*.jsonl']` ('{data_dir}' may be used;
the binding is read when the data is opened, so it may come after `import tasks`).

Each sub-collection task keeps the rows whose id prefix names it (cot., niv., t0.,
flan.). Mixture rates: gin `mixing_rate_mode.mode = 'paper' | 'num_examples'` (orca_jax.data.pipeline).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import gin

from orca_jax.data import registry
from orca_jax.data.system_messages import COLLECTIONS

TEACHERS = {"chatgpt": "chatgpt", "gpt4": "gpt-4"}  # Name part -> teacher tag.
DEFAULT_PATTERNS = {
    "chatgpt": ("{data_dir}/3_5M-GPT3_5-Augmented*.parquet",),
    "gpt4": ("{data_dir}/1M-GPT4-Augmented*.parquet",),
}
STAGE1_MIXTURE = "orca_stage1_flan5m_chatgpt"
STAGE2_MIXTURE = "orca_stage2_flan1m_gpt4"


@gin.configurable
def orca_teacher_patterns(
    teacher: str,
    chatgpt: Sequence[str] = DEFAULT_PATTERNS["chatgpt"],
    gpt4: Sequence[str] = DEFAULT_PATTERNS["gpt4"],
) -> tuple[str, ...]:
    """Glob patterns of one teacher's files ('chatgpt' or 'gpt4'); gin-configurable."""
    return tuple({"chatgpt": chatgpt, "gpt4": gpt4}[teacher])


def task_name(teacher: str, collection: str) -> str:
    """'gpt4', 'niv2' -> 'orca_gpt4_niv2'."""
    return f"orca_{teacher}_{collection}"


def _register() -> None:
    for teacher, tag in TEACHERS.items():
        for collection in COLLECTIONS:
            registry.register_task(
                registry.TaskSpec(
                    name=task_name(teacher, collection),
                    splits={"train": functools.partial(orca_teacher_patterns, teacher)},
                    teacher=tag,
                    tokenizer="{tokenizer}",
                    collections=(collection,),
                    description=f"OpenOrca {tag} responses, FLAN {collection} queries",
                )
            )
    for name, teacher in ((STAGE1_MIXTURE, "chatgpt"), (STAGE2_MIXTURE, "gpt4")):
        names = {task_name(teacher, c): c for c in COLLECTIONS}
        registry.register_mixture(registry.MixtureSpec(name, tuple(names), registry.paper_rates(names)))


_register()
