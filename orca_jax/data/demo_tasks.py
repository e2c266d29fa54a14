"""The bundled demo dataset: Orca-style rows from two stand-in teachers, a tokenizer and a BBH-format eval set.

Queries are procedurally generated reasoning problems (demo_problems.py). Each gets
an OpenOrca id with its sub-collection's prefix (`cot.`, `niv.`, `t0.`, `flan.`) and
a system message drawn uniformly from the ids the paper allows for that
sub-collection (system_messages.py; messages 8 and 10 only for multiple choice).

* terse teacher (stage one, the ChatGPT stand-in, teacher tag 'demo-terse'): the
  answer alone, in BBH's format ('16', 'No', '(C)', 'apple fig pear').
* explained teacher (stage two, the GPT-4 stand-in, 'demo-explained'): worked
  steps ending with the line 'So the answer is {answer}.' (demo_problems.extract_answer).

Files written into the output directory (OpenOrca schema plus the optional
columns collection, teacher, system_message_id):

  flan_demo_terse_{train,validation}.parquet       all queries, terse answers
  flan_demo_explained_{train,validation}.parquet   a uniform subset (like FLAN-1M in FLAN-5M), explained
  flan_demo_answer_only_{train,validation}.parquet the explained queries with terse answers (ablation)
  tokenizer.model                                  BPE, 1000 pieces, LLaMA id layout
  bbh_eval/{task}.json                             held-out BBH-format eval set
  MANIFEST.json                                    counts, seed, checksums

Evaluation problems come from a hash bucket of problem keys that training never
uses (demo_problems.is_eval_key), so they are disjoint from every training and
validation query by construction.

Regenerate: `python -m orca_jax.data.demo_tasks --out_dir orca_jax/demo_data`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Sequence

from orca_jax.data import demo_files, prompts, sources
from orca_jax.data.demo_problems import KIND_COLLECTION, KINDS, Problem, sample_problems
from orca_jax.data.system_messages import (
    ID_PREFIX_TO_COLLECTION,
    SYSTEM_MESSAGES,
    allowed_system_message_ids,
)

DEFAULT_SEED = 20230605
TRAIN_PER_KIND = 860  # 7 kinds -> 6020 stage-one training rows.
VALIDATION_PER_KIND = 40
EXPLAINED_TRAIN_ROWS = 1500  # The stage-two subset of the training queries.
EVAL_PER_TASK = 50
EVAL_SEED = 7
TOKENIZER_VOCAB_SIZE = 1000
TERSE_TEACHER = "demo-terse"
EXPLAINED_TEACHER = "demo-explained"
COLLECTION_TO_ID_PREFIX = {c: p for p, c in ID_PREFIX_TO_COLLECTION.items()}
# Phrasing 0 is BBH's own format; it is drawn as often as the two others together.
PHRASING_WEIGHTS = (2, 1, 1)


@dataclasses.dataclass(frozen=True)
class DemoQuery:
    """A training query: the problem, its wording, id and system message."""

    id: str
    collection: str
    system_message_id: int
    question: str
    problem: Problem

    def row(self, teacher: str) -> dict:
        """The OpenOrca-schema row of this query answered by `teacher` (terse or explained)."""
        if teacher == TERSE_TEACHER:
            response = self.problem.target
        elif teacher == EXPLAINED_TEACHER:
            response = self.problem.explained_answer()
        else:
            raise ValueError(f"unknown demo teacher {teacher!r}")
        return {
            "id": self.id,
            "system_prompt": SYSTEM_MESSAGES[self.system_message_id],
            "question": self.question,
            "response": response,
            "collection": self.collection,
            "teacher": teacher,
            "system_message_id": self.system_message_id,
        }


def make_queries(problems: Sequence[Problem], rng: random.Random, first_id: int) -> list[DemoQuery]:
    """Ids, system messages and phrasings for `problems` (shuffled so kinds interleave)."""
    problems = list(problems)
    rng.shuffle(problems)
    out = []
    for n, p in enumerate(problems, start=first_id):
        collection = KIND_COLLECTION[p.kind]
        message = rng.choice(allowed_system_message_ids(collection, multiple_choice=p.multiple_choice))
        question = rng.choices(p.phrasings, weights=PHRASING_WEIGHTS[: len(p.phrasings)])[0]
        out.append(DemoQuery(f"{COLLECTION_TO_ID_PREFIX[collection]}.{n}", collection, message, question, p))
    return out


def build_demo_queries(
    seed: int = DEFAULT_SEED,
    *,
    train_per_kind: int = TRAIN_PER_KIND,
    validation_per_kind: int = VALIDATION_PER_KIND,
    explained_train_rows: int = EXPLAINED_TRAIN_ROWS,
) -> dict[str, list[DemoQuery]]:
    """The demo's queries: 'train' (stage one), 'explained' (the stage-two subset of train), 'validation'."""
    rng = random.Random(seed)
    train_problems: list[Problem] = []
    validation_problems: list[Problem] = []
    for kind in KINDS:
        drawn = sample_problems(kind, train_per_kind + validation_per_kind, rng, for_eval=False)
        train_problems += drawn[:train_per_kind]
        validation_problems += drawn[train_per_kind:]
    train = make_queries(train_problems, rng, first_id=0)
    validation = make_queries(validation_problems, rng, first_id=len(train))
    subset = sorted(rng.sample(range(len(train)), min(explained_train_rows, len(train))))
    return {"train": train, "explained": [train[i] for i in subset], "validation": validation}


