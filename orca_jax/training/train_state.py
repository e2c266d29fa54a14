"""The train state (fp32 params, optimizer state, step, RNG) and its shardings.

Parameters are sharded by their logical axis names through the partitioning rules; the
optimizer state follows the parameters (Adam's moments get their parameter's sharding, the
scalars are replicated).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding

from orca_jax import partitioning
from orca_jax.models import Llama, LlamaConfig

if TYPE_CHECKING:  # no import at run time: this module must not register gin configurables
    from orca_jax.training.optimizer import Optimizer


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes; the checkpoint holds all of it."""

    step: jax.Array
    """Batches consumed so far (int32 scalar); the checkpoint's step number."""
    params: Any
    """Unboxed parameter dict, fp32 master weights (LlamaConfig.param_dtype)."""
    opt_state: Any
    """optax state (Adam moments follow the params' shardings)."""
    rng: jax.Array
    """uint32[2] PRNG key, split each step (reserved for dropout-like randomness)."""


def _dummy_tokens(config: LlamaConfig) -> jax.Array:
    return jnp.zeros((1, min(8, config.max_len)), jnp.int32)


def _init_model(config: LlamaConfig) -> Llama:
    """The model that params are initialised with: the params do not depend on the attention
    kernel, and the dummy batch is shorter than fused kernels accept (splash: multiples of 128)."""
    return Llama(config.replace(attention_impl="xla"))


def abstract_boxed_params(config: LlamaConfig) -> Any:
    """Shapes and logical axis names of the model's params, without allocating them."""
    model = _init_model(config)
    return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), _dummy_tokens(config)))["params"]


def init_params(config: LlamaConfig, rng: jax.Array) -> Any:
    """Freshly initialised, unboxed params (call under jit with out_shardings)."""
    return nn.unbox(_init_model(config).init(rng, _dummy_tokens(config))["params"])


def new_state(params: Any, optimizer: Optimizer, rng: jax.Array) -> TrainState:
    """Step 0 with fresh optimizer state (zeroed moments) around `params`."""
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.tx.init(params), rng=rng)


def state_shardings(config: LlamaConfig, optimizer: Optimizer, mesh: Mesh, rules: partitioning.Rules) -> TrainState:
    """A TrainState of NamedShardings: params by logical axes, optimizer state alike."""
    param_sh = partitioning.params_shardings(abstract_boxed_params(config), mesh, rules)
    abstract_params = nn.unbox(abstract_boxed_params(config))
    abstract_opt = jax.eval_shape(optimizer.tx.init, abstract_params)
    replicated = partitioning.replicated(mesh)
    opt_sh = optax.tree_map_params(
        optimizer.tx,
        lambda _, s: s,
        abstract_opt,
        param_sh,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, NamedSharding),
    )
    return TrainState(step=replicated, params=param_sh, opt_state=opt_sh, rng=replicated)


def abstract_state(config: LlamaConfig, optimizer: Optimizer, shardings: TrainState) -> TrainState:
    """ShapeDtypeStructs (with shardings) of the train state, for AOT compile and restore."""
    shapes = jax.eval_shape(
        lambda: new_state(init_params(config, jax.random.PRNGKey(0)), optimizer, jax.random.PRNGKey(0))
    )
    return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, shardings)


def init_state(config: LlamaConfig, optimizer: Optimizer, shardings: TrainState, seed: int) -> TrainState:
    """A randomly initialised state, created directly in its shardings."""

    def init(rng):
        params_rng, state_rng = jax.random.split(rng)
        return new_state(init_params(config, params_rng), optimizer, state_rng)

    return jax.jit(init, out_shardings=shardings)(jax.random.PRNGKey(seed))


def state_from_params(params: Any, optimizer: Optimizer, shardings: TrainState, seed: int) -> TrainState:
    """Step 0 around loaded params (INIT_FROM or the previous stage): fresh optimizer state."""
    rng = jax.random.split(jax.random.PRNGKey(seed))[1]
    return jax.jit(lambda p, r: new_state(p, optimizer, r), out_shardings=shardings, donate_argnums=0)(params, rng)
