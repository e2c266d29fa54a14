"""The Orca tasks: registration, their SeqIO face (same examples as the Python path), rates, data location."""

from __future__ import annotations

import os

import gin
import numpy as np
import pytest

seqio = pytest.importorskip("seqio")

import tasks  # noqa: E402, F401
from orca_jax.data import pipeline, registry, sources  # noqa: E402
from orca_jax.data.pipeline import make_batch_iterator  # noqa: E402
from orca_jax.data.preprocessors import ExamplePreprocessor  # noqa: E402
from orca_jax.data.rows import validate_row  # noqa: E402
from orca_jax.demo import files as demo_files  # noqa: E402
from tasks import seqio_face  # noqa: E402

from orca_data_testlib import make_rows  # noqa: E402

pytestmark = pytest.mark.seqio

REAL_TASKS = [f"orca_{t}_{c}" for t in ("chatgpt", "gpt4") for c in ("cot", "niv2", "t0", "flan2021")]
REAL_MIXTURES = ["orca_stage1_flan5m_chatgpt", "orca_stage2_flan1m_gpt4"]
DEMO = ["orca_demo_stage1_assistant", "orca_demo_stage2_expert", "orca_demo_answer_only"]


def test_import_tasks_registers_everything():
    for name in REAL_TASKS + DEMO:
        assert isinstance(seqio.get_mixture_or_task(name), seqio.Task), name
        assert isinstance(registry.get_mixture_or_task(name), registry.TaskSpec)
    for name in REAL_MIXTURES + ["orca_demo_stage1_mixture", "orca_demo_stage2_mixture"]:
        assert isinstance(seqio.get_mixture_or_task(name), seqio.Mixture), name
    mixture = seqio.get_mixture_or_task("orca_stage2_flan1m_gpt4")
    assert sorted(t.name for t in mixture.tasks) == sorted(n for n in REAL_TASKS if "gpt4" in n)
    assert registry.get_task("orca_gpt4_niv2").teacher == "gpt-4"
    assert registry.get_task("orca_chatgpt_t0").collections == ("t0",)


def test_seqio_task_matches_the_python_pipeline(demo_tokenizer):
    task = seqio.get_mixture_or_task("orca_demo_stage2_expert")
    ds = task.get_dataset(sequence_length=None, split="validation", shuffle=False)
    spec = registry.get_task("orca_demo_stage2_expert")
    rows = [
        validate_row(r, teacher=spec.teacher)
        for u in sources.list_units(spec.files("validation"))
        for r in sources.iter_unit_rows(u)
    ]
    pre = ExamplePreprocessor(demo_tokenizer, sequence_length=4096)
    got = list(ds.as_numpy_iterator())
    assert len(got) == len(rows) == 120
    for ex, row in zip(got, rows):
        assert ex["id"].decode() == row.id
        assert ex["inputs"][0] == demo_tokenizer.bos_id and ex["targets"][-1] == demo_tokenizer.eos_id
        want = pre(row)
        assert np.concatenate([ex["inputs"], ex["targets"]]).tolist() == want.tokens.tolist()
        assert len(ex["inputs"]) == want.prompt_length


def test_seqio_face_renders_with_the_gin_template():
    task = seqio.get_mixture_or_task("orca_demo_answer_only")
    try:
        gin.parse_config("render_prompt.template = 'instruct'\nrender_prompt.omit_empty_system = False")
        ex = next(task.get_dataset(sequence_length=None, split="validation", shuffle=False).as_numpy_iterator())
    finally:
        gin.clear_config()
    assert ex["inputs_pretokenized"].decode().startswith("### System:\n")
    vocab = task.output_features["inputs"].vocabulary
    assert vocab.decode(ex["inputs"].tolist()) == ex["inputs_pretokenized"].decode()


