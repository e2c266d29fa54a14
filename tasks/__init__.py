"""Orca SeqIO tasks and mixtures; `import tasks` registers them all (gin configs import it by name).

Real data (OpenOrca schema, location from ORCA_DATA_DIR, see orca_jax.data.registry):
  orca_chatgpt_{cot,niv2,t0,flan2021}   ChatGPT responses (3_5M-GPT3_5-Augmented*.parquet)
  orca_gpt4_{cot,niv2,t0,flan2021}      GPT-4 responses (1M-GPT4-Augmented*.parquet)
  orca_stage1_flan5m_chatgpt            mixture of the ChatGPT tasks (stage one)
  orca_stage2_flan1m_gpt4               mixture of the GPT-4 tasks (stage two)
Bundled demo data (orca_jax/demo_data, see tasks.demo):
  orca_demo_stage1_assistant, orca_demo_stage2_expert, orca_demo_answer_only, ...

Every name goes into orca_jax.data.registry (what the TF-free pipeline reads) and,
when SeqIO is installed, into SeqIO's registries.
"""

from tasks import demo, orca  # noqa: F401  (registration side effects)
from tasks.registration import SEQIO_AVAILABLE  # noqa: F401
