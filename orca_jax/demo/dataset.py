"""The bundled mini-Orca dataset: queries, two teachers' rows, a tokenizer and held-out BBH-format sets.

Queries come from the families in families.py. Each gets an OpenOrca id with its
sub-collection's prefix (`cot.`, `niv.`, `t0.`, `flan.`), a system message drawn uniformly
from those the paper allows for that sub-collection (system_messages.py), and a phrasing.

Files written into the output directory (OpenOrca schema plus collection, teacher,
system_message_id):

  flan_demo_assistant_{train,validation}.parquet    all queries, assistant (FLAN-5M-like)
  flan_demo_expert_{train,validation}.parquet       a random 1/5 of them, expert (FLAN-1M-like)
  flan_demo_answer_only_{train,validation}.parquet  the expert's queries, bare answers
  tokenizer.model                                   BPE, 1000 pieces, digits split, LLaMA ids
  bbh_eval/{task}.json                              held-out, training sizes
  bbh_eval_ood/{task}.json                          held-out, longer/deeper than training
  MANIFEST.json                                     counts, seeds, checksums

Held-out problems come from a hash bucket of problem keys that training never uses
(families.is_eval_key), so they are disjoint from every training query by construction.

Regenerate: `python -m orca_jax.demo.dataset` (writes orca_jax/demo_data).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Sequence

from orca_jax.data import prompts, sources
from orca_jax.data.system_messages import ID_PREFIX_TO_COLLECTION, SYSTEM_MESSAGES, allowed_system_message_ids
from orca_jax.demo import files, teachers
from orca_jax.demo.families import KIND_COLLECTION, KINDS, Problem, sample_problems

DEFAULT_SEED = 20230605
TRAIN_PER_KIND = 1000  # 6 families -> 6000 assistant rows (FLAN-5M-like).
EXPERT_FRACTION = 5  # The expert answers a random 1/5 of them (FLAN-1M in FLAN-5M).
VALIDATION_PER_KIND = 20
EVAL_PER_TASK = 30
OOD_PER_TASK = 20
EVAL_SEED = 7
OOD_SEED = 8
TOKENIZER_VOCAB_SIZE = 1000
COLLECTION_TO_ID_PREFIX = {c: p for p, c in ID_PREFIX_TO_COLLECTION.items()}
PHRASING_WEIGHTS = (2, 1, 1)  # Phrasing 0 is BBH's own format, drawn as often as the others together.


@dataclasses.dataclass(frozen=True)
class DemoQuery:
    """A training query: the problem, its wording, id and system message."""

    id: str
    collection: str
    system_message_id: int
    question: str
    problem: Problem

    def row(self, teacher: str) -> dict:
        """The OpenOrca-schema row of this query answered by `teacher` (teachers.TEACHERS)."""
        return {
            "id": self.id,
            "system_prompt": SYSTEM_MESSAGES[self.system_message_id],
            "question": self.question,
            "response": teachers.respond(teacher, self.problem, self.id),
            "collection": self.collection,
            "teacher": teacher,
            "system_message_id": self.system_message_id,
        }


def make_queries(problems: Sequence[Problem], rng: random.Random, first_id: int) -> list[DemoQuery]:
    """Ids, system messages and phrasings for `problems` (shuffled so families interleave)."""
    problems = list(problems)
    rng.shuffle(problems)
    out = []
    for n, p in enumerate(problems, start=first_id):
        collection = KIND_COLLECTION[p.kind]
        message = rng.choice(allowed_system_message_ids(collection, multiple_choice=False))
        question = rng.choices(p.phrasings, weights=PHRASING_WEIGHTS[: len(p.phrasings)])[0]
        out.append(DemoQuery(f"{COLLECTION_TO_ID_PREFIX[collection]}.{n}", collection, message, question, p))
    return out


def build_demo_queries(
    seed: int = DEFAULT_SEED, *, train_per_kind: int = TRAIN_PER_KIND, validation_per_kind: int = VALIDATION_PER_KIND
) -> dict[str, list[DemoQuery]]:
    """'train' (assistant, stage one), 'expert' (a random 1/EXPERT_FRACTION of train), 'validation'."""
    rng = random.Random(seed)
    train_problems: list[Problem] = []
    validation_problems: list[Problem] = []
    for kind in KINDS:
        drawn = sample_problems(kind, train_per_kind + validation_per_kind, rng, for_eval=False)
        train_problems += drawn[:train_per_kind]
        validation_problems += drawn[train_per_kind:]
    train = make_queries(train_problems, rng, first_id=0)
    validation = make_queries(validation_problems, rng, first_id=len(train))
    subset = sorted(rng.sample(range(len(train)), len(train) // EXPERT_FRACTION))
    return {"train": train, "expert": [train[i] for i in subset], "validation": validation}


def build_demo_rows(seed: int = DEFAULT_SEED, **sizes: int) -> dict[str, list[dict]]:
    """All rows, keyed '{dataset}_{split}' as files.DEMO_DATASETS x files.DEMO_SPLITS."""
    q = build_demo_queries(seed, **sizes)
    return {
        "assistant_train": [x.row(teachers.ASSISTANT) for x in q["train"]],
        "expert_train": [x.row(teachers.EXPERT) for x in q["expert"]],
        "answer_only_train": [x.row(teachers.ANSWER_ONLY) for x in q["expert"]],
        "assistant_validation": [x.row(teachers.ASSISTANT) for x in q["validation"]],
        "expert_validation": [x.row(teachers.EXPERT) for x in q["validation"]],
        "answer_only_validation": [x.row(teachers.ANSWER_ONLY) for x in q["validation"]],
    }


def build_eval_problems(
    level: str = "train", examples_per_task: int | None = None, seed: int | None = None
) -> dict[str, list[Problem]]:
    """task -> held-out problems (evaluation key bucket only) at `level` ('train' sizes or 'ood')."""
    n = examples_per_task or (EVAL_PER_TASK if level == "train" else OOD_PER_TASK)
    rng = random.Random(seed if seed is not None else (EVAL_SEED if level == "train" else OOD_SEED))
    return {kind: sample_problems(kind, n, rng, for_eval=True, level=level) for kind in KINDS}


def write_bbh_eval_set(
    out_dir: str, level: str = "train", examples_per_task: int | None = None, seed: int | None = None
) -> dict[str, int]:
    """Write one BBH-format JSON per task, `{"examples": [{"input": ..., "target": ...}]}`; returns counts."""
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for task, problems in build_eval_problems(level, examples_per_task, seed).items():
        examples = [{"input": p.bbh_input, "target": p.target} for p in problems]
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
    out_dir: str = files.DEMO_DATA_DIR,
    *,
    seed: int = DEFAULT_SEED,
    train_tokenizer: bool = True,
    row_group_size: int = 500,
) -> dict:
    """Write every demo file (module doc) into `out_dir` and return the manifest."""
    from orca_jax.data.tokenizer import train_tokenizer as _train

    os.makedirs(out_dir, exist_ok=True)
    rows = build_demo_rows(seed)
    written = {}
    for name, table in rows.items():
        dataset, split = name.rsplit("_", 1)
        path = os.path.join(out_dir, os.path.basename(files.demo_file(dataset, split)))
        sources.write_rows(path, table, row_group_size=row_group_size)
        written[os.path.basename(path)] = {"rows": len(table)}
    if train_tokenizer:
        _train(
            tokenizer_corpus(rows["assistant_train"] + rows["expert_train"]),
            os.path.join(out_dir, "tokenizer.model"),
            vocab_size=TOKENIZER_VOCAB_SIZE,
        )
    eval_counts = write_bbh_eval_set(os.path.join(out_dir, os.path.basename(files.DEMO_BBH_EVAL_DIR)), "train")
    ood_counts = write_bbh_eval_set(os.path.join(out_dir, os.path.basename(files.DEMO_BBH_OOD_DIR)), "ood")
    written["tokenizer.model"] = {}
    for name in written:
        written[name]["sha256"] = _sha256(os.path.join(out_dir, name))
    manifest = {
        "generator": "python -m orca_jax.demo.dataset",
        "seed": seed,
        "eval_seed": EVAL_SEED,
        "ood_seed": OOD_SEED,
        "teachers": {"stage1": teachers.ASSISTANT, "stage2": teachers.EXPERT, "baseline": teachers.ANSWER_ONLY},
        "assistant_error_rate": teachers.ASSISTANT_ERROR_RATE,
        "kinds": dict(KIND_COLLECTION),
        "files": written,
        "bbh_eval": eval_counts,
        "bbh_eval_ood": ood_counts,
        "tokenizer_vocab_size": TOKENIZER_VOCAB_SIZE,
    }
    with open(os.path.join(out_dir, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out_dir", default=files.DEMO_DATA_DIR)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--skip_tokenizer", action="store_true", help="keep the existing tokenizer.model")
    args = parser.parse_args(argv)
    manifest = write_demo_dataset(args.out_dir, seed=args.seed, train_tokenizer=not args.skip_tokenizer)
    for name, info in sorted(manifest["files"].items()):
        print(f"{name}: {info.get('rows', '-')} rows")


if __name__ == "__main__":
    main()
