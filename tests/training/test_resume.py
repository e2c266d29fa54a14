"""Preemption: a trainer killed with SIGKILL and restarted reproduces the uninterrupted run
step for step (bitwise on CPU), consuming every example exactly once; a save that never
completed (an orbax tmp dir) is ignored."""

import json
import shutil
import signal
import subprocess
import time

from orca_jax.training.batches import SyntheticBatches
from orca_jax.training.metrics import read_metrics

from trainer_testlib import REPO, run_train, subprocess_env, train_command

STEPS = 12  # STAGE1_TRAIN_STEPS in trainer_testlib.TINY_BINDINGS
BINDINGS = ("run_stages.stages = ('stage1',)",
            "CheckpointConfig.save_every_steps = 3", "train_stage.log_data_position = True",
            "SyntheticBatches.delay_s = 0.1")


def by_step(records):
    """The last record of each step (a restarted run appends the steps it redoes)."""
    return {r["step"]: r for r in records}


def complete_steps(stage):
    return sorted(int(p.name) for p in (stage / "checkpoints").iterdir() if p.name.isdigit())


def kill_after_step(model_dir, step, timeout=180):
    """Start the trainer and SIGKILL it once `step` is in its metrics."""
    process = subprocess.Popen(train_command(model_dir, *BINDINGS), cwd=REPO, env=subprocess_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if any(r["step"] >= step for r in read_metrics(str(model_dir / "stage1"))):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, stderr[-4000:]


def plant_incomplete_save(stage, step):
    """What a kill during an async save leaves: a tmp dir for a later step, without commit markers."""
    source = stage / "checkpoints" / str(complete_steps(stage)[-1])
    tmp = stage / "checkpoints" / f"{step}.orbax-checkpoint-tmp-1795680000"
    shutil.copytree(source, tmp)
    for marker in tmp.rglob("commit_success.txt"):
        marker.unlink()
    (tmp / "params" / "manifest.ocdbt").unlink()
    return tmp


def test_sigkill_and_restart_reproduce_the_uninterrupted_run(tmp_path):
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    run_train(reference, *BINDINGS)

    kill_after_step(interrupted, 7)
    stage = interrupted / "stage1"
    assert not (stage / "DONE").exists()
    resume_from = complete_steps(stage)[-1]
    assert resume_from in (3, 6)
    tmp = plant_incomplete_save(stage, resume_from + 3)

    run_train(interrupted, *BINDINGS)
    records = read_metrics(str(stage))
    restart = next(i for i in range(1, len(records)) if records[i]["step"] <= records[i - 1]["step"])
    assert records[restart]["step"] == resume_from + 1  # resumed from the last complete save
    assert not tmp.exists() and complete_steps(stage)[-1] == STEPS
    assert json.loads((stage / "DONE").read_text()) == {"final_step": STEPS}

    expected, got = by_step(read_metrics(str(reference / "stage1"))), by_step(records)
    assert sorted(got) == sorted(expected) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        for key in ("loss", "grad_norm", "learning_rate", "data_position"):
            assert got[step][key] == expected[step][key], (step, key)  # bitwise: floats survive JSON exactly
    for record in records[:restart]:  # the killed run's steps past its checkpoint agree too
        assert record["loss"] == expected[record["step"]]["loss"]

    # Each example consumed exactly once, in the source's order: none repeated, none skipped.
    source = SyntheticBatches(64, 8, seed=0)
    positions = [{"epoch": 0, "cursor": 0, "seed": 0}] + [got[s]["data_position"] for s in range(1, STEPS + 1)]
    consumed = [i for a, b in zip(positions, positions[1:]) for i in source.example_ids(a, b)]
    assert consumed == list(source.order(0)[:len(consumed)]) and len(set(consumed)) == len(consumed) > STEPS
