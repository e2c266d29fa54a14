"""Choosing the queries: FLAN-v2 inputs -> the manifest of one output folder.

flan_input.py      index FLAN-v2 rows (JSONL/Parquet) without their texts; fetch chosen rows
quotas.py          per-collection sample sizes (paper Table 3) and Algorithm 1 (stratified)
message_choice.py  each query's system message (paper Figure 6; multiple-choice detection)
sample.py          `sample_manifest`: quotas, Algorithm 1, ids and system messages, seeded
"""
