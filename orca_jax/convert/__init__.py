"""Hugging Face LLaMA-family safetensors (llama, mistral, qwen2; see docs/students.md) <-> orca-jax params.

In memory:
  import_hf(hf_dir, *, scan_layers=None, add_pad_rows=0, param_dtype=None, preset=None,
            config_overrides=None) -> (params, LlamaConfig)
  export_hf(params, config, out_dir, *, vocab_size=None, dtype="float32", max_shard_size="5GB",
            base_hf_config=None)
  llama_config_from_hf(config_json_dict, **overrides) -> LlamaConfig

On disk, a converted checkpoint (`<dir>/params`, model_config.json, model_card.json and the
tokenizer files, hf_config.json) is written and read by orca_jax.training.checkpoints, like
every other checkpoint.

Command line: `python -m orca_jax.convert {import_hf,export_hf} ...` (`orca-convert`).
Conversion uses numpy + safetensors only; torch/transformers appear only in `parity` (tests,
benchmarks/hf_parity_sweep.py), which this package does not import.
"""

from orca_jax.convert.hf_llama import (
    UnsupportedConfigError,
    export_hf,
    hf_config_from_llama,
    import_hf,
    llama_config_from_hf,
)

__all__ = ["UnsupportedConfigError", "export_hf", "hf_config_from_llama", "import_hf", "llama_config_from_hf"]
