"""Storing: the files of one output folder, written so that any crash can be resumed.

layout.py         where every file lives, and the folder's run lock
durable.py        atomic file replacement; append-only, fsync'd JSONL and its repair
schema.py         output row schema (OpenOrca columns + provenance) and `<prefix>.<n>` ids
manifest.py       the sampled queries, written once and atomically
output_writer.py  group-commit of finished queries to data shards / kept-apart / failures
state.py          which ids are done or failed, from what is on disk
run_config.py     the teacher settings of every run (`run_config.json`)
output_report.py  counts per collection, kept-apart and failure reasons, tokens, cost
finalize.py       Parquet training set (OpenOrca schema) under `final/`
"""
