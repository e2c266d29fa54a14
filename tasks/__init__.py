"""The Orca tasks and mixtures; `import tasks` (e.g. gin's `import tasks` in a stage file) registers
them all in orca_jax.data.registry, which the TF-free pipeline reads.

Real data (OpenOrca schema, location from gin orca_data_dir.path or ORCA_DATA_DIR, see
orca_jax.data.pipeline):
  orca_chatgpt_{cot,niv2,t0,flan2021}   ChatGPT responses (3_5M-GPT3_5-Augmented*.parquet)
  orca_gpt4_{cot,niv2,t0,flan2021}      GPT-4 responses (1M-GPT4-Augmented*.parquet)
  orca_stage1_flan5m_chatgpt            mixture of the ChatGPT tasks (stage one)
  orca_stage2_flan1m_gpt4               mixture of the GPT-4 tasks (stage two)
Bundled demo data (orca_jax/demo_data, see tasks.demo):
  orca_demo_stage1_assistant, orca_demo_stage2_expert, orca_demo_answer_only, ...

SeqIO face (T5X tooling): `import tasks.seqio_face` registers the same names with SeqIO,
derived from these specs; `import tasks` does so itself when SeqIO is already imported.
"""

import sys

from tasks import demo, orca  # noqa: F401  (registration side effects)

if sys.modules.get("seqio") is not None:  # A SeqIO user: register the SeqIO face too (TensorFlow is loaded already).
    from tasks import seqio_face  # noqa: F401
