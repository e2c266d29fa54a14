"""Example sweep: 2 learning rates x 2 (batch size, microbatches) pairs = 4 runs, one
slice per run (the default --mode=parallel).

    python -m orca_jax.tools.sweep --sweep_file=sweeps/lr_batch.py \
        --model_dir_root=gs://BUCKET/orca/sweeps/lr_batch \
        --tpu=orca-sweep --zone=us-east5-a --accelerator=v5p-128 --spot --dry_run

Bindings are gin macros (LEARNING_RATE, BATCH_SIZE) or configurable parameters
(StageConfig.num_microbatches): 128 rows in 2 microbatches use the memory of 64 in 1.
"""

from orca_jax.tools import hyper

NAME = "lr_batch"
GIN_FILES = ["runs/orca_13b.gin"]  # the trainer finds it in gin_configs/
# Every run starts from converted LLaMA-13B weights (python -m orca_jax.convert import_hf);
# replace BUCKET, or pass --gin.INIT_FROM=gs://... . Without INIT_FROM the launcher refuses
# a 13B run unless --from_scratch.
BINDINGS = {"INIT_FROM": "gs://BUCKET/llama13b_converted"}
ABBREVIATIONS = {"StageConfig.num_microbatches": "mb"}


def get_sweep():
    return hyper.product(
        [
            hyper.sweep("LEARNING_RATE", [1e-5, 2e-5]),
            hyper.zipit([hyper.sweep("BATCH_SIZE", [64, 128]), hyper.sweep("StageConfig.num_microbatches", [1, 2])]),
        ]
    )
