"""Register a task/mixture spec in orca_jax.data.registry and, when SeqIO is installed, in SeqIO."""

from __future__ import annotations

from orca_jax.data import registry

try:
    from tasks import seqio_glue
except ImportError:  # No TensorFlow/SeqIO here (e.g. a GPU host): the Python pipeline still works.
    seqio_glue = None  # type: ignore[assignment]

SEQIO_AVAILABLE = seqio_glue is not None


def add_task(spec: registry.TaskSpec) -> registry.TaskSpec:
    """Register one task under spec.name."""
    registry.register_task(spec)
    if seqio_glue is not None:
        seqio_glue.register_task(spec)
    return spec


def add_mixture(spec: registry.MixtureSpec) -> registry.MixtureSpec:
    """Register one mixture under spec.name (its tasks first)."""
    registry.register_mixture(spec)
    if seqio_glue is not None:
        seqio_glue.register_mixture(spec)
    return spec
