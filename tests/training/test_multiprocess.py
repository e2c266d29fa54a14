"""Multi-host: 2 processes x 4 CPU devices (gloo collectives, jax.distributed) train like
1 process x 8 devices: each host feeds its share of the global batch."""

import json
import re
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from orca_jax.training import trainer
from orca_jax.training.metrics import read_metrics

from test_trainer import configure
from trainer_testlib import REPO, subprocess_env, train_command

pytestmark = pytest.mark.multiprocess

BINDINGS = ("RunConfig.stages = ('stage1',)", "StageConfig.log_data_position = True", "SyntheticBatches.delay_s = 0.1")
PREEMPT_AFTER = 4  # SIGTERM to process 1 only, once this step is in the metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_two(model_dir, **env_vars):
    """The tiny run as 2 processes x 4 CPU devices."""
    address = f"127.0.0.1:{free_port()}"
    env = subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4", **env_vars)
    return [
        subprocess.Popen(
            train_command(
                model_dir,
                *BINDINGS,
                extra_flags=(
                    f"--coordinator_address={address}",
                    "--num_processes=2",
                    f"--process_id={i}",
                    "--cpu_collectives=gloo",
                ),
            ),
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]


def preempt_one_host(processes, stage_dir, after_step, timeout=240):
    """SIGTERM process 1 once `after_step` is logged; both must save and exit 0. Returns
    (each process's stderr, seconds from the signal until both exited)."""
    deadline = time.time() + timeout
    while time.time() < deadline and processes[1].poll() is None:
        if any(r["step"] >= after_step for r in read_metrics(str(stage_dir))):
            break
        time.sleep(0.02)
    sent = time.perf_counter()
    processes[1].send_signal(signal.SIGTERM)
    stderrs = [p.communicate(timeout=120)[1] for p in processes]
    for process, stderr in zip(processes, stderrs):
        assert process.returncode == 0, stderr[-5000:]
    return stderrs, time.perf_counter() - sent


def stopped_step(stderrs):
    """The one step every process reports having saved at on preemption."""
    steps = {int(m) for e in stderrs for m in re.findall(r"preempted: saved a checkpoint at step (\d+)", e)}
    assert len(steps) == 1 and all("preempted: saved" in e for e in stderrs), stderrs[0][-3000:] + stderrs[1][-3000:]
    return steps.pop()


def test_without_the_preemption_service_hosts_agree_through_allgather(tmp_path):
    """jax_enable_preemption_service=False: each host's SIGTERM flag is all-gathered per step."""
    processes = start_two(tmp_path / "two", JAX_ENABLE_PREEMPTION_SERVICE="false")
    stage = tmp_path / "two" / "stage1"
    stderrs, seconds = preempt_one_host(processes, stage, PREEMPT_AFTER)
    assert all("preemption notices: a SIGTERM handler, flags all-gathered every step" in e for e in stderrs)
    stopped = stopped_step(stderrs)
    assert PREEMPT_AFTER <= stopped < 12 and (stage / "checkpoints" / str(stopped)).exists()
    print(f"two processes, all-gathered flags: both saved step {stopped}, exited {seconds:.2f}s after the signal")


def test_two_processes_match_one_through_a_preemption(tmp_path, clean_gin):
    """One host gets SIGTERM: every host stops at the same step (JAX's preemption sync point)
    with a checkpoint there; the restarted pair then matches the one-process run."""
    processes = start_two(tmp_path / "two")
    stage = tmp_path / "two" / "stage1"
    stderrs, seconds = preempt_one_host(processes, stage, PREEMPT_AFTER)
    assert all("preemption notices: JAX's preemption sync point" in e for e in stderrs)
    stopped = stopped_step(stderrs)  # both hosts, the same step
    assert PREEMPT_AFTER <= stopped < 12 and (stage / "checkpoints" / str(stopped)).exists()
    assert not (stage / "DONE").exists()
    print(
        f"two processes: SIGTERM to one after step {PREEMPT_AFTER}, both saved step {stopped} "
        f"and exited {seconds:.2f}s after the signal"
    )

    processes = start_two(tmp_path / "two")
    # Meanwhile, the same run in this process (8 devices).
    configure(tmp_path / "one", *BINDINGS)
    trainer.run_stages(*trainer.configs_from_gin())
    for process in processes:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-5000:]
        assert f"resuming from checkpoint step {stopped}" in stderr

    one, two = read_metrics(str(tmp_path / "one" / "stage1")), read_metrics(str(tmp_path / "two" / "stage1"))
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, 13))
    for a, b in zip(one, two):
        np.testing.assert_allclose(b["loss"], a["loss"], rtol=0, atol=1e-5)
        np.testing.assert_allclose(b["grad_norm"], a["grad_norm"], rtol=0, atol=1e-5)
        assert b["data_position"] == a["data_position"]  # process 0's position = the global batch's
    assert (tmp_path / "two" / "stage1" / "DONE").exists()
    checkpoints = tmp_path / "two" / "stage1" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["10", "12"]  # keep=2
    saved = json.loads((checkpoints / "12" / "data_iterator" / "metadata").read_text())
    assert (
        saved["process_count"] == 2 and saved["per_process"][0] == saved["per_process"][1] == two[-1]["data_position"]
    )
