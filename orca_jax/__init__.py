"""orca-jax: Orca-style explanation tuning of LLaMA students in JAX."""

__version__ = "0.1.0"
