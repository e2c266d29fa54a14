"""AOT compilation for TPU topologies on a CPU machine (orca_jax/tools/aot_compile.py).

The compile tests need libtpu (`pip install "jax[tpu]==0.10.2"`, or PYTHONPATH pointing at
an unpacked libtpu wheel); no TPU. They are marked `tpu`, skipped without it. Flag/gin errors do not need it.
"""

import json
import os
import subprocess
import sys

import gin
import pytest

from orca_jax.tools import aot_compile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY = ["--gin_file=runs/tiny_cpu.gin", "--gin.SEQUENCE_LENGTH=128", "--gin.BATCH_SIZE=16"]


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.slow
@pytest.mark.tpu  # skipped without libtpu (tests/conftest.py)
def test_tiny_model_compiles_for_v5p_8(tmp_path, capsys):
    out = tmp_path / "aot.json"
    assert aot_compile.main([*TINY, "--topology=v5p-8", f"--json={out}"]) == aot_compile.FIT
    text = capsys.readouterr().out
    assert "v5p:2x2x1, 4 chips" in text
    assert "train step total (arguments + temporaries + outputs - aliased)" in text
    assert "eval decode total" in text and text.rstrip().endswith("HBM headroom")
    result = json.loads(out.read_text())
    assert result["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    assert (result["batch_size"], result["sequence_length"], result["stage"]) == (16, 128, "stage1")
    memory = result["train"]["memory"]
    assert memory["total"] == memory["arguments"] + memory["temporaries"] + memory["outputs"] - memory["aliased"]
    assert 0 < memory["total"] < 95 * 2**30 and memory["temporaries"] > 0
    assert memory["aliased"] > 0  # the old state is donated to the new one
    assert result["train"]["model_flops_per_device"] > 0 and result["train"]["xla_flops_per_device"] > 0
    assert result["decode"]["memory"]["total"] > 0
    assert result["decode"]["batch_size"] == 32 and result["decode"]["prompt_length"] + 64 == 256
    assert [t["stage"] for t in result["stage_times"]] == ["stage1", "stage2"]
    # One FLOPs-per-token figure: a stage's hours are its steps at the printed step time.
    for t in result["stage_times"]:
        assert t["batch_size"] * t["sequence_length"] == 16 * 128
        assert t["hours"] * 3600 == pytest.approx(t["steps"] * result["train"]["ideal_step_seconds"] / result["mfu"])


@pytest.mark.slow
@pytest.mark.tpu
def test_max_batch_is_the_largest_batch_that_compiles_within_the_budget(tmp_path, capsys):
    hbm = ["--hbm_gib=0.015", "--skip_decode"]  # a small "chip": a few dozen tiny rows fill it
    out = tmp_path / "aot.json"
    assert aot_compile.main([*TINY, "--topology=v5p-8", *hbm, "--max_batch", f"--json={out}"]) == aot_compile.FIT
    found = json.loads(out.read_text())["max_batch"]
    batch, step = found["batch_size"], found["granularity"]
    assert step == 4 and batch > 16 and batch % step == 0  # fsdp=4 rows
    assert f"largest global batch with 10% headroom: {batch} x 128" in capsys.readouterr().out
    # Independently: the tool's own verdict at that batch and at the next valid one.
    assert aot_compile.main([*TINY[:-1], f"--gin.BATCH_SIZE={batch}", "--topology=v5p-8", *hbm]) == aot_compile.FIT
    over = aot_compile.main([*TINY[:-1], f"--gin.BATCH_SIZE={batch + step}", "--topology=v5p-8", *hbm])
    assert over == aot_compile.DOES_NOT_FIT


def test_stage_hours_use_the_models_flops_per_token():
    """Stage hours count flops_per_token (6N + attention), the figure beside the step time, not 6N."""
    from orca_jax import gin_utils
    from orca_jax.tools import topologies
    from orca_jax.training import trainer

    gin_utils.parse_gin(["runs/orca_13b_v5p_64.gin"], ["MODEL_DIR = '/tmp/unused'"])
    _, stages = trainer.configs_from_gin()
    config, topology = stages["stage1"].model, topologies.get_topology("v5p-64")
    times = aot_compile.stage_times(topology, stages, 0.4)
    assert [t["stage"] for t in times] == ["stage1", "stage2"]
    slice_flops = topology.num_chips * topology.peak_bf16_flops_per_chip * 0.4
    for t in times:
        assert t["flops_per_token"] == config.flops_per_token(2048) > 6 * config.num_params()
        assert t["hours"] * 3600 == pytest.approx(t["tokens"] * config.flops_per_token(2048) / slice_flops)
        step_seconds = 128 * 2048 * config.flops_per_token(2048) / slice_flops
        assert t["hours"] * 3600 == pytest.approx(t["steps"] * step_seconds)


@pytest.mark.slow
@pytest.mark.tpu
@pytest.mark.parametrize("mesh", ["(1, -1, 1)", "(1, -1, 2)"])
def test_splash_attention_compiles_on_a_sharded_multi_host_slice(tmp_path, capsys, mesh):
    """Splash on a 2-host v5p-16: params init off the kernel, the Mosaic kernel runs in shard_map
    (rows over fsdp, heads over tensor; GQA), and every host can feed its (interleaved) rows."""
    out = tmp_path / "aot.json"
    assert (
        aot_compile.main(
            [
                *TINY,
                "--topology=v5p-16",
                f"--gin.PartitioningConfig.mesh_shape={mesh}",
                "--skip_decode",
                "--gin.model_config.overrides={'attention_impl': 'splash', 'n_kv_heads': 2}",
                f"--json={out}",
            ]
        )
        == aot_compile.FIT
    )
    assert "WARNING" not in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert (result["attention_impl"], result["hosts"], result["host_feeding_problems"]) == ("splash", 2, [])


@pytest.mark.tpu
def test_13b_data_parallel_on_one_v5p_host_is_rejected_before_compiling(capsys):
    # Every chip would hold all 13B params + Adam moments (~146 GiB): the analytic check
    # rejects it in seconds, before any compile.
    rc = aot_compile.main(
        [
            "--gin_file=runs/orca_13b.gin",
            "--topology=v5p-8",
            "--gin.PartitioningConfig.mesh_shape=(4, 1, 1)",
            "--gin.model_config.overrides={'attention_impl': 'xla'}",
            "--skip_decode",
        ]
    )
    assert rc == aot_compile.DOES_NOT_FIT
    err = capsys.readouterr().err
    assert "DOES NOT FIT" in err and "does not fit on v5p-8" in err
    assert "145.4" in err and "95.00 GiB HBM" in err and "before compiling" in err
    assert "fsdp" in err  # what to change


@pytest.mark.slow
@pytest.mark.tpu
def test_compiled_step_over_the_hbm_budget_is_rejected_with_advice(capsys):
    # 20 MiB of temporaries without remat; 10 MiB of "HBM".
    rc = aot_compile.main(
        [
            *TINY,
            "--topology=v5p-8",
            "--hbm_gib=0.01",
            "--skip_decode",
            "--gin.model_config.overrides={'remat_policy': 'none'}",
        ]
    )
    assert rc == aot_compile.DOES_NOT_FIT
    captured = capsys.readouterr()
    assert "train step total" in captured.out  # the memory is printed before the verdict
    assert "the train step does not fit on v5p-8" in captured.err
    assert "remat_policy='full'" in captured.err and "num_microbatches" in captured.err


@pytest.mark.slow
@pytest.mark.tpu
def test_compiler_out_of_memory_is_a_does_not_fit(capsys):
    # XLA:TPU itself refuses a program whose temporaries exceed the chip (~122 GiB of
    # activations and logits on one 16 GiB v5e chip); it gives up in a second or two.
    rc = aot_compile.main(
        [
            *TINY[:-1],
            "--gin.BATCH_SIZE=16384",
            "--topology=v5litepod-1",
            "--skip_decode",
            "--gin.model_config.overrides={'remat_policy': 'none'}",
        ]
    )
    assert rc == aot_compile.DOES_NOT_FIT
    err = capsys.readouterr().err
    assert "the train step does not fit on v5litepod-1: the TPU compiler ran out of memory" in err
    assert "LossConfig.chunk_size = 128" in err and "num_microbatches" in err


@pytest.mark.slow
@pytest.mark.tpu
def test_headroom_is_required(capsys):
    # Fits in the HBM, but not with 99% of it kept free.
    rc = aot_compile.main([*TINY, "--topology=v5p-8", "--skip_decode", "--min_headroom=0.99999"])
    assert rc == aot_compile.DOES_NOT_FIT
    assert "leaves less than the required" in capsys.readouterr().err


@pytest.mark.tpu
def test_batch_that_does_not_split_over_the_mesh_is_a_clear_error(capsys):
    assert aot_compile.main([*TINY[:-1], "--gin.BATCH_SIZE=6", "--topology=v5p-8"]) == aot_compile.ERROR
    err = capsys.readouterr().err
    assert "global batch size 6 is not divisible" in err and "v5p-8" in err


@pytest.mark.tpu
def test_mesh_that_does_not_match_the_topology_is_a_clear_error(capsys):
    assert (
        aot_compile.main([*TINY, "--topology=v5p-8", "--gin.PartitioningConfig.mesh_shape=(1, 8, 1)"])
        == aot_compile.ERROR
    )
    assert "mesh_shape=(1, 8, 1) has 8 slots but there are 4 devices" in capsys.readouterr().err


def test_gin_errors_are_reported_before_anything_else(capsys):
    rc = aot_compile.main(["--gin_file=runs/tiny_cpu.gin", "--topology=v5p-8", "--gin.model_config.prest='x'"])
    assert rc == aot_compile.ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: gin:") and "prest" in err


def test_unknown_topology_and_stage(capsys):
    assert aot_compile.main(["--gin_file=runs/tiny_cpu.gin", "--topology=v5p-7"]) == aot_compile.ERROR
    assert "--topology='v5p-7'" in capsys.readouterr().err
    assert aot_compile.main(["--gin_file=runs/tiny_cpu.gin", "--topology=v5p-8", "--stage=stage3"]) == aot_compile.ERROR
    assert "--stage='stage3' is not one of RunConfig.stages" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, mesh", [("v5p_64", (1, -1, 1)), ("v5p_128", (1, -1, 1)), ("v4_256", (1, -1, 1)), ("v5e_256", (1, -1, 2))]
)
def test_pod_run_configs_parse(name, mesh):
    """The pod configs are complete gin (the compiles themselves take minutes: docs/aot_table.md)."""
    from orca_jax import gin_utils
    from orca_jax.training import trainer

    gin_utils.parse_gin([f"runs/orca_13b_{name}.gin"], ["MODEL_DIR = '/tmp/unused'"])
    _, stages = trainer.configs_from_gin()
    for stage, steps in (("stage1", 58900), ("stage2", 17400)):
        trainer.validate(stages[stage], stage)
        assert tuple(stages[stage].partitioning.mesh_shape) == mesh
        assert stages[stage].data.batch_shape == (128, 2048)
        assert (stages[stage].num_microbatches, stages[stage].num_train_steps) == (1, steps)
    config = stages["stage2"].model
    assert (config.n_layers, config.attention_impl, config.remat_policy) == (40, "splash", "save_dots_no_batch")


