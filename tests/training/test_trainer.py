"""The gin-configured trainer in-process: two stages, skip/resume, guards and early errors."""

import dataclasses
import json
import logging
import sys
import types

import gin
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from orca_jax import gin_utils, train
from orca_jax.evaluation.runner import EvalConfig
from orca_jax.models import get_preset
from orca_jax.training import checkpoints, trainer
from orca_jax.training.metrics import read_metrics
from orca_jax.training.optimizer import update_count

from trainer_testlib import TINY_BINDINGS


def configure(model_dir, *bindings, files=("runs/tiny_cpu.gin",), tiny=True):
    bindings = [f"MODEL_DIR = '{model_dir}'", *(TINY_BINDINGS if tiny else ()), *bindings]
    gin_utils.parse_gin(files, bindings)


def run_stages(**changes):
    """Train as `python -m orca_jax.train` does: the typed configs built from gin once."""
    run, stages = trainer.configs_from_gin()
    trainer.run_stages(dataclasses.replace(run, **changes), stages)


@pytest.mark.slow
def test_two_stages_then_skip(tmp_path, clean_gin, monkeypatch, caplog):
    configure(tmp_path, "STAGE2_TRAIN_STEPS = 3")
    with caplog.at_level(logging.INFO):
        run_stages()
    # A normal run, stage hand-off included, logs nothing that looks like a failure (orbax
    # used to warn "Metadata file does not exist" and "Given directory is read only").
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "initialising params from" in caplog.text  # the hand-off was captured
    stage1, stage2 = tmp_path / "stage1", tmp_path / "stage2"
    assert json.loads((stage1 / "DONE").read_text()) == {"final_step": 12}
    assert json.loads((stage2 / "DONE").read_text()) == {"final_step": 3}
    for name in ("config.gin", "operative_config.gin", "model_config.json", "metrics.jsonl"):
        assert (stage1 / name).exists() and (stage2 / name).exists(), name
    assert list((stage1 / "tensorboard").iterdir())
    assert (tmp_path / "config.gin").exists() and (tmp_path / "operative_config.gin").exists()
    assert "stage2/StageConfig.init_from_previous_stage = True" in (tmp_path / "operative_config.gin").read_text()
    assert checkpoints.load_model_config(str(stage1)) == get_preset("tiny")

    # Stage two's schedule restarted: warmup from 0 at its first step.
    records = read_metrics(str(stage2))
    assert [r["step"] for r in records] == [1, 2, 3]
    assert records[0]["learning_rate"] == 0.0 and records[1]["learning_rate"] > 0
    assert {
        "loss",
        "grad_norm",
        "tokens_per_s",
        "slots_per_s",
        "mfu",
        "step_time_s",
        "data_wait_s",
        "data/bad_rows",
    } <= records[0].keys()

    # Stage two's initial state: stage one's final params, step 0, zeroed moments.
    setup = trainer.build_setup(trainer.stage_config("stage2"), "stage2")
    fresh = checkpoints.Checkpointer(str(tmp_path / "fresh"))
    state, position = trainer.initial_state(setup, fresh, init_from=str(stage1))
    assert position is None and int(state.step) == 0 and int(update_count(state.opt_state)) == 0
    adam = state.opt_state[1][0]
    assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves((adam.mu, adam.nu)))
    final_stage1 = ocp.StandardCheckpointer().restore(stage1 / "checkpoints" / "12" / "params")
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(final_stage1)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    # Running again is a no-op: both stages are done; the run's configs stay as they were.
    before = {
        p: p.read_text() for p in (stage2 / "metrics.jsonl", tmp_path / "operative_config.gin", tmp_path / "config.gin")
    }
    assert len(before[tmp_path / "operative_config.gin"].splitlines()) > 50
    gin.clear_config()  # as in a new process: gin's operative config starts empty
    configure(tmp_path, "STAGE2_TRAIN_STEPS = 3")
    run_stages()
    assert {p: p.read_text() for p in before} == before

    # The evaluation hook: a clear error up front without the runner; then once per stage.
    monkeypatch.setitem(sys.modules, "orca_jax.evaluation.runner", None)
    with pytest.raises(ImportError, match="orca_jax.evaluation.runner.evaluate"):
        run_stages(evaluate_after_stage=True)
    calls = []
    runner = types.ModuleType("orca_jax.evaluation.runner")
    runner.EvalConfig = EvalConfig
    runner.evaluate = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "orca_jax.evaluation.runner", runner)
    run_stages(evaluate_after_stage=True)
    run_stages(evaluate_after_stage=True)
    want = [{"checkpoint": str(d), "output_dir": str(d / "eval"), "config": EvalConfig()} for d in (stage1, stage2)]
    assert calls == want


@pytest.mark.slow
def test_nonfinite_steps_save_and_stop(tmp_path, clean_gin):
    """INIT_FROM a converted checkpoint with a NaN weight: every update is skipped; after more
    than max_consecutive_nonfinite in a row the trainer saves and stops."""
    converted = tmp_path / "converted"
    config = get_preset("tiny")
    params = jax.device_get(trainer.ts.init_params(config, jax.random.PRNGKey(1)))
    params["final_norm"]["scale"] = np.full_like(params["final_norm"]["scale"], np.nan)
    with ocp.StandardCheckpointer() as saver:  # the converter's layout: <dir>/params + model_config.json
        saver.save(converted / "params", params)
    checkpoints.save_model_config(str(converted), config)
    configure(
        tmp_path / "run",
        f"INIT_FROM = '{converted}'",
        "StageConfig.max_consecutive_nonfinite = 2",
        "RunConfig.stages = ('stage1',)",
    )
    with pytest.raises(trainer.NonFiniteError, match="3 consecutive steps up to step 3"):
        run_stages()
    stage = tmp_path / "run" / "stage1"
    assert not (stage / "DONE").exists()
    saved = checkpoints.load_params(str(stage))
    for a, b in zip(jax.tree.leaves(saved), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), b)  # no update was applied
    assert [r["skipped_steps"] for r in read_metrics(str(stage))] == [1, 1, 1]


