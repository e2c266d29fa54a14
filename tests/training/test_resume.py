"""Preemption: a trainer killed with SIGKILL and restarted reproduces the uninterrupted run
step for step (bitwise on CPU), consuming every example exactly once; a save that never
completed (an orbax tmp dir) is ignored; metrics.jsonl keeps one record per step. A trainer
sent SIGTERM saves at the step it is on, exits 0, and its restart redoes no step."""

import json
import re
import shutil
import signal
import subprocess
import time

import pytest

from orca_jax.training.batches import SyntheticBatches
from orca_jax.training.metrics import METRICS_FILE, read_metrics

from trainer_testlib import REPO, run_train, subprocess_env, train_command

pytestmark = pytest.mark.multiprocess

STEPS = 12  # STAGE1_TRAIN_STEPS in trainer_testlib.TINY_BINDINGS
BINDINGS = (
    "RunConfig.stages = ('stage1',)",
    "CheckpointConfig.save_every_steps = 3",
    "StageConfig.log_data_position = True",
    "SyntheticBatches.delay_s = 0.1",
)
COMPARED = ("loss", "grad_norm", "learning_rate", "data_position")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's metrics, by step."""
    model_dir = tmp_path_factory.mktemp("reference")
    run_train(model_dir, *BINDINGS)
    records = read_metrics(str(model_dir / "stage1"))
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    return {r["step"]: r for r in records}


def complete_steps(stage):
    return sorted(int(p.name) for p in (stage / "checkpoints").iterdir() if p.name.isdigit())


def signal_after_step(model_dir, step, sig, *bindings, timeout=180):
    """Start the trainer, send `sig` once `step` is in its metrics; (returncode, stderr,
    seconds from the signal to the process's exit, the last step recorded when signalled)."""
    process = subprocess.Popen(
        train_command(model_dir, *BINDINGS, *bindings),
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline, sent, seen = time.time() + timeout, None, None
    while time.time() < deadline and process.poll() is None:
        steps = [r["step"] for r in read_metrics(str(model_dir / "stage1"))]
        if steps and steps[-1] >= step:
            sent, seen = time.perf_counter(), steps[-1]
            process.send_signal(sig)
            break
        time.sleep(0.02)
    _, stderr = process.communicate(timeout=60)
    assert sent is not None, stderr[-4000:]
    return process.returncode, stderr, time.perf_counter() - sent, seen


def plant_incomplete_save(stage, step):
    """What a kill during an async save leaves: a tmp dir for a later step, without commit markers."""
    source = stage / "checkpoints" / str(complete_steps(stage)[-1])
    tmp = stage / "checkpoints" / f"{step}.orbax-checkpoint-tmp-1795680000"
    shutil.copytree(source, tmp)
    for marker in tmp.rglob("commit_success.txt"):
        marker.unlink()
    (tmp / "params" / "manifest.ocdbt").unlink()
    return tmp


def assert_matches(records, reference):
    """Exactly one record per step 1..STEPS, each bitwise equal to the uninterrupted run's."""
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    for record in records:
        for key in COMPARED:
            assert record[key] == reference[record["step"]][key], (record["step"], key)  # floats survive JSON


def test_sigkill_and_restart_reproduce_the_uninterrupted_run(tmp_path, reference):
    interrupted = tmp_path / "interrupted"
    code, stderr, _, _ = signal_after_step(interrupted, 7, signal.SIGKILL)
    assert code == -signal.SIGKILL, stderr[-4000:]
    stage = interrupted / "stage1"
    assert not (stage / "DONE").exists()
    resume_from = complete_steps(stage)[-1]
    assert resume_from in (3, 6)
    killed = read_metrics(str(stage))
    assert killed[-1]["step"] > resume_from  # steps the restart redoes
    for record in killed:  # the killed run's steps agree with the reference
        assert record["loss"] == reference[record["step"]]["loss"]
    tmp = plant_incomplete_save(stage, resume_from + 3)
    with (stage / METRICS_FILE).open("a") as f:
        f.write('{"step": 99, "loss": 1.')  # a line torn by a kill mid-write

    result = run_train(interrupted, *BINDINGS)
    assert f"resuming from checkpoint step {resume_from}" in result.stderr  # the last complete save
    assert not tmp.exists() and complete_steps(stage)[-1] == STEPS
    assert json.loads((stage / "DONE").read_text()) == {"final_step": STEPS}
    records = read_metrics(str(stage))
    assert_matches(records, reference)  # one record per step: the redone ones replaced, the torn one gone
    assert len((stage / METRICS_FILE).read_text().splitlines()) == STEPS

    # Each example consumed exactly once, in the source's order: none repeated, none skipped.
    source = SyntheticBatches(64, 8, seed=0)
    positions = [{"epoch": 0, "cursor": 0, "seed": 0}] + [r["data_position"] for r in records]
    consumed = [i for a, b in zip(positions, positions[1:]) for i in source.example_ids(a, b)]
    assert consumed == list(source.order(0)[: len(consumed)]) and len(set(consumed)) == len(consumed) > STEPS


def test_sigterm_saves_the_current_step_and_restart_continues(tmp_path, reference):
    """SIGTERM (a spot VM's preemption notice): checkpoint at the step in flight, exit 0."""
    interrupted = tmp_path / "interrupted"
    no_periodic_saves = "CheckpointConfig.save_every_steps = 1000"  # the only checkpoint: the preemption's
    code, stderr, seconds, seen = signal_after_step(interrupted, 5, signal.SIGTERM, no_periodic_saves)
    assert code == 0, stderr[-4000:]
    stage = interrupted / "stage1"
    stopped = read_metrics(str(stage))[-1]["step"]
    assert "preempted: saved a checkpoint at step" in stderr and f"at step {stopped} " in stderr
    assert seen <= stopped <= seen + 2 < STEPS  # the step in flight when the signal came (or the next)
    assert complete_steps(stage) == [stopped] and not (stage / "DONE").exists()
    saved_in = re.search(r"checkpoint at step \d+ saved in ([0-9.]+)s", stderr).group(1)
    print(
        f"SIGTERM after step {seen}: checkpoint at step {stopped} saved in {saved_in}s, "
        f"process exited {seconds:.2f}s after the signal"
    )
    assert seconds < 30  # a spot VM's grace period

    result = run_train(interrupted, *BINDINGS, no_periodic_saves)
    assert f"resuming from checkpoint step {stopped}" in result.stderr  # no step redone
    assert json.loads((stage / "DONE").read_text()) == {"final_step": STEPS}
    assert_matches(read_metrics(str(stage)), reference)
