"""The bundled mini-Orca data: generator = files, teachers, trace arithmetic, held-out disjointness."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import random
import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from orca_jax.data import prompts
from orca_jax.data.rows import collection_of_id
from orca_jax.data.system_messages import MULTIPLE_CHOICE_ONLY_IDS, SYSTEM_MESSAGES, allowed_system_message_ids
from orca_jax.demo import dataset, families, files, teachers


def _rows(name, split):
    return pq.read_table(files.demo_file(name, split)).to_pylist()


@pytest.fixture(scope="module")
def shipped():
    return {f"{d}_{s}": _rows(d, s) for d in files.DEMO_DATASETS for s in files.DEMO_SPLITS}


@pytest.fixture(scope="module")
def queries():
    return dataset.build_demo_queries()


def test_files_match_the_manifest():
    with open(files.DEMO_MANIFEST_PATH) as f:
        manifest = json.load(f)
    for name, info in manifest["files"].items():
        path = os.path.join(files.DEMO_DATA_DIR, name)
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == info["sha256"], name
        if name.endswith(".parquet"):
            assert pq.ParquetFile(path).metadata.num_rows == info["rows"]
    assert manifest["assistant_error_rate"] == teachers.ASSISTANT_ERROR_RATE
    size = sum(
        os.path.getsize(p)
        for p in glob.glob(os.path.join(files.DEMO_DATA_DIR, "**"), recursive=True)
        if os.path.isfile(p)
    )
    assert size < 3_000_000


def test_shipped_rows_and_eval_sets_are_what_the_generator_writes(shipped, tmp_path):
    assert dataset.build_demo_rows(dataset.DEFAULT_SEED) == shipped
    for level, directory in (("train", files.DEMO_BBH_EVAL_DIR), ("ood", files.DEMO_BBH_OOD_DIR)):
        out = tmp_path / level
        dataset.write_bbh_eval_set(str(out), level)
        for kind in families.KINDS:
            assert (out / f"{kind}.json").read_text() == open(os.path.join(directory, f"{kind}.json")).read()
    assert sorted(os.listdir(files.DEMO_BBH_EVAL_DIR)) == sorted(f"{k}.json" for k in families.KINDS)


def test_schema_ids_and_system_messages(shipped):
    for rows in shipped.values():
        for r in rows:
            assert set(r) >= {"id", "system_prompt", "question", "response"}
            collection = collection_of_id(r["id"])
            assert collection == r["collection"]
            assert r["system_message_id"] in allowed_system_message_ids(collection)
            assert r["system_message_id"] not in MULTIPLE_CHOICE_ONLY_IDS  # No family is multiple choice.
            assert r["system_prompt"] == SYSTEM_MESSAGES[r["system_message_id"]]
    counts = {
        c: sum(r["collection"] == c for r in shipped["assistant_train"]) for c in ("cot", "niv2", "t0", "flan2021")
    }
    assert counts == {"cot": 2000, "niv2": 1000, "t0": 2000, "flan2021": 1000}
    assert {1, 15} <= {r["system_message_id"] for r in shipped["assistant_train"]}


def test_expert_is_a_fifth_of_the_assistant_queries_and_answer_only_mirrors_it(shipped):
    assistant = {r["id"]: r for r in shipped["assistant_train"]}
    expert = shipped["expert_train"]
    assert len(assistant) == 6000 and len(expert) == 1200 == len({r["id"] for r in expert})
    for r in expert:
        a = assistant[r["id"]]
        assert (r["question"], r["system_prompt"]) == (a["question"], a["system_prompt"])
        assert (r["teacher"], a["teacher"]) == (teachers.EXPERT, teachers.ASSISTANT)
        if families.extract_answer(a["response"]) == families.extract_answer(r["response"]):
            assert len(r["response"]) >= len(a["response"])  # The assistant skips steps (or writes as many).
    expert_chars = sum(len(r["response"]) for r in expert)
    assert expert_chars > 1.5 * sum(len(assistant[r["id"]]["response"]) for r in expert)
    answer_only = shipped["answer_only_train"]
    assert [r["id"] for r in answer_only] == [r["id"] for r in expert]
    for r, e in zip(answer_only, expert):
        assert r["response"] == families.extract_answer(e["response"]) and "\n" not in r["response"]
    assert not {r["id"] for r in shipped["assistant_validation"]} & set(assistant)


def test_every_expert_answer_is_right_and_the_assistant_errs_at_its_stated_rate(queries):
    wrong = 0
    for q in queries["train"]:
        expert = teachers.respond(teachers.EXPERT, q.problem, q.id)
        assert families.extract_answer(expert) == q.problem.target == solve(q.problem.bbh_input, q.problem.kind)
        assistant = families.extract_answer(teachers.respond(teachers.ASSISTANT, q.problem, q.id))
        assert assistant in (q.problem.target, q.problem.wrong) and q.problem.wrong != q.problem.target
        wrong += assistant != q.problem.target
    rate = wrong / len(queries["train"])
    # 6000 draws: the binomial sd is 0.5 points; 2 points is four sd.
    assert abs(rate - teachers.ASSISTANT_ERROR_RATE) < 0.02, rate


@pytest.mark.parametrize("kind", families.KINDS)
@pytest.mark.parametrize("level", families.LEVELS)
def test_every_step_of_the_expert_traces_checks_out(kind, level):
    for p in families.sample_problems(kind, 150, random.Random(11), for_eval=False, level=level):
        check_trace(p)
        assert families.extract_answer(p.explained()) == p.target
        assert len(" ".join(p.brief)) <= len(" ".join(p.steps))


def test_held_out_sets_are_disjoint_from_training(shipped, queries):
    questions = {r["question"] for rows in shipped.values() for r in rows}
    train_keys = {q.problem.key for q in queries["train"] + queries["validation"]}
    assert len(train_keys) == 6 * (dataset.TRAIN_PER_KIND + dataset.VALIDATION_PER_KIND)
    for level, directory, per_task in (
        ("train", files.DEMO_BBH_EVAL_DIR, dataset.EVAL_PER_TASK),
        ("ood", files.DEMO_BBH_OOD_DIR, dataset.OOD_PER_TASK),
    ):
        held_out = dataset.build_eval_problems(level)
        keys = {p.key for ps in held_out.values() for p in ps}
        assert len(keys) == 6 * per_task
        assert not keys & train_keys and all(families.is_eval_key(k) for k in keys)
        for kind, problems in held_out.items():
            with open(os.path.join(directory, f"{kind}.json")) as f:
                examples = json.load(f)["examples"]
            assert examples == [{"input": p.bbh_input, "target": p.target} for p in problems]
            assert not {e["input"] for e in examples} & questions
    assert not any(families.is_eval_key(k) for k in train_keys)


def size(p: families.Problem) -> int:
    """How big a query is: digits, people, brackets, items, instructions or operators."""
    q = p.bbh_input
    return {
        "multi_digit_addition": lambda: max(len(n) for n in re.findall(r"\d+", q)),
        "web_of_lies": lambda: q.count("."),
        "dyck_languages": lambda: len(q.split("Input: ")[1].split()),
        "object_counting": lambda: q.split(". How many")[0].count(",") + 1,
        "navigate": lambda: q.count("Take "),
        "boolean_expressions": lambda: len(re.findall(r"\b(and|or)\b", q)),
    }[p.kind]()


def test_ood_queries_are_bigger_than_any_training_query(queries):
    ood = dataset.build_eval_problems("ood")
    for kind in families.KINDS:
        train = [q.problem for q in queries["train"] if q.problem.kind == kind]
        assert min(size(p) for p in ood[kind]) > max(size(p) for p in train), kind


def test_label_tasks_are_balanced():
    for level in families.LEVELS:
        for kind, problems in dataset.build_eval_problems(level, 200, seed=3).items():
            targets = [p.target for p in problems]
            if kind in ("web_of_lies", "navigate", "boolean_expressions"):
                assert 0.35 < max(targets.count(t) for t in set(targets)) / len(targets) < 0.65, (kind, level)


def test_examples_fit_the_training_length(shipped, demo_tokenizer):
    def length(r):
        prompt = prompts.render_prompt(r["system_prompt"], r["question"])
        return 2 + len(demo_tokenizer.encode(prompt)) + len(demo_tokenizer.encode(r["response"]))

    expert = np.array([length(r) for r in shipped["expert_train"][:600]])
    assert (expert <= 256).mean() > 0.99
    for level in families.LEVELS:  # held-out prompts + expert traces fit the decoding budget (192)
        for problems in dataset.build_eval_problems(level).values():
            assert max(len(demo_tokenizer.encode(p.explained())) for p in problems) < 192


# --------------------------------------------------------------------------- independent checks


def solve(question: str, kind: str) -> str:
    """The answer computed from the question text alone, without the generator."""
    if kind == "multi_digit_addition":
        a, b = map(int, re.findall(r"\d+", question))
        return str(a + b)
    if kind == "boolean_expressions":
        return str(eval(question.removesuffix(" is")))  # noqa: S307  (True/False/and/or/not/parentheses)
    if kind == "web_of_lies":
        first = re.match(r"Question: (\w+) (tells the truth|lies)\.", question)
        truth = first.group(2) == "tells the truth"
        for claim in re.findall(r"\w+ says \w+ (tells the truth|lies)\.", question):
            truth = truth == (claim == "tells the truth")
        return "Yes" if truth else "No"
    if kind == "navigate":
        x = y = 0
        for k, d in re.findall(r"Take (\d+) steps? (\w+)\.", question):
            dx, dy = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}[d]
            x, y = x + dx * int(k), y + dy * int(k)
        return "Yes" if (x, y) == (0, 0) else "No"
    if kind == "object_counting":
        category = re.search(r"How many ([\w ]+) do I have", question).group(1)
        items = {i for pair in families._CATEGORIES[category] for i in pair}
        words = {"a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5}
        listing = question.split("I have ", 1)[1].split(". How many")[0].replace(", and ", ", ").split(", ")
        return str(sum(words[p.split(" ", 1)[0]] for p in listing if p.split(" ", 1)[1] in items))
    if kind == "dyck_languages":
        stack = []
        for c in question.split("Input: ")[1].split():
            stack.append(c) if c in "([{<" else stack.pop()
        return " ".join({"(": ")", "[": "]", "{": "}", "<": ">"}[c] for c in reversed(stack))
    raise ValueError(kind)


def check_trace(p: families.Problem) -> None:
    """Every step of the expert trace follows from the step before (per family)."""
    s = p.steps
    if p.kind == "multi_digit_addition":
        a, b = re.findall(r"\d+", p.bbh_input)
        written, carry = "", 0
        for line in s:
            if line.startswith("carry"):
                assert line == f"carry {carry}: digits {carry}{written}."
                written = f"{carry}{written}"
                continue
            x, y, c, dx, dy, c2, total, digits, c3 = re.fullmatch(
                r"(\d+) \+ (\d+), carry (\d): (\d) \+ (\d) \+ (\d) = (\d+), digits (\d+), carry (\d)\.", line
            ).groups()
            assert (x, y) == (a or "0", b or "0") and int(c) == int(c2) == carry
            assert (int(dx), int(dy)) == (int(x[-1]), int(y[-1])) and int(total) == int(dx) + int(dy) + carry
            assert digits == str(int(total) % 10) + written and int(c3) == int(total) // 10
            written, carry, a, b = digits, int(c3), a[:-1], b[:-1]
        assert written == p.target and not a and not b
    elif p.kind == "boolean_expressions":
        previous = p.bbh_input.removesuffix(" is")
        for line in s:
            expr = line.removeprefix("= ")
            assert eval(expr) == eval(previous)  # noqa: S307
            assert len(re.findall(r"\b(and|or|not)\b", expr)) == len(re.findall(r"\b(and|or|not)\b", previous)) - 1
            previous = expr
        assert previous == p.target
    elif p.kind == "web_of_lies":
        truth = {}
        first = re.fullmatch(r"(\w+) (tells the truth|lies)\.", s[0])
        truth[first.group(1)] = first.group(2) == "tells the truth"
        for line in s[1:]:
            who, other, claim, status = re.fullmatch(
                r"(\w+) says (\w+) (tells the truth|lies), so \w+ (tells the truth|lies)\.", line
            ).groups()
            assert (status == "tells the truth") == (truth[other] == (claim == "tells the truth"))
            truth[who] = status == "tells the truth"
    elif p.kind == "navigate":
        x = y = 0
        assert s[0] == "Start at (0, 0)."
        for line in s[1:-1]:
            k, d, nx, ny = re.fullmatch(r"(\d+) (\w+): \((-?\d+), (-?\d+)\)\.", line).groups()
            dx, dy = {"forward": (0, 1), "backward": (0, -1), "left": (-1, 0), "right": (1, 0)}[d]
            x, y = x + dx * int(k), y + dy * int(k)
            assert (int(nx), int(ny)) == (x, y)
        assert s[-1].startswith(f"End at ({x}, {y}), ")
    elif p.kind == "object_counting":
        running = 0
        for line in s:
            m = re.fullmatch(r"(.+): (\d+), so far (\d+)\.", line)
            if m:
                running += int(m.group(2))
            assert int(re.search(r"so far (\d+)\.$", line).group(1)) == running
        assert str(running) == p.target
    elif p.kind == "dyck_languages":
        stack: list[str] = []
        for line in s:
            c, shown = re.fullmatch(r"(?:close )?(\S) : stack (.+)", line).groups()
            if line.startswith("close"):
                assert families._PAIRS[stack.pop()] == c
            elif c in families._PAIRS:
                stack.append(c)
            else:
                assert families._PAIRS[stack.pop()] == c
            assert shown == (" ".join(stack) or "empty")
        assert not stack
