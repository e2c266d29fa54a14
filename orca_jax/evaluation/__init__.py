"""Zero-shot evaluation on BBH and AGIEval (and any BBH-format directory).

  loaders.py       BBH-format directories and AGIEval v1 JSONL -> Example lists; task sets
  answer_types.py  answer type of a task from its targets (table of the 27 BBH tasks)
  zero_shot_prompts.py  the zero-shot prompt of every task (the one place that defines them)
  decoding.py      batched KV-cache generation (greedy / seeded top-p), a no-cache
                   reference decoder, and log-likelihood scoring of answer options
  extraction.py    answer extraction from free-form outputs, per answer type (rule table)
  scoring.py       extract + compare per example; task and aggregate accuracy
  paper_scores.py  the Orca paper's reported numbers (docs/orca_facts.md#5-reported-scores)
  report.py        results.json, predictions.jsonl, results.md
  download.py      fetch the public files into a cache (`python -m orca_jax.evaluate download`)
  runner.py        `evaluate(checkpoint, output_dir, ...)`, gin-configurable; the entry point

None of these modules imports TensorFlow or SeqIO.
"""
