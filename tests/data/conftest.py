"""Fixtures for the data tests (helpers live in orca_data_testlib.py)."""

from __future__ import annotations

import pytest

from orca_jax.data.tokenizer import Tokenizer
from orca_jax.demo import files as demo_files


@pytest.fixture(scope="session")
def demo_tokenizer() -> Tokenizer:
    return Tokenizer(demo_files.DEMO_TOKENIZER_PATH)
