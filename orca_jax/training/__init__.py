"""The trainer: train state, optimizer, loss, train step, checkpoints, metrics, stage runner.

Pure math (no I/O): loss.py, optimizer.py, train_state.py, train_step.py.
Around it: batches.py (data sources), feeding.py (host shards, prefetch), checkpoints.py
(every checkpoint on disk: stage, step and converted directories; train state, params, model
config), model_card.py (tokenizer and chat template beside each), metrics.py, flops.py, and
trainer.py (`RunConfig`, `StageConfig`: the typed configs orca_jax/train.py builds once;
`run_stages`: the stage runner it hands them to).
"""
