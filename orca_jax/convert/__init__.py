"""Hugging Face LLaMA-family safetensors (llama, mistral, qwen2; see docs/students.md) <-> orca-jax params.

In memory:
  import_hf(hf_dir, *, scan_layers=None, add_pad_rows=0, param_dtype=None, preset=None,
            config_overrides=None) -> (params, LlamaConfig)
  export_hf(params, config, out_dir, *, vocab_size=None, dtype="float32", max_shard_size="5GB",
            base_hf_config=None)
  llama_config_from_hf(config_json_dict, **overrides) -> LlamaConfig

On disk (converted checkpoint: `<dir>/params` orbax pytree + `<dir>/model_config.json`):
  save_converted(out_dir, params, config, *, hf_config=None, overwrite=False)
  load_params(checkpoint_dir, target=None) -> params      # the trainer's INIT_FROM loader
  load_model_config(checkpoint_dir, **overrides) -> LlamaConfig
  load_converted(checkpoint_dir) -> (params, LlamaConfig)

Command line: `python -m orca_jax.convert {import_hf,export_hf} ...` (`orca-convert`).
Conversion uses numpy + safetensors only; torch/transformers appear only in `parity` (tests,
benchmarks/hf_parity_sweep.py), which this package does not import.
"""

from orca_jax.convert.checkpoint import (
    ShapeMismatchError,
    check_param_shapes,
    load_converted,
    load_hf_config,
    load_model_config,
    load_params,
    param_shapes,
    save_converted,
    scan_layout,
)
from orca_jax.convert.hf_llama import (
    UnsupportedConfigError,
    export_hf,
    hf_config_from_llama,
    import_hf,
    llama_config_from_hf,
)

__all__ = [
    "ShapeMismatchError", "UnsupportedConfigError", "check_param_shapes", "export_hf", "hf_config_from_llama",
    "import_hf", "llama_config_from_hf", "load_converted", "load_hf_config", "load_model_config", "load_params",
    "param_shapes", "save_converted", "scan_layout",
]
