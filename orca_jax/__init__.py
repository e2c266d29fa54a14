"""orca-jax: Orca-style explanation tuning of LLaMA students in JAX."""

from orca_jax._platforms import default_to_cpu_without_tpu as _default_to_cpu_without_tpu

_default_to_cpu_without_tpu()  # before any orca_jax module imports jax: see orca_jax/_platforms.py

__version__ = "0.1.0"
