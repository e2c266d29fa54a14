"""The API key never appears in logs, rows, failure records, configs, reports or errors."""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from orca_jax.augment.teacher.client import TeacherClient, TeacherConfig
from orca_jax.augment.teacher.redaction import (
    RedactingFilter,
    Secret,
    describe_exception,
    format_exception_scrubbed,
    scrub,
)
from orca_jax.testing.fake_teacher import BAD_REQUEST_MARKER, LENGTH_MARKER, FaultConfig
from orca_jax.testing.synthetic_flan import write_synthetic_flan

REPO = Path(__file__).resolve().parents[2]


def test_secret_never_shows_itself(api_key):
    secret = Secret(api_key)
    assert api_key not in repr(secret) + str(secret) + f"{secret}" + f"{secret!r}" + f"{[secret]}"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    client = TeacherClient(TeacherConfig("http://h/v1", "m"), secret)
    assert api_key not in repr(client) + repr(client.config) + str(client.config.public_dict())


def test_scrub_masks_registered_values_and_token_shapes(api_key):
    Secret(api_key)
    text = f"Authorization: Bearer {api_key} url=https://user:pw@host/v1?api_key=abc&x=1 raw {api_key}"
    cleaned = scrub(text)
    assert api_key not in cleaned and "pw@" not in cleaned and "api_key=abc" not in cleaned and "x=1" in cleaned
    error = httpx.ConnectError(f"failed for https://host/v1?key={api_key}")
    assert api_key not in describe_exception(error)
    try:
        raise RuntimeError(f"boom {api_key}")
    except RuntimeError as exc:
        assert api_key not in format_exception_scrubbed(exc)


def test_logging_filter_scrubs_messages_args_and_tracebacks(api_key):
    Secret(api_key)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (f"Bearer {api_key}",), None)
    try:
        raise ValueError(api_key)
    except ValueError:
        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert api_key not in formatted and "sent" in formatted


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, "-m", "orca_jax.augment", *args], cwd=REPO, env=env, capture_output=True, timeout=120
    )


@pytest.mark.slow
def test_key_absent_from_every_file_and_stream(tmp_path, fake_teacher, api_key, api_key_env):
    source = write_synthetic_flan(tmp_path / "flan.jsonl", markers={BAD_REQUEST_MARKER: 20, LENGTH_MARKER: 10})
    # A careless server that echoes the Authorization header in its error bodies.
    server = fake_teacher(
        echo_auth_in_errors=True, faults=FaultConfig(rate_500=0.05, rate_drop=0.05, rate_429=0.05, retry_after="0.01")
    )
    out = str(tmp_path / "out")
    common = [
        "--base-url",
        server.base_url,
        "--model",
        "fake-teacher",
        "--api-key-env",
        api_key_env,
        "--backoff-base",
        "0.01",
        "--flush-interval",
        "0.05",
    ]
    results = [
        _cli(
            ["--log-level", "DEBUG", "run", "--out-dir", out, "--input", str(source), "--size-factor", "1e-4", *common]
        ),
        _cli(["--log-level", "DEBUG", "report", "--out-dir", out, "--json"]),
        _cli(["finalize", "--out-dir", out, "--allow-incomplete"]),
    ]
    # 3: the run finished, but the bad-request queries failed permanently (no --allow-failures)
    assert [r.returncode for r in results] == [3, 0, 0], results[0].stderr.decode()[-2000:]
    failures = (tmp_path / "out" / "failures.jsonl").read_text()
    assert "auth was" in failures and "***" in failures  # the echoed key was there, and masked

    # Wrong key: the server echoes it back in a 401; the error shown must be scrubbed.
    wrong = "sk-wrong-key-Hh3kL9pQ"
    env_backup = os.environ[api_key_env]
    os.environ[api_key_env] = wrong
    try:
        rejected = _cli(
            [
                "--debug",
                "run",
                "--out-dir",
                str(tmp_path / "rejected"),
                "--input",
                str(source),
                "--size-factor",
                "1e-4",
                *common,
            ]
        )
    finally:
        os.environ[api_key_env] = env_backup
    assert rejected.returncode == 1 and b"401" in rejected.stderr
    results.append(rejected)

    saved = (tmp_path / "out" / "run_config.json").read_text()
    assert f'"api_key_env": "{api_key_env}"' in saved
    for secret in (api_key.encode(), wrong.encode()):
        for path in tmp_path.rglob("*"):
            if path.is_file():
                assert secret not in path.read_bytes(), path
        for result in results:
            assert secret not in result.stdout and secret not in result.stderr
