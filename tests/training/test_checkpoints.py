"""load_params / load_model_config on the three layouts, and the Checkpointer round trip."""

import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orca_jax import partitioning
from orca_jax.models import get_preset
from orca_jax.training import checkpoints, model_card
from orca_jax.training import train_state as ts
from orca_jax.training.optimizer import make_optimizer

from trainer_testlib import REPO, subprocess_env

CONFIG = get_preset("tiny")


@pytest.fixture(scope="module")
def params():
    """Random host params of the tiny model's shapes (no compile needed)."""
    rng = np.random.default_rng(0)
    shapes = nn.unbox(ts.abstract_boxed_params(CONFIG))
    return jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)


def save_converted(directory, params, config=CONFIG):
    """The layout orca_jax.convert writes: <dir>/params, model_config.json, model_card.json."""
    checkpoints.save_converted(str(directory), params, config, model_card.build_card(config, created_by="test"))


def test_converted_dir_loads_sharded_and_cast_to_fp32(tmp_path, params):
    bf16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    save_converted(tmp_path, bf16)
    assert model_card.load_card(str(tmp_path))["created_by"] == "test"
    mesh = partitioning.make_mesh((1, 4, 2))
    loaded = checkpoints.load_params(str(tmp_path), CONFIG, mesh)
    expected = partitioning.params_shardings(ts.abstract_boxed_params(CONFIG), mesh, partitioning.logical_axis_rules())
    for got, want, sharding in zip(jax.tree.leaves(loaded), jax.tree.leaves(bf16), jax.tree.leaves(expected)):
        assert got.dtype == jnp.float32 and got.sharding == sharding
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want, np.float32))
    assert checkpoints.load_model_config(str(tmp_path)) == CONFIG

    alone = checkpoints.load_params(str(tmp_path))  # the recorded config, the default device
    assert all(x.sharding.device_set == {jax.devices()[0]} for x in jax.tree.leaves(alone))


def test_wrong_model_or_missing_checkpoint_fail_clearly(tmp_path, params):
    save_converted(tmp_path, params)
    with pytest.raises(ValueError, match="d_model=64 .checkpoint. vs 128"):
        checkpoints.load_params(str(tmp_path), CONFIG.replace(d_model=128))
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        checkpoints.load_params(str(tmp_path / "nowhere"))
    assert checkpoints.load_model_config(str(tmp_path / "nowhere")) is None
    assert not CONFIG.tie_word_embeddings
    with pytest.raises(checkpoints.ShapeMismatchError, match=r"unexpected \['lm_head/kernel'\]"):
        checkpoints.load_params(str(tmp_path), CONFIG.replace(tie_word_embeddings=True))


def test_unknown_model_config_field_names_the_field_and_file(tmp_path, params):
    save_converted(tmp_path, params)
    file = tmp_path / checkpoints.MODEL_CONFIG_FILE
    file.write_text(json.dumps({**json.loads(file.read_text()), "moe_experts": 8}))
    step_dir = tmp_path / "checkpoints" / "3"  # found from a step dir too
    for where in (tmp_path, step_dir):
        with pytest.raises(ValueError, match=rf"{file}.* lacks: \['moe_experts'\]"):
            checkpoints.load_model_config(str(where))
    with pytest.raises(ValueError, match="moe_experts"):
        checkpoints.load_params(str(tmp_path))


def test_run_dir_step_dir_and_restore(tmp_path, params):
    optimizer = make_optimizer(10)
    run = tmp_path / "stage1"
    checkpoints.save_model_config(str(run), CONFIG)
    saver = checkpoints.Checkpointer(str(run / "checkpoints"), save_every_steps=1)
    states = {}
    for step in (1, 2):
        p = jax.tree.map(lambda x: jnp.asarray(x) + step, params)
        states[step] = ts.new_state(p, optimizer, jax.random.PRNGKey(step)).replace(step=jnp.asarray(step))
        saver.save(step, states[step], {"epoch": 0, "cursor": 10 * step})
    saver.wait()
    (run / "checkpoints" / "3.orbax-checkpoint-tmp-1").mkdir()  # an interrupted save

    def same(a, b):
        return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    assert same(checkpoints.load_params(str(run)), states[2].params)  # latest complete step
    assert same(checkpoints.load_params(str(run / "checkpoints" / "1")), states[1].params)
    assert checkpoints.load_model_config(str(run / "checkpoints" / "1")) == CONFIG

    mesh = partitioning.make_mesh((2, 2, 2))
    shardings = ts.state_shardings(CONFIG, optimizer, mesh, partitioning.logical_axis_rules())
    restored, position = saver.restore(1, ts.abstract_state(CONFIG, optimizer, shardings))
    assert position == {"epoch": 0, "cursor": 10}
    assert same(restored, states[1])
    assert restored.params["embed"].sharding == shardings.params["embed"]
    saver.close()


def test_importable_after_gin_is_locked():
    """The evaluation runner imports this module lazily, after parsing its gin config."""
    code = (
        "import gin, orca_jax.models, orca_jax.partitioning; gin.finalize(); "
        "from orca_jax.training.checkpoints import load_params, load_model_config"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
