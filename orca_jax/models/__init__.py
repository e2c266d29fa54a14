"""LLaMA decoder in Flax linen, its configuration and named presets."""

from orca_jax.models.config import LlamaConfig
from orca_jax.models.llama import Llama
from orca_jax.models.presets import PRESETS, get_preset, model_config

__all__ = ["Llama", "LlamaConfig", "PRESETS", "get_preset", "model_config"]
