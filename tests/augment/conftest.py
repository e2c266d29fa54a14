"""Shared fixtures for the augmentation tests: synthetic FLAN input, fake teacher, API key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orca_jax.augment.teacher.client import TeacherConfig
from orca_jax.testing.fake_teacher import FakeTeacher, FakeTeacherConfig, FaultConfig
from orca_jax.testing.synthetic_flan import write_synthetic_flan

API_KEY = "sk-test-Zq8vL2nXw4Rt7YpK"
API_KEY_ENV = "ORCA_TEST_TEACHER_KEY"


@pytest.fixture
def api_key() -> str:
    """The key the fake teacher accepts (a value that must never appear in any output)."""
    return API_KEY


@pytest.fixture
def api_key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the test key into the environment; returns the variable's name."""
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    return API_KEY_ENV


@pytest.fixture
def flan_jsonl(tmp_path: Path) -> Path:
    return write_synthetic_flan(tmp_path / "flan" / "flan.jsonl")


@pytest.fixture
def fake_teacher() -> Iterator[Callable[..., FakeTeacher]]:
    """Factory: `fake_teacher(latency_s=..., faults=FaultConfig(...))` -> a started server."""
    servers: list[FakeTeacher] = []

    def start(**kwargs) -> FakeTeacher:
        kwargs.setdefault("api_key", API_KEY)
        server = FakeTeacher(FakeTeacherConfig(**kwargs)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _fast_teacher_config(base_url: str, **overrides) -> TeacherConfig:
    """Teacher settings with test-sized timeouts and backoff."""
    settings = dict(
        base_url=base_url,
        model="fake-teacher",
        api_key_env=API_KEY_ENV,
        timeout_s=0.4,
        connect_timeout_s=0.4,
        concurrency=16,
        max_retries=4,
        max_rate_limit_retries=6,
        max_malformed_retries=2,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        max_tokens=256,
    )
    settings.update(overrides)
    return TeacherConfig(**settings)


@pytest.fixture
def teacher_config() -> Callable[..., TeacherConfig]:
    """Factory: `teacher_config(base_url, **overrides)` with test-sized timeouts and backoff."""
    return _fast_teacher_config


@pytest.fixture
def all_faults() -> FaultConfig:
    """Every fault kind, at most two per query (so every query succeeds within the retries)."""
    return FaultConfig(
        rate_429=0.08,
        rate_500=0.08,
        rate_timeout=0.04,
        rate_drop=0.06,
        rate_malformed=0.04,
        max_faults_per_query=2,
        retry_after="0.03",
        timeout_sleep_s=1.0,
    )
