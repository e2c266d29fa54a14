"""Sampling: the paper's quotas (scaled), Algorithm 1, system messages, manifest, subset."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from orca_jax.augment.sampling.flan_input import build_index
from orca_jax.augment.sampling.message_choice import is_multiple_choice
from orca_jax.augment.sampling.quotas import (
    FLAN5M_QUOTAS,
    resolve_quotas,
    stratified_counts,
    stratified_sample,
    subset_size,
)
from orca_jax.augment.sampling.sample import SamplingSpec, sample_manifest
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import ManifestError, has_manifest, iter_entries, load_meta, write_subset
from orca_jax.augment.store.schema import parse_id
from orca_jax.data.system_messages import ALLOWED_SYSTEM_MESSAGE_IDS, SYSTEM_MESSAGES, allowed_system_message_ids
from orca_jax.testing.synthetic_flan import SKIPPED_ROWS, write_synthetic_flan


def test_paper_quotas_table():
    assert FLAN5M_QUOTAS == {"cot": None, "niv2": 440_000, "flan2021": 2_500_000, "t0": 2_000_000}
    plenty = {"cot": 150_000, "niv2": 5_000_000, "flan2021": 28_900_000, "t0": 85_700_000}
    assert resolve_quotas(plenty, 1.0) == {"cot": 150_000, "niv2": 440_000, "t0": 2_000_000, "flan2021": 2_500_000}
    assert resolve_quotas(plenty, 0.01) == {"cot": 1_500, "niv2": 4_400, "t0": 20_000, "flan2021": 25_000}
    assert subset_size(1.0) == 1_000_000 and subset_size(0.001) == 1_000


def test_quotas_capped_by_available_and_overridable():
    quotas = resolve_quotas({"cot": 10, "niv2": 5, "t0": 0, "flan2021": 7}, 1.0, {"flan2021": 3})
    assert quotas == {"cot": 10, "niv2": 5, "t0": 0, "flan2021": 3}
    with pytest.raises(ValueError):
        resolve_quotas({}, 0.0)
    with pytest.raises(ValueError):
        resolve_quotas({}, 1.0, {"dialog": 3})


def test_algorithm1_takes_small_tasks_whole_and_balances_the_rest():
    sizes = np.array([1, 3, 50, 100, 400])
    counts = stratified_counts(sizes, 100, np.random.default_rng(0))
    assert counts.sum() == 100 and (counts <= sizes).all()
    assert counts[0] == 1 and counts[1] == 3  # exhausted early
    assert all(abs(int(c) - 32) <= 12 for c in counts[2:])  # ~96/3 each, not proportional (~7/14/55)
    assert (stratified_counts(sizes, 10_000, np.random.default_rng(0)) == sizes).all()  # data exhausted


def test_algorithm1_mean_counts_match_uniform_task_choice():
    sizes = np.array([2, 30, 30, 100])
    mean = np.mean([stratified_counts(sizes, 40, np.random.default_rng(s)) for s in range(300)], axis=0)
    assert mean[0] > 1.9 and abs(mean[1] - mean[3]) < 1.0 and abs(mean.sum() - 40) < 1e-9


def test_stratified_sample_without_replacement():
    tasks = np.repeat(np.arange(5), [1, 3, 50, 100, 400])
    rows = stratified_sample(tasks, 100, np.random.default_rng(1))
    assert rows.size == 100 == np.unique(rows).size


def _sample(tmp_path: Path, source: Path, name: str, **spec) -> OutputLayout:
    layout = OutputLayout.at(tmp_path / name)
    sample_manifest([source], layout, SamplingSpec(**spec))
    return layout


def test_scaled_quotas_on_synthetic_flan(tmp_path, flan_jsonl):
    layout = _sample(tmp_path, flan_jsonl, "out", size_factor=1e-4)
    meta = load_meta(layout)
    # 440K, 2M, 2.5M scaled by 1e-4; CoT "all" scaled: round(60 * 1e-4) = 0.
    assert meta.counts == {"cot": 0, "niv2": 44, "t0": 200, "flan2021": 250}
    entries = list(iter_entries(layout))
    assert Counter(e.collection for e in entries) == Counter({"niv2": 44, "t0": 200, "flan2021": 250})
    assert meta.sampling["skipped_input_rows"] == {
        "collection:dialog": SKIPPED_ROWS,
        "few_shot_template": SKIPPED_ROWS,
        "t0_bigbench": SKIPPED_ROWS,
    }
    assert not any(e.task == "bigbench_logic_grid" or e.source_id.startswith(("dialog", "fs-", "bb-")) for e in entries)


def test_cot_taken_whole_at_full_size(tmp_path, flan_jsonl):
    layout = _sample(tmp_path, flan_jsonl, "out", size_factor=1.0)
    meta = load_meta(layout)
    assert meta.counts == meta.sampling["available"] == {"cot": 60, "niv2": 300, "t0": 300, "flan2021": 400}


def test_ids_sources_and_texts_are_consistent(tmp_path, flan_jsonl):
    layout = _sample(tmp_path, flan_jsonl, "out", size_factor=1e-4)
    source = {json.loads(line)["id"]: json.loads(line) for line in flan_jsonl.read_text().splitlines()}
    numbers = defaultdict(list)
    for entry in iter_entries(layout):
        prefix, n = parse_id(entry.id)
        numbers[prefix].append(n)
        raw = source[entry.source_id]
        assert entry.question == raw["inputs"] and entry.targets == raw["targets"] and entry.task == raw["task"]
        assert {"cot": "cot", "niv2": "niv", "t0": "t0", "flan2021": "flan"}[entry.collection] == prefix
    assert all(sorted(ns) == list(range(len(ns))) for ns in numbers.values())  # <prefix>.0 .. n-1, no gaps
    assert len({e.source_id for e in iter_entries(layout)}) == load_meta(layout).rows  # no query twice


def test_sampling_is_deterministic_and_format_independent(tmp_path, flan_jsonl):
    parquet = write_synthetic_flan(tmp_path / "flan.parquet", fmt="parquet")
    a = _sample(tmp_path, flan_jsonl, "a", size_factor=1e-4, seed=7)
    b = _sample(tmp_path, flan_jsonl, "b", size_factor=1e-4, seed=7)
    c = _sample(tmp_path, parquet, "c", size_factor=1e-4, seed=7)
    d = _sample(tmp_path, flan_jsonl, "d", size_factor=1e-4, seed=8)
    assert a.manifest.read_bytes() == b.manifest.read_bytes() == c.manifest.read_bytes()
    assert a.manifest.read_bytes() != d.manifest.read_bytes()


def test_index_holds_locations_not_texts(flan_jsonl):
    index = build_index([flan_jsonl])
    assert len(index) == 1060
    for array in (index.collection, index.task, index.file, index.location):
        assert array.dtype.kind == "i"


def test_system_messages_follow_the_paper(tmp_path, flan_jsonl):
    entries = list(iter_entries(_sample(tmp_path, flan_jsonl, "out", size_factor=1.0)))
    seen: dict[tuple[str, bool], set[int]] = defaultdict(set)
    for e in entries:
        mc = is_multiple_choice(e.question)
        assert e.multiple_choice == mc
        assert e.system_message_id in allowed_system_message_ids(e.collection, mc)
        assert e.system_prompt == SYSTEM_MESSAGES[e.system_message_id]
        seen[(e.collection, mc and e.collection == "flan2021")].add(e.system_message_id)
    assert seen[("cot", False)] == {6, 11, 16}
    assert seen[("niv2", False)] == {1, 2, 5, 7, 9, 12, 13, 14, 15}
    assert seen[("t0", False)] == {1, 2, 3, 5, 7}
    assert seen[("flan2021", False)] == {3, 4, 7}  # 8 and 10 only for multiple choice
    assert seen[("flan2021", True)] == {3, 4, 7, 8, 10}
    assert set(ALLOWED_SYSTEM_MESSAGE_IDS) == {"cot", "niv2", "t0", "flan2021"}
    assert SYSTEM_MESSAGES[1] == "" and len(SYSTEM_MESSAGES) == 16


@pytest.mark.parametrize(
    "text",
    [
        "Is it good?\nOPTIONS:\n- yes\n- no",
        "Premise: x\nOptions:\n- a\n- b",
        "Which one? (A) red (B) blue",
        "Choose your answer from:\n[a]. yes\n[b]. no",
        "Select from the following.\n +yes\n +no",
        "Q: pick\nA. cat\nB. dog",
        "Pick one: cat or dog",
        "Available choices:\n 1). yes\n 2). no",
    ],
)
def test_multiple_choice_detected(text):
    assert is_multiple_choice(text)


@pytest.mark.parametrize(
    "text",
    [
        "Translate to French: good morning",
        "Write a story about options for lunch.",
        "The answer (a) is wrong.",
        "He said: choose wisely.",
        "Definition: rewrite the input.\n\nInput: a sentence\n\nOutput:",
    ],
)
def test_not_multiple_choice(text):
    assert not is_multiple_choice(text)


def test_manifest_is_written_once(tmp_path, flan_jsonl):
    layout = _sample(tmp_path, flan_jsonl, "out", size_factor=1e-4)
    before = layout.manifest.read_bytes()
    with pytest.raises(ManifestError):
        sample_manifest([flan_jsonl], layout, SamplingSpec(size_factor=1e-4, seed=3))
    assert layout.manifest.read_bytes() == before
    assert not list(layout.root.glob(".*tmp")) and not (layout.root / ".manifest.scratch").exists()


def test_manifest_without_meta_is_not_committed(tmp_path, flan_jsonl):
    layout = _sample(tmp_path, flan_jsonl, "out", size_factor=1e-4)
    layout.manifest_meta.unlink()  # as if sampling crashed before its commit point
    assert not has_manifest(layout)
    meta = sample_manifest([flan_jsonl], layout, SamplingSpec(size_factor=1e-4))
    assert has_manifest(layout) and meta.rows == 494
    layout.manifest.write_bytes(layout.manifest.read_bytes()[:-10])  # damaged manifest
    with pytest.raises(ManifestError):
        load_meta(layout)


def test_subset_keeps_ids_and_system_messages(tmp_path, flan_jsonl):
    parent = _sample(tmp_path, flan_jsonl, "flan5m", size_factor=1.0)
    child = OutputLayout.at(tmp_path / "flan1m")
    meta = write_subset(parent, child, size=200, seed=1)
    parent_entries = {e.id: e for e in iter_entries(parent)}
    child_entries = list(iter_entries(child))
    assert meta.rows == len(child_entries) == len({e.id for e in child_entries}) == 200
    assert all(parent_entries[e.id] == e for e in child_entries)
    assert meta.id_space == load_meta(parent).id_space
    again = OutputLayout.at(tmp_path / "again")
    write_subset(parent, again, size=200, seed=1)
    assert again.manifest.read_bytes() == child.manifest.read_bytes()
    with pytest.raises(ManifestError):
        write_subset(parent, OutputLayout.at(tmp_path / "big"), size=10_000)
