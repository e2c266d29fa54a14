"""Mesh construction, shape errors, and sharded forward/backward equal to one device."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orca_jax import partitioning
from orca_jax.models import Llama, get_preset


def test_minus_one_takes_the_rest():
    assert partitioning.resolve_mesh_shape((2, -1, 2), 8) == (2, 2, 2)
    assert partitioning.make_mesh((1, -1, 1)).shape == {"data": 1, "fsdp": 8, "tensor": 1}


@pytest.mark.parametrize(
    "shape,match",
    [
        ((3, -1, 1), "does not divide the 8 devices"),
        ((2, 2, 3), "has 12 slots but there are 8 devices"),
        ((2, -1, -1), "at most one -1"),
        ((2, 4), "must have 3 entries"),
    ],
)
def test_mesh_shape_errors_name_shape_and_devices(shape, match):
    with pytest.raises(ValueError, match=match):
        partitioning.make_mesh(shape)


def test_indivisible_dimension_names_param_and_axes():
    cfg = get_preset("tiny_gqa")  # 2 kv heads
    abstract = jax.eval_shape(Llama(cfg).init, jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32))
    mesh = partitioning.make_mesh((1, 2, 4))
    with pytest.raises(ValueError, match=r"k_proj.*'kv_heads', size 2.*tensor of size 4"):
        partitioning.params_shardings(abstract, mesh, partitioning.logical_axis_rules())


def test_batch_not_divisible_by_mesh():
    mesh = partitioning.make_mesh((2, 2, 2))
    with pytest.raises(ValueError, match="global batch size 6 is not divisible"):
        partitioning.check_batch_divisible(6, mesh, partitioning.logical_axis_rules())


def test_rules_override():
    rules = dict(partitioning.logical_axis_rules([("vocab", None), ("batch", ["data"])]))
    assert rules["vocab"] is None and rules["batch"] == ("data",)


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["tiny", "tiny_gqa"])
def test_sharded_forward_and_grads_equal_single_device(preset):
    cfg = get_preset(preset, dtype="float32")
    model = Llama(cfg)
    rng = np.random.default_rng(0)
    batch, length = 8, 32
    tokens = rng.integers(3, cfg.vocab_size, (batch, length)).astype(np.int32)
    segments = np.repeat(np.array([[1] * 20 + [2] * 12]), batch, 0).astype(np.int32)
    positions = np.repeat(np.array([list(range(20)) + list(range(12))]), batch, 0).astype(np.int32)
    variables = model.init(jax.random.PRNGKey(0), tokens[:1])
    params = nn.unbox(variables)["params"]

    def loss_fn(p, t, pos, seg):
        logits = model.apply({"params": p}, t, pos, seg)
        logp = jax.nn.log_softmax(logits)
        return -jnp.mean(jnp.take_along_axis(logp, jnp.roll(t, -1, 1)[..., None], -1))

    def fwd_and_grad(p, t, pos, seg):
        return model.apply({"params": p}, t, pos, seg), jax.grad(loss_fn)(p, t, pos, seg)

    ref_logits, ref_grads = jax.jit(fwd_and_grad)(params, tokens, positions, segments)

    mesh = partitioning.make_mesh((2, 2, 2))
    rules = partitioning.logical_axis_rules()
    shardings = partitioning.params_shardings(variables, mesh, rules)["params"]
    data_sharding = partitioning.batch_sharding(mesh, rules)
    sharded_params = jax.device_put(params, shardings)
    args = [jax.device_put(x, data_sharding) for x in (tokens, positions, segments)]
    with partitioning.mesh_context(mesh, rules):
        step = jax.jit(
            fwd_and_grad,
            in_shardings=(shardings, data_sharding, data_sharding, data_sharding),
            out_shardings=(None, shardings),
        )
        logits, grads = step(sharded_params, *args)
    assert len(logits.sharding.device_set) == 8
    np.testing.assert_allclose(logits, ref_logits, atol=1e-5)
    for g, r in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
        np.testing.assert_allclose(g, r, atol=1e-5)
    assert grads["layers"]["block"]["mlp"]["up_proj"].sharding.spec == jax.sharding.PartitionSpec(
        None, "fsdp", "tensor"
    )
