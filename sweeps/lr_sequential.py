"""Example sweep: three learning rates, one after the other on a single slice.

    python -m orca_jax.tools.sweep --sweep_file=sweeps/lr_sequential.py --mode=sequential \
        --model_dir_root=gs://BUCKET/orca/sweeps/lr_sequential \
        --tpu=orca-lr --zone=us-east5-a --accelerator=v5p-128 --queued --spot \
        --restart_on_preemption --dry_run
"""

from orca_jax.tools import hyper

NAME = "lr_sequential"
GIN_FILES = ["runs/orca_13b.gin"]  # the trainer finds it in gin_configs/
# Converted LLaMA-13B weights (python -m orca_jax.convert import_hf); replace BUCKET, or pass
# --gin.INIT_FROM=gs://... (it overrides this).
BINDINGS = {"INIT_FROM": "gs://BUCKET/llama13b_converted"}


def get_sweep():
    return hyper.sweep("LEARNING_RATE", [1e-5, 2e-5, 4e-5])
