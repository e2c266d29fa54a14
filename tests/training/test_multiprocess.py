"""Multi-host: 2 processes x 4 CPU devices (gloo collectives, jax.distributed) train like
1 process x 8 devices: each host feeds its share of the global batch."""

import json
import socket
import subprocess

import numpy as np

from orca_jax.training import trainer
from orca_jax.training.metrics import read_metrics

from trainer_testlib import REPO, subprocess_env, train_command
from test_trainer import configure

BINDINGS = ("run_stages.stages = ('stage1',)", "train_stage.log_data_position = True")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one(tmp_path, clean_gin):
    address = f"127.0.0.1:{free_port()}"
    env = subprocess_env(XLA_FLAGS="--xla_force_host_platform_device_count=4")
    processes = [
        subprocess.Popen(
            train_command(tmp_path / "two", *BINDINGS, extra_flags=(
                f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}",
                "--cpu_collectives=gloo")),
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    # Meanwhile, the same run in this process (8 devices).
    configure(tmp_path / "one", *BINDINGS)
    trainer.run_stages()
    for process in processes:
        _, stderr = process.communicate(timeout=240)
        assert process.returncode == 0, stderr[-5000:]

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
    assert saved["process_count"] == 2 and saved["per_process"][0] == saved["per_process"][1] == two[-1]["data_position"]