def build_demo_rows(seed: int = DEFAULT_SEED, **sizes: int) -> dict[str, list[dict]]:
    """All demo rows, keyed 'terse_train', 'explained_validation', ... (see module doc)."""
    q = build_demo_queries(seed, **sizes)
    return {
        "terse_train": [x.row(TERSE_TEACHER) for x in q["train"]],
        "explained_train": [x.row(EXPLAINED_TEACHER) for x in q["explained"]],
        "answer_only_train": [x.row(TERSE_TEACHER) for x in q["explained"]],
        "terse_validation": [x.row(TERSE_TEACHER) for x in q["validation"]],
        "explained_validation": [x.row(EXPLAINED_TEACHER) for x in q["validation"]],
        "answer_only_validation": [x.row(TERSE_TEACHER) for x in q["validation"]],
    }


def build_bbh_eval_problems(examples_per_task: int = EVAL_PER_TASK, seed: int = EVAL_SEED) -> dict[str, list[Problem]]:
    """task -> held-out problems (keys in the evaluation bucket only)."""
    rng = random.Random(seed)
    return {kind: sample_problems(kind, examples_per_task, rng, for_eval=True) for kind in KINDS}


def build_bbh_eval_set(examples_per_task: int = EVAL_PER_TASK, seed: int = EVAL_SEED) -> dict[str, list[dict]]:
    """task -> BBH-format examples [{'input', 'target'}], drawn from the held-out key bucket only."""
    return {
        kind: [{"input": p.bbh_input, "target": p.target} for p in problems]
        for kind, problems in build_bbh_eval_problems(examples_per_task, seed).items()
    }


def write_bbh_eval_set(out_dir: str, examples_per_task: int = EVAL_PER_TASK, seed: int = EVAL_SEED) -> dict[str, int]:
    """Write one BBH-format JSON per task, `{"examples": [{"input": ..., "target": ...}]}`.

    Queries are disjoint from all demo training/validation queries (held-out key bucket).

    Args:
      out_dir: directory to create/fill, e.g. demo_files.DEMO_BBH_EVAL_DIR.
      examples_per_task: examples in each task file.
      seed: sampling seed.

    Returns:
      task name -> number of examples written.
    """
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for task, examples in build_bbh_eval_set(examples_per_task, seed).items():
        with open(os.path.join(out_dir, f"{task}.json"), "w", encoding="utf-8") as f:
            json.dump({"examples": examples}, f, indent=1, ensure_ascii=False)
            f.write("\n")
        counts[task] = len(examples)
    return counts


def tokenizer_corpus(rows: Sequence[dict]) -> list[str]:
    """Texts the demo tokenizer is trained on: prompts under both chat templates and responses."""
    texts = [m for m in SYSTEM_MESSAGES.values() if m]
    for r in rows:
        for template in prompts.TEMPLATES:
            texts.append(prompts.render_prompt(r["system_prompt"], r["question"], template=template))
        texts.append(r["response"])
    return texts


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_demo_dataset(
    out_dir: str = demo_files.DEMO_DATA_DIR,
    *,
    seed: int = DEFAULT_SEED,
    train_tokenizer: bool = True,
    row_group_size: int = 500,
) -> dict:
    """Write every demo file (module doc) into `out_dir` and return the manifest."""
    from orca_jax.data.tokenizer import train_tokenizer as _train

    os.makedirs(out_dir, exist_ok=True)
    rows = build_demo_rows(seed)
    files = {}
    for name, table in rows.items():
        dataset, split = name.rsplit("_", 1)
        path = os.path.join(out_dir, os.path.basename(demo_files.demo_file(dataset, split)))
        sources.write_rows(path, table, row_group_size=row_group_size)
        files[os.path.basename(path)] = {"rows": len(table)}
    tokenizer_path = os.path.join(out_dir, "tokenizer.model")
    if train_tokenizer:
        _train(
            tokenizer_corpus(rows["terse_train"] + rows["explained_train"]),
            tokenizer_path,
            vocab_size=TOKENIZER_VOCAB_SIZE,
        )
    eval_counts = write_bbh_eval_set(os.path.join(out_dir, "bbh_eval"))
    files["tokenizer.model"] = {}
    for name in files:
        files[name]["sha256"] = _sha256(os.path.join(out_dir, name))
    manifest = {
        "generator": "python -m orca_jax.data.demo_tasks",
        "seed": seed,
        "eval_seed": EVAL_SEED,
        "teachers": {"stage1": TERSE_TEACHER, "stage2": EXPLAINED_TEACHER},
        "kinds": dict(KIND_COLLECTION),
        "files": files,
        "bbh_eval": eval_counts,
        "tokenizer_vocab_size": TOKENIZER_VOCAB_SIZE,
    }
    with open(os.path.join(out_dir, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out_dir", default=demo_files.DEMO_DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip_tokenizer", action="store_true", help="keep the existing tokenizer.model")
    args = parser.parse_args(argv)
    manifest = write_demo_dataset(args.out_dir, seed=args.seed, train_tokenizer=not args.skip_tokenizer)
    for name, info in sorted(manifest["files"].items()):
        print(f"{name}: {info.get('rows', '-')} rows")


if __name__ == "__main__":
    main()