def test_mixing_rates_paper_or_num_examples():
    mixture = registry.get_mixture_or_task("orca_demo_stage1_mixture")
    paper = pipeline.mixture_rates(mixture)
    assert paper == {
        "orca_demo_assistant_cot": 150_000.0,
        "orca_demo_assistant_niv2": 440_000.0,
        "orca_demo_assistant_t0": 2_000_000.0,
        "orca_demo_assistant_flan2021": 2_500_000.0,
    }
    counts = pipeline.mixture_rates(mixture, mode="num_examples")
    assert sum(counts.values()) == 6000
    assert counts["orca_demo_assistant_niv2"] == 1000  # One family plays NIV2.
    try:
        gin.parse_config("mixing_rate_mode.mode = 'num_examples'")
        assert (
            seqio.get_mixture_or_task("orca_demo_stage1_mixture").get_rate(
                seqio.get_mixture_or_task("orca_demo_assistant_cot")
            )
            == counts["orca_demo_assistant_cot"]
        )
    finally:
        gin.clear_config()
    assert (
        seqio.get_mixture_or_task("orca_demo_stage1_mixture").get_rate(
            seqio.get_mixture_or_task("orca_demo_assistant_cot")
        )
        == 150_000.0
    )


@pytest.fixture
def fake_openorca(tmp_path, monkeypatch):
    """An ORCA_DATA_DIR with OpenOrca-named files (GPT-4 as JSONL shards) and a tokenizer."""
    sources.write_rows(str(tmp_path / "3_5M-GPT3_5-Augmented.parquet"), make_rows(80))
    sources.write_rows(str(tmp_path / "1M-GPT4-Augmented-00000-of-00002.parquet"), make_rows(40, 100))
    sources.write_rows(str(tmp_path / "1M-GPT4-Augmented-00001-of-00002.parquet"), make_rows(40, 140))
    os.symlink(demo_files.DEMO_TOKENIZER_PATH, tmp_path / "tokenizer.model")
    monkeypatch.setenv("ORCA_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("ORCA_TOKENIZER_PATH", raising=False)
    return tmp_path


def test_real_tasks_read_from_the_data_dir(fake_openorca):
    it = make_batch_iterator("orca_stage2_flan1m_gpt4", 128, 4, num_epochs=1, process_index=0, process_count=1)
    list(it)
    stats = it.stats()
    assert stats["examples_packed"] == 80
    assert {k: v for k, v in stats.items() if k.startswith("examples/")} == {
        f"examples/orca_gpt4_{c}": 20 for c in ("cot", "niv2", "t0", "flan2021")
    }
    assert stats["rows_other_collection"] == 3 * 80  # Each sub-collection task skips the others' rows.
    cot = seqio.get_mixture_or_task("orca_chatgpt_cot")
    ids = [ex["id"].decode() for ex in cot.get_dataset(None, "train", shuffle=False).as_numpy_iterator()]
    assert len(ids) == 20 and all(i.startswith("cot.") for i in ids)


def test_data_dir_and_patterns_from_gin(fake_openorca, tmp_path_factory):
    other = tmp_path_factory.mktemp("elsewhere")
    sources.write_rows(str(other / "gpt4.jsonl"), make_rows(8, 500))
    try:
        gin.parse_config(
            f"orca_data_dir.path = '{other}'\norca_tokenizer_path.path = '{demo_files.DEMO_TOKENIZER_PATH}'\n"
            "orca_teacher_patterns.gpt4 = ['{data_dir}/gpt4.jsonl']"
        )
        assert pipeline.data_locations().expand("{data_dir}/x") == f"{other}/x"
        it = make_batch_iterator("orca_gpt4_t0", 128, 2, num_epochs=1, process_index=0, process_count=1)
        list(it)
        assert it.stats()["examples_packed"] == 2
    finally:
        gin.clear_config()


def test_missing_data_dir_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ORCA_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="ORCA_DATA_DIR"):
        make_batch_iterator("orca_gpt4_cot", 128, 2, process_index=0, process_count=1)


def test_vocabulary_resolves_its_path_on_use(fake_openorca):
    vocab = seqio_face.TokenizerVocabulary("{tokenizer}")
    assert vocab.tokenizer.path == str(fake_openorca / "tokenizer.model")
    assert vocab.vocab_size == 1001 and vocab.bos_id == 1 and vocab.pad_id == 1000
