"""Orca data: OpenOrca-schema rows -> chat prompts -> tokens -> packed batches (no TensorFlow needed).

Modules, in the order an example flows through them:
  system_messages  the 16 Orca system messages and which sub-collection uses which
  fileio, sources  local/gs:// files, Parquet and JSONL read units, host sharding
  rows             row validation (bad rows counted by reason)
  prompts          chat templates ('chatml', 'instruct'); render_prompt
  tokenizer        SentencePiece Tokenizer (LLaMA ids + pad = vocab size)
  preprocessors    render + tokenize + truncate into [BOS] prompt response [EOS]
  streams          deterministic, resumable shard reader / task stream / mixture
  packing          best-fit-decreasing packing and the batch-contract layout
  pipeline         make_batch_iterator: the trainer's entry point; data location, mixture rates
  registry         the one registry of task and mixture specs (filled by `import tasks`)
  seqio_adapter    any SeqIO task or mixture (a T5X user's) into the same streams (imports TF)
(The bundled demo dataset, its generator and held-out sets live in orca_jax.demo.)
"""
