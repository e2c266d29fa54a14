"""The bundled demo dataset: schema, teachers, system messages, subsets, held-out BBH set, sizes."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from orca_jax.data import demo_files, demo_problems, demo_tasks, prompts
from orca_jax.data.rows import collection_of_id
from orca_jax.data.system_messages import MULTIPLE_CHOICE_ONLY_IDS, SYSTEM_MESSAGES, allowed_system_message_ids


def _rows(dataset, split):
    return pq.read_table(demo_files.demo_file(dataset, split)).to_pylist()


@pytest.fixture(scope="module")
def shipped():
    return {f"{d}_{s}": _rows(d, s) for d in demo_files.DEMO_DATASETS for s in demo_files.DEMO_SPLITS}


def test_files_match_the_manifest():
    with open(demo_files.DEMO_MANIFEST_PATH) as f:
        manifest = json.load(f)
    for name, info in manifest["files"].items():
        path = os.path.join(demo_files.DEMO_DATA_DIR, name)
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == info["sha256"], name
        if name.endswith(".parquet"):
            assert pq.ParquetFile(path).metadata.num_rows == info["rows"]
    size = sum(
        os.path.getsize(p)
        for p in glob.glob(os.path.join(demo_files.DEMO_DATA_DIR, "**"), recursive=True)
        if os.path.isfile(p)
    )
    assert size < 3_000_000


def test_shipped_rows_are_what_the_generator_writes(shipped):
    assert demo_tasks.build_demo_rows(demo_tasks.DEFAULT_SEED) == shipped


def test_schema_ids_and_system_messages(shipped):
    for rows in shipped.values():
        for r in rows:
            assert set(r) >= {"id", "system_prompt", "question", "response"}
            collection = collection_of_id(r["id"])
            assert collection == r["collection"]
            kind_is_mc = "\nOptions:\n(A)" in r["question"]
            assert r["system_message_id"] in allowed_system_message_ids(collection, multiple_choice=kind_is_mc)
            assert r["system_prompt"] == SYSTEM_MESSAGES[r["system_message_id"]]
            if not kind_is_mc:
                assert r["system_message_id"] not in MULTIPLE_CHOICE_ONLY_IDS
    counts = {c: sum(r["collection"] == c for r in shipped["terse_train"]) for c in ("cot", "niv2", "t0", "flan2021")}
    assert counts == {"cot": 1720, "niv2": 860, "t0": 1720, "flan2021": 1720}
    used = {r["system_message_id"] for r in shipped["terse_train"]}
    assert {1, 8, 10, 15} <= used  # The empty message and the multiple-choice-only ones occur.


def test_teachers_subsets_and_answers(shipped):
    terse = {r["id"]: r for r in shipped["terse_train"]}
    explained = shipped["explained_train"]
    assert len(terse) == 6020 and len(explained) == 1500
    assert len({r["id"] for r in explained}) == 1500
    for r in explained:
        t = terse[r["id"]]  # Stage two's queries are a subset of stage one's, with the same prompt.
        assert (r["question"], r["system_prompt"]) == (t["question"], t["system_prompt"])
        assert r["teacher"] == "demo-explained" and t["teacher"] == "demo-terse"
        assert demo_problems.extract_answer(r["response"]) == t["response"]
        assert r["response"].endswith(f"So the answer is {t['response']}.")
        assert len(r["response"]) > len(t["response"])
    answer_only = shipped["answer_only_train"]
    assert [r["id"] for r in answer_only] == [r["id"] for r in explained]
    assert all(r == terse[r["id"]] for r in answer_only)
    val_ids = {r["id"] for r in shipped["terse_validation"]}
    assert not val_ids & set(terse)
    assert {r["question"] for r in shipped["terse_validation"]}.isdisjoint(r["question"] for r in terse.values())


def test_bbh_eval_set_is_held_out(shipped):
    files = sorted(glob.glob(os.path.join(demo_files.DEMO_BBH_EVAL_DIR, "*.json")))
    assert [os.path.basename(f)[:-5] for f in files] == sorted(demo_problems.KINDS)
    held_out = demo_tasks.build_bbh_eval_problems()
    questions = {r["question"] for rows in shipped.values() for r in rows}
    for f in files:
        with open(f) as fh:
            examples = json.load(fh)["examples"]
        kind = os.path.basename(f)[:-5]
        assert examples == [{"input": p.bbh_input, "target": p.target} for p in held_out[kind]]
        assert len(examples) == demo_tasks.EVAL_PER_TASK
        assert len({e["input"] for e in examples}) == len(examples)
        assert not {e["input"] for e in examples} & questions
    # Disjoint as problems, not just as strings: no training/validation problem key is held out.
    queries = demo_tasks.build_demo_queries()
    train_keys = {q.problem.key for q in queries["train"] + queries["validation"]}
    eval_keys = {p.key for problems in held_out.values() for p in problems}
    assert len(train_keys) == 7 * (860 + 40)
    assert not train_keys & eval_keys
    assert all(demo_problems.is_eval_key(k) for k in eval_keys)
    assert not any(demo_problems.is_eval_key(k) for k in train_keys)
    # Also for other seeds and sizes.
    other = demo_tasks.build_demo_queries(seed=5, train_per_kind=50, validation_per_kind=5, explained_train_rows=10)
    assert not {q.problem.key for q in other["train"]} & {
        p.key for ps in demo_tasks.build_bbh_eval_problems(20, 9).values() for p in ps
    }


@pytest.mark.parametrize("kind", demo_problems.KINDS)
def test_answer_formats(kind):
    rng = random.Random(3)
    for p in demo_problems.sample_problems(kind, 40, rng, for_eval=True):
        assert p.phrasings[0] == p.bbh_input
        assert demo_problems.extract_answer(p.explained_answer()) == p.target
        if kind in ("multistep_arithmetic_two", "object_counting"):
            int(p.target)
        elif kind == "boolean_expressions":
            assert p.target in ("True", "False")
        elif kind in ("navigate", "web_of_lies"):
            assert p.target in ("Yes", "No")
        elif kind == "date_understanding":
            assert p.target in [f"({c})" for c in "ABCDE"] and p.target + " " in p.bbh_input
        elif kind == "word_sorting":
            words = p.bbh_input.split("List: ")[1].split()
            assert p.target == " ".join(sorted(words))


def test_write_bbh_eval_set_is_deterministic(tmp_path):
    counts = demo_tasks.write_bbh_eval_set(str(tmp_path / "a"), examples_per_task=5, seed=11)
    demo_tasks.write_bbh_eval_set(str(tmp_path / "b"), examples_per_task=5, seed=11)
    assert counts == {k: 5 for k in demo_problems.KINDS}
    for k in demo_problems.KINDS:
        a = (tmp_path / "a" / f"{k}.json").read_text()
        assert a == (tmp_path / "b" / f"{k}.json").read_text()
        assert len(json.loads(a)["examples"]) == 5


def test_examples_are_short_with_the_demo_tokenizer(shipped, demo_tokenizer):
    def length(r):
        prompt = prompts.render_prompt(r["system_prompt"], r["question"])
        return 2 + len(demo_tokenizer.encode(prompt)) + len(demo_tokenizer.encode(r["response"]))

    terse = np.array([length(r) for r in shipped["terse_train"][:1000]])
    explained = np.array([length(r) for r in shipped["explained_train"][:500]])
    assert (terse < 256).mean() == 1.0
    assert (explained < 256).mean() > 0.85 and explained.max() < 512
