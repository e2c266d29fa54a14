"""benchmarks/mini_orca_one_family.py: one family's rows, answered by the chosen teacher, as a task."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from orca_jax.data import registry
from orca_jax.demo import dataset, families

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "mini_orca_one_family.py"


@pytest.fixture(scope="module")
def one_family():
    spec = importlib.util.spec_from_file_location("mini_orca_one_family", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("teacher", ["expert", "answer_only"])
def test_rows_are_one_family_answered_by_the_teacher(one_family, tmp_path, teacher):
    name = one_family.register_family_task("web_of_lies", teacher, str(tmp_path / teacher))
    spec = registry.get_task(name)
    rows = pq.read_table(spec.splits["train"][0]).to_pylist()
    assert len(rows) == dataset.TRAIN_PER_KIND  # the demo's stage-one queries of this family
    for r in rows:
        assert "tell the truth?" in r["question"], r["question"]
        answer = families.extract_answer(r["response"]) if teacher == "expert" else r["response"]
        assert answer in ("Yes", "No")
        assert ("\n" in r["response"]) == (teacher == "expert")
    assert pq.read_table(spec.splits["validation"][0]).num_rows == dataset.VALIDATION_PER_KIND


def test_steps_must_be_a_multiple_of_eval_every(one_family):
    with pytest.raises(SystemExit):
        one_family.main(["--family=web_of_lies", "--steps=10", "--eval_every=4"])