@pytest.mark.parametrize(
    "binding, error",
    [
        ("StageConfig.lerning_rate = 1e-3", "lerning_rate"),
        ("trian_stage.seed = 1", "trian_stage"),
        ("LEARNIG_RATE = 1e-3", "LEARNIG_RATE"),
    ],
)
def test_gin_binding_that_names_nothing_fails_at_parse(binding, error, tmp_path, clean_gin):
    with pytest.raises(ValueError, match=error):
        configure(tmp_path, binding)


def test_cli_flags_become_gin_bindings():
    args = train.parse_args(
        [
            "--gin_file=runs/tiny_cpu.gin",
            "--gin.MODEL_DIR=/tmp/x",
            "--gin.BATCH_SIZE=4",
            "--gin.RunConfig.stages=('stage1',)",
            "--gin.INIT_FROM=None",
        ]
    )
    assert args.gin_file == ["runs/tiny_cpu.gin"]
    assert args.gin_bindings == [
        "MODEL_DIR = '/tmp/x'",
        "BATCH_SIZE = 4",
        "RunConfig.stages = ('stage1',)",
        "INIT_FROM = None",
    ]
    with pytest.raises(SystemExit):
        train.parse_args(["--gin_fil=x.gin"])


@pytest.mark.parametrize(
    "bindings, error, match",
    [
        (["PartitioningConfig.mesh_shape = (3, -1, 1)"], ValueError, r"mesh_shape=\(3, -1, 1\)"),
        (["BATCH_SIZE = 6"], ValueError, "global batch size 6 is not divisible"),
        (["StageConfig.num_microbatches = 4"], ValueError, "microbatch size 8/4"),
        (["INIT_FROM = '/nonexistent/llama'"], FileNotFoundError, "/nonexistent/llama"),
        (["STAGE1_MIXTURE_OR_TASK_NAME = None"], ValueError, "mixture_or_task_name is not set"),
    ],
)
def test_bad_setups_fail_before_compute(bindings, error, match, tmp_path, clean_gin):
    configure(tmp_path, *bindings)
    with pytest.raises(error, match=match):
        run_stages()
    assert not (tmp_path / "stage1" / "checkpoints").exists()


@pytest.mark.parametrize(
    "layout, mesh, gate_proj_shard, embed_shard",
    [
        ("data_parallel", {"data": 8, "fsdp": 1, "tensor": 1}, (40, 5120, 13824), (32001, 5120)),
        ("fsdp", {"data": 1, "fsdp": 8, "tensor": 1}, (40, 640, 13824), (32001, 640)),
        ("fsdp_tensor", {"data": 1, "fsdp": 2, "tensor": 4}, (40, 2560, 3456), (32001, 2560)),
    ],
)
def test_orca_13b_run_config_builds(layout, mesh, gate_proj_shard, embed_shard, tmp_path, clean_gin):
    """The 13B two-stage run parses and its shardings fit 8 devices (abstractly: nothing is allocated)."""
    configure(tmp_path, files=("runs/orca_13b.gin", f"partitioning/{layout}.gin"), tiny=False)
    text = gin.config_str()
    assert "STAGE1_MIXTURE_OR_TASK_NAME = 'orca_stage1_flan5m_chatgpt'" in text
    assert "STAGE2_MIXTURE_OR_TASK_NAME = 'orca_stage2_flan1m_gpt4'" in text
    run, stages = trainer.configs_from_gin()
    assert run.stages == ("stage1", "stage2")
    assert stages["stage2"].init_from_previous_stage and not stages["stage1"].init_from_previous_stage
    assert stages["stage1"].data.batch_shape == (128, 2048) and stages["stage1"].loss.chunk_size == 512
    setup = trainer.build_setup(stages["stage1"], "stage1")
    model = setup.config.model
    assert model.n_layers == 40 and model.d_model == 5120 and model.dtype == "bfloat16"
    assert dict(setup.mesh.shape) == mesh
    gate_proj = setup.abstract.params["layers"]["block"]["mlp"]["gate_proj"]
    assert gate_proj.sharding.shard_shape(gate_proj.shape) == gate_proj_shard
    embed = setup.abstract.params["embed"]
    assert embed.sharding.shard_shape(embed.shape) == embed_shard
    adam = setup.abstract.opt_state[1][0]
    assert adam.mu["layers"]["block"]["mlp"]["gate_proj"].sharding == gate_proj.sharding  # moments follow params


def test_preempted_run_exits_with_the_requested_code(tmp_path, clean_gin, monkeypatch):
    """`python -m orca_jax.train` exits 0 after a preemption save, or --preempted_exit_code."""
    from orca_jax.training.preemption import Preempted

    def preempted(*configs):
        raise Preempted(5, str(tmp_path / "stage1"))

    monkeypatch.setattr(trainer, "run_stages", preempted)
    argv = ["--gin_file=runs/tiny_cpu.gin", f"--gin.MODEL_DIR={tmp_path}"]
    train.main(argv)  # returns: exit code 0
    gin.clear_config()
    with pytest.raises(SystemExit) as exit_info:
        train.main(argv + ["--preempted_exit_code=75"])
    assert exit_info.value.code == 75
