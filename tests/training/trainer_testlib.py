"""Trainer test helpers (the tests import them; conftest.py holds the fixtures): a per-session
persistent compilation cache shared with the trainer subprocesses (a config compiled once is
not compiled again), the tiny run's bindings, and a launcher for `python -m orca_jax.train`."""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = tempfile.mkdtemp(prefix="orca_jax_test_jit_cache_")
atexit.register(shutil.rmtree, CACHE_DIR, ignore_errors=True)
CACHE_ENV = {"JAX_COMPILATION_CACHE_DIR": CACHE_DIR, "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

# A tiny run for tests (overrides of runs/tiny_cpu.gin): synthetic data, so tests need no
# data stack. Tests share its stage-one step (same HLO): the persistent cache compiles it once.
TINY_BINDINGS = (
    "STAGE1_MIXTURE_OR_TASK_NAME = 'synthetic'",
    "STAGE2_MIXTURE_OR_TASK_NAME = 'synthetic'",
    "NUM_EPOCHS = None",
    "PartitioningConfig.mesh_shape = (2, 2, 2)",
    "STAGE1_TRAIN_STEPS = 12",
    "BATCH_SIZE = 8",
    "SEQUENCE_LENGTH = 64",
    "StageConfig.log_every_steps = 1",
    "CheckpointConfig.save_every_steps = 2",
    "OptimizerConfig.warmup_steps = 2",
)


def subprocess_env(**extra: str) -> dict:
    env = {**os.environ, **CACHE_ENV, "PYTHONPATH": str(REPO), **extra}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def train_command(model_dir: Path, *bindings: str, extra_flags: tuple = ()) -> list:
    """`python -m orca_jax.train` on runs/tiny_cpu.gin with TINY_BINDINGS and `bindings`."""
    flags = [f"--gin.{b.replace(' = ', '=')}" for b in (*TINY_BINDINGS, *bindings)]
    return [
        sys.executable,
        "-m",
        "orca_jax.train",
        "--gin_file=runs/tiny_cpu.gin",
        f"--gin.MODEL_DIR={model_dir}",
        *flags,
        *extra_flags,
    ]


def run_train(
    model_dir: Path, *bindings: str, env: dict | None = None, timeout: float = 180
) -> subprocess.CompletedProcess:
    """Run the trainer to completion in a subprocess; fail the test with its output if it fails."""
    result = subprocess.run(
        train_command(model_dir, *bindings),
        cwd=REPO,
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result
