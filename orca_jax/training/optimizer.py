"""AdamW with warmup then decay and global-norm clipping (optax); `OptimizerConfig` is its gin config.

Orca's paper does not state its learning rate, batch size, schedule or optimizer
(docs/orca_facts.md#3a-orca-hyperparameters). The defaults are the instruction-tuning recipe of LLaMA-13B
students of that time (Alpaca/Vicuna/FastChat): AdamW, peak lr 2e-5, linear warmup over 3%
of the steps, cosine decay to 0, no weight decay, clipping at global norm 1.0; b2 = 0.95 as
in LLaMA's own training (steadier than 0.999 in bf16). All are gin-settable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import gin
import jax
import optax

DECAYS = ("cosine", "linear", "constant")


class Optimizer(NamedTuple):
    """An optax transformation and the learning-rate schedule it follows (for metrics)."""

    tx: optax.GradientTransformation
    schedule: Callable[[Any], Any]


def make_schedule(
    total_steps: int, learning_rate: float, warmup_steps: int, decay: str, end_learning_rate_ratio: float
) -> optax.Schedule:
    """Linear warmup 0 -> learning_rate over warmup_steps, then `decay` to ratio * lr at total_steps."""
    end = learning_rate * end_learning_rate_ratio
    decay_steps = max(1, total_steps - warmup_steps)
    after = {
        "cosine": optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=end_learning_rate_ratio),
        "linear": optax.linear_schedule(learning_rate, end, decay_steps),
        "constant": optax.constant_schedule(learning_rate),
    }[decay]
    warmup = optax.linear_schedule(0.0, learning_rate, max(1, warmup_steps))
    return optax.join_schedules([warmup, after], [warmup_steps])


def decay_mask(params: Any) -> Any:
    """Weight decay applies to matrices (ndim >= 2), not to norm scales."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer of one stage (gin: `OptimizerConfig.x`, `stage2/OptimizerConfig.x`)."""

    learning_rate: float = 2e-5
    """Peak learning rate, reached at the end of warmup."""
    warmup_steps: int | None = None
    """Linear warmup length; None: warmup_fraction * the stage's steps."""
    warmup_fraction: float = 0.03
    """Warmup length as a fraction of the stage's steps when warmup_steps is None."""
    decay: str = "cosine"
    """Shape after warmup: cosine | linear | constant."""
    end_learning_rate_ratio: float = 0.0
    """Final learning rate as a fraction of the peak (cosine/linear)."""
    b1: float = 0.9
    """Adam's first-moment decay rate."""
    b2: float = 0.95
    """Adam's second-moment decay rate."""
    eps: float = 1e-8
    """Adam's epsilon."""
    weight_decay: float = 0.0
    """Decoupled weight decay on matrices (0 disables it)."""
    clip_norm: float | None = 1.0
    """Clip gradients to this global norm before Adam; None disables clipping."""

    def __post_init__(self):
        if self.decay not in DECAYS:
            raise ValueError(f"OptimizerConfig.decay={self.decay!r}; expected one of {DECAYS}")

    def make(self, total_steps: int) -> Optimizer:
        """AdamW for a schedule of `total_steps` updates (the stage's num_train_steps)."""
        warmup = int(self.warmup_fraction * total_steps) if self.warmup_steps is None else self.warmup_steps
        schedule = make_schedule(total_steps, self.learning_rate, warmup, self.decay, self.end_learning_rate_ratio)
        adamw = optax.adamw(
            schedule, b1=self.b1, b2=self.b2, eps=self.eps, weight_decay=self.weight_decay, mask=decay_mask
        )
        clip = optax.clip_by_global_norm(self.clip_norm) if self.clip_norm else optax.identity()
        return Optimizer(optax.chain(clip, adamw), schedule)


def make_optimizer(total_steps: int, **fields: Any) -> Optimizer:
    """`OptimizerConfig(**fields).make(total_steps)`."""
    return OptimizerConfig(**fields).make(total_steps)


def update_count(opt_state: Any) -> jax.Array:
    """Number of updates applied so far (Adam's step count), which drives the schedule."""
    return optax.tree_utils.tree_get_all_with_path(opt_state, "count")[0][1]
