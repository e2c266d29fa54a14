"""A real `python -m orca_jax.augment run` killed mid-run (SIGKILL, SIGTERM, SIGKILL), then finished."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.durable import iter_rows
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import iter_entries
from orca_jax.testing.fake_teacher import FaultConfig, expected_digest
from orca_jax.testing.synthetic_flan import write_synthetic_flan

pytestmark = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[2]


def _finished_lines(layout: OutputLayout) -> int:
    return sum(p.read_bytes().count(b"\n") for p in layout.row_files())


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _kill_when(
    cmd: list[str], layout: OutputLayout, at_least: int, sig: int = signal.SIGKILL, timeout_s: float = 60.0
) -> tuple[str, str]:
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    try:
        while _finished_lines(layout) < at_least:
            assert proc.poll() is None, f"run ended before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "run made no progress"
            time.sleep(0.01)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), err.decode()[-2000:]
    return out.decode(), err.decode()


def test_sigkill_and_restart_lose_and_duplicate_nothing(tmp_path, fake_teacher, api_key, api_key_env):
    source = write_synthetic_flan(tmp_path / "flan.jsonl")
    layout = OutputLayout.at(tmp_path / "out")
    total = sample_manifest([source], layout, SamplingSpec(size_factor=1.0)).rows
    server = fake_teacher(
        latency_s=0.02, faults=FaultConfig(rate_500=0.05, rate_drop=0.03, rate_429=0.03, retry_after="0.02")
    )
    cmd = [
        sys.executable,
        "-m",
        "orca_jax.augment",
        "run",
        "--out-dir",
        str(layout.root),
        "--base-url",
        server.base_url,
        "--model",
        "fake-teacher",
        "--api-key-env",
        api_key_env,
        "--concurrency",
        "16",
        "--shard-rows",
        "100",
        "--flush-interval",
        "0.02",
        "--backoff-base",
        "0.01",
        "--timeout",
        "5",
        "--progress-interval",
        "0.2",
    ]
    logs = []
    logs += _kill_when(cmd, layout, at_least=150)
    first = _finished_lines(layout)
    assert 150 <= first < total
    with open(layout.data_shards()[-1], "ab") as handle:  # as if the kill had cut a write
        handle.write(b'{"id": "t0.17", "system_prompt": "", "question": "half a li')
    logs += _kill_when(cmd, layout, at_least=first + 150, sig=signal.SIGTERM)  # graceful stop: exit 130
    assert "interrupted" in logs[-1]
    second = _finished_lines(layout)
    logs += _kill_when(cmd, layout, at_least=second + 150)
    assert _finished_lines(layout) < total
    assert len({p.name.split("-")[1] for p in layout.data_shards()}) >= 2  # each run writes its own shards

    done = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, timeout=120)
    logs += [done.stdout.decode(), done.stderr.decode()]
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    entries = {e.id: e for e in iter_entries(layout)}
    rows = [row for path in layout.row_files() for row in iter_rows(path)]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == total and set(ids) == set(entries)
    assert not layout.failures.exists()
    for row in rows:
        entry = entries[row["id"]]
        assert row["response"].startswith(f"[{expected_digest(entry.system_prompt, entry.question)}]")
    for path in layout.row_files():  # every line of every file is valid JSON again
        assert path.read_bytes().endswith(b"\n")
    assert "progress:" in logs[1] and f"{total}/{total}" not in logs[1]  # the first run really was cut short
    assert "sampled 1060: rows 1060, kept apart 0, failed 0, pending 0  (complete)" in logs[-2]

    secret = api_key.encode()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
    assert all(api_key not in text for text in logs)
