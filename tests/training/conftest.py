"""Trainer test fixtures; the helpers live in trainer_testlib.py (a unique module name, so
that tests importing them never pick up another directory's conftest)."""

import gin
import pytest

import trainer_testlib  # noqa: F401  sets up the shared compilation cache before any test compiles


@pytest.fixture
def clean_gin():
    """Gin state never leaks between tests."""
    gin.clear_config()
    yield
    gin.clear_config()
