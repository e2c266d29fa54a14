"""The trainer: train state, optimizer, loss, train step, checkpoints, metrics, stage runner.

Pure math (no I/O): loss.py, optimizer.py, train_state.py, train_step.py.
Around it: batches.py (data sources), feeding.py (host shards, prefetch), checkpoints.py
(orbax; `load_params`/`load_model_config` for evaluation), metrics.py, flops.py, and
trainer.py (`RunConfig`, `StageConfig`: the typed configs orca_jax/train.py builds once;
`run_stages`: the stage runner it hands them to).
"""
