"""The pure train step on 8 simulated devices: sharding and gradient accumulation change
nothing, the loss falls, a non-finite step is skipped, the chunked loss equals the plain one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orca_jax import partitioning
from orca_jax.models import Llama, get_preset
from orca_jax.training import train_state as ts
from orca_jax.training.batches import SyntheticBatches
from orca_jax.training.feeding import to_global
from orca_jax.training.loss import LossConfig, loss_sums
from orca_jax.training.optimizer import make_optimizer, update_count
from orca_jax.training.train_step import batch_abstract, compile_train_step

CONFIG = get_preset("tiny")
OPTIMIZER = make_optimizer(100, learning_rate=1e-3, warmup_steps=0)
BATCH, LENGTH = 16, 64


class Compiled:
    """A compiled step for one mesh and microbatch count, and how to feed it."""

    def __init__(self, mesh_shape, devices, num_microbatches):
        self.mesh = partitioning.make_mesh(mesh_shape, devices=devices)
        rules = partitioning.logical_axis_rules()
        self.shardings = ts.state_shardings(CONFIG, OPTIMIZER, self.mesh, rules)
        self.batch = batch_abstract((BATCH, LENGTH), self.mesh, rules)
        self.step = compile_train_step(
            CONFIG,
            OPTIMIZER,
            LossConfig(),
            num_microbatches,
            self.mesh,
            rules,
            ts.abstract_state(CONFIG, OPTIMIZER, self.shardings),
            self.batch,
        )

    def run(self, host_state, host_batches):
        """Steps from a host copy of the state; returns (host state, per-step host metrics)."""
        state = jax.device_put(host_state, self.shardings)
        history = []
        for batch in host_batches:
            state, metrics = self.step(state, to_global(batch, self.batch["decoder_input_tokens"].sharding, BATCH))
            history.append(metrics)
        return jax.device_get(state), jax.device_get(history)


@pytest.fixture(scope="module")
def single():
    return Compiled((1, 1, 1), jax.devices()[:1], 1)


@pytest.fixture(scope="module")
def initial():
    one = partitioning.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    shardings = ts.state_shardings(CONFIG, OPTIMIZER, one, partitioning.logical_axis_rules())
    return jax.device_get(ts.init_state(CONFIG, OPTIMIZER, shardings, seed=0))


def batches(n, seed=0):
    source = SyntheticBatches(LENGTH, BATCH, seed=seed)
    return [next(source) for _ in range(n)]


def assert_trees_close(a, b, atol, rtol=0.0):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, atol=atol, rtol=rtol)


@pytest.mark.slow
def test_sharded_step_equals_single_device(single, initial):
    sharded = Compiled((2, 2, 2), jax.devices(), 1)
    data = batches(2)
    state_1, metrics_1 = single.run(initial, data)
    state_8, metrics_8 = sharded.run(initial, data)
    for m1, m8 in zip(metrics_1, metrics_8):
        np.testing.assert_allclose(m8["loss"], m1["loss"], atol=1e-5, rtol=0)
    assert_trees_close(state_8.params, state_1.params, atol=1e-5)
    assert_trees_close(state_8.opt_state, state_1.opt_state, atol=1e-5)


@pytest.mark.slow
def test_microbatches_equal_one_batch(single, initial):
    accumulated = Compiled((2, 2, 2), jax.devices(), 2)  # and sharded: the strided split stays local
    data = batches(2, seed=3)
    state_1, metrics_1 = single.run(initial, data)
    state_m, metrics_m = accumulated.run(initial, data)
    for m1, mm in zip(metrics_1, metrics_m):
        np.testing.assert_allclose(mm["loss"], m1["loss"], atol=1e-5, rtol=0)
        np.testing.assert_allclose(mm["grad_norm"], m1["grad_norm"], atol=1e-5, rtol=0)
    assert_trees_close(state_m.params, state_1.params, atol=1e-5)


@pytest.mark.slow
def test_loss_falls(single, initial):
    _, history = single.run(initial, batches(40, seed=5))
    losses = [float(m["loss"]) for m in history]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses


def test_nonfinite_loss_skips_the_update(single, initial):
    poisoned = initial.replace(params=jax.tree.map(lambda p: p, initial.params))
    poisoned.params["final_norm"]["scale"] = np.full_like(initial.params["final_norm"]["scale"], np.nan)
    state, (metrics,) = single.run(poisoned, batches(1))
    assert metrics["skipped"] == 1 and not np.isfinite(metrics["loss"])
    assert int(state.step) == 1  # the batch is consumed...
    for new, old in zip(jax.tree.leaves(state.params), jax.tree.leaves(poisoned.params)):
        np.testing.assert_array_equal(new, old)  # ...but params (NaN included) are untouched
    assert int(update_count(state.opt_state)) == 0
    assert all(np.all(x == 0) for x in jax.tree.leaves(state.opt_state[1][0].mu))


@pytest.mark.slow
def test_chunked_loss_equals_full_loss(initial):
    model = Llama(CONFIG)
    batch = {k: jnp.asarray(v) for k, v in batches(1)[0].items()}

    def value_and_grad(config):
        fn = lambda p: loss_sums(p, model, batch, config)[0]  # noqa: E731
        return jax.jit(jax.value_and_grad(fn))(initial.params)

    full, full_grads = value_and_grad(LossConfig(z_loss=1e-4))
    chunked, chunked_grads = value_and_grad(LossConfig(z_loss=1e-4, chunk_size=16))
    np.testing.assert_allclose(chunked, full, rtol=1e-6)
    # fp32 sums over the batch's tokens in another order: the worst of 65,536 embedding-gradient
    # entries differs by 1.7e-5 relative (RoPE frequencies now come from numpy); a chunking
    # mistake (a lost chunk or a shifted mask) shows as 1e-2 or more.
    assert_trees_close(chunked_grads, full_grads, atol=1e-6, rtol=3e-5)


@pytest.mark.slow
def test_a_splash_model_state_builds_and_initialises_anywhere(initial):
    """Params do not depend on the attention kernel: init traces the xla kernel, so a model
    configured for splash (TPU only; lengths divisible by 128) builds its sharded state from
    the 8-token dummy batch, with the same params."""
    config = CONFIG.replace(attention_impl="splash")
    mesh = partitioning.make_mesh((2, 2, 2))
    rules = partitioning.logical_axis_rules()
    shardings = ts.state_shardings(config, OPTIMIZER, mesh, rules)
    assert shardings == ts.state_shardings(CONFIG, OPTIMIZER, mesh, rules)
    ts.abstract_state(config, OPTIMIZER, shardings)
    state = jax.device_get(ts.init_state(config, OPTIMIZER, shardings, seed=0))
    jax.tree.map(np.testing.assert_array_equal, state.params, initial.params)