@pytest.mark.tpu
def test_cli_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [os.environ.get("PYTHONPATH"), REPO] if p)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orca_jax.tools.aot_compile",
            "--gin_file=runs/orca_13b.gin",
            "--topology=v5litepod-1",
            "--skip_decode",
            "--gin.model_config.overrides={'attention_impl': 'xla'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "does not fit on v5litepod-1" in proc.stderr and "16.00 GiB HBM" in proc.stderr


def _search(total_of, start, granularity, budget):
    calls = []

    def total_at(batch):
        calls.append(batch)
        return total_of(batch)

    found = aot_compile.search_max_batch(total_at, start, total_of(start), granularity, budget)
    return found, calls


def _is_the_largest(found, total_of, granularity, budget):
    fits = lambda b: total_of(b) is not None and total_of(b) <= budget  # noqa: E731
    return (
        found.batch_size % granularity == 0
        and fits(found.batch_size)
        and not fits(found.batch_size + granularity)
        and found.total == total_of(found.batch_size)
    )


@pytest.mark.parametrize(
    "total_of",
    [
        lambda b: 1000 + 10 * b,  # affine: extrapolation is exact
        lambda b: 1000 + 10 * b + b * b // 20,  # convex: the first line under-estimates
        lambda b: 1000 + 30 * b - (b * b // 40 if b < 400 else 4000),  # concave, then a jump
        lambda b: 1000 + 10 * b if b <= 300 else None,  # the compiler refuses anything above 300
    ],
)
@pytest.mark.parametrize("budget", [2500, 4321, 7000])
def test_max_batch_search_finds_the_largest_fitting_multiple(total_of, budget):
    found, calls = _search(total_of, 16, 8, budget)
    assert _is_the_largest(found, total_of, 8, budget), (found, calls)
    assert len(calls) == len(set(calls)) and len(calls) <= 12  # never the same batch twice
    assert dict(found.compiled)[found.batch_size + 8] is None or dict(found.compiled)[found.batch_size + 8] > budget


def test_max_batch_search_affine_memory_takes_three_compiles():
    """Two points fix the line; the candidate and its next multiple confirm it."""
    found, calls = _search(lambda b: 1000 + 10 * b, 64, 32, 5000)
    assert found.batch_size == 384 and len(calls) == 3 and found.slope == 10


def test_max_batch_search_when_nothing_fits():
    found, _ = _search(lambda b: 100 * b, 8, 8, 500)  # the start itself is over budget
    assert found.batch_size is None
