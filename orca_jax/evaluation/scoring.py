"""Scoring: one example's output -> (extracted answer, correct); accuracies per task and aggregate.

Accuracies are fractions in [0, 1] in results.json and percentages in results.md. An
aggregate's `accuracy` is the unweighted mean over its tasks, the paper's "average" (the
Orca AGIEval average in docs/orca_facts.md#5b-agieval-per-task is the plain mean of its 8 task scores);
`micro_accuracy` pools all examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

from orca_jax.evaluation import answer_types as at
from orca_jax.evaluation import extraction as ex
from orca_jax.evaluation.loaders import Example


@dataclasses.dataclass(frozen=True)
class Scored:
    extracted: str | None
    """The extracted answer (letter, label, number, word list, ...); None = unparseable."""
    correct: bool


def _gold_letter(target: str) -> str:
    return target.strip().strip("()").strip()


def extract(example: Example, output: str) -> str | None:
    """The answer in `output` (already cleaned) for the example's answer type."""
    kind = example.answer_type
    if kind == at.MULTIPLE_CHOICE:
        return ex.extract_choice(output, example.options)
    if kind == at.LABEL:
        return ex.extract_label(output, example.labels)
    if kind == at.NUMBER:
        return ex.extract_number(output)
    if kind == at.WORD_LIST:
        return ex.extract_word_list(output, ex.list_vocabulary(example.question))
    if kind == at.DYCK:
        return ex.extract_dyck(output, ex.dyck_prefix(example.question))
    if kind == at.MATH:
        return ex.extract_math(output)
    return ex.extract_free_text(output)


def is_correct(example: Example, extracted: str | None) -> bool:
    """Compare an extracted answer with the example's gold target."""
    if extracted is None:
        return False
    kind, target = example.answer_type, example.target
    if kind == at.MULTIPLE_CHOICE:
        return extracted == _gold_letter(target)
    if kind == at.LABEL:
        return extracted.lower() == target.strip().lower()
    if kind == at.NUMBER:
        return ex.numbers_equal(extracted, target)
    if kind == at.WORD_LIST:
        return extracted.split() == target.lower().split()
    if kind == at.DYCK:
        return extracted.replace(" ", "") == target.replace(" ", "")
    if kind == at.MATH:
        return ex.math_equal(extracted, target)
    return extracted == ex._norm(target)


def score(example: Example, output: str, stop_strings: Iterable[str] = ex.DEFAULT_STOP_STRINGS) -> Scored:
    """Clean, extract and compare one raw model output."""
    extracted = extract(example, ex.clean_output(output, stop_strings))
    return Scored(extracted, is_correct(example, extracted))


def loglik_candidates(example: Example, choice_format: str = "label") -> list[tuple[str, str]]:
    """(answer, continuation text) pairs for log-likelihood scoring; [] for free-form types.

    multiple_choice: the letters in the target's form ("(B)") or, with choice_format="text",
    the option texts; label: the labels. Other types have no closed answer set.
    """
    if example.answer_type == at.MULTIPLE_CHOICE and example.options:
        if choice_format == "text":
            return [(letter, text) for letter, text in example.options]
        return [(letter, f"({letter})") for letter, _ in example.options]
    if example.answer_type == at.LABEL:
        return [(label.lower(), label) for label in example.labels]
    return []


def loglik_gold(example: Example) -> str | None:
    """The candidate key `loglik_candidates` uses for the gold answer (None: not in the set)."""
    if example.answer_type == at.MULTIPLE_CHOICE:
        return _gold_letter(example.target)
    if example.answer_type == at.LABEL:
        return example.target.strip().lower()
    return None


def task_summary(scored: Sequence[Scored]) -> dict:
    """Generation accuracy of one task's examples."""
    n = len(scored)
    out = {
        "num_examples": n,
        "num_correct": sum(s.correct for s in scored),
        "num_unparsed": sum(s.extracted is None for s in scored),
    }
    out["accuracy"] = out["num_correct"] / n if n else None
    return out


def aggregate(tasks: Mapping[str, Mapping], names: Sequence[str], key: str = "accuracy") -> dict | None:
    """Mean of `key` over the tasks `names` that were evaluated; None when none were."""
    present = [t for t in names if t in tasks and tasks[t].get(key) is not None]
    if not present:
        return None
    count_key = "loglik_num_correct" if key.startswith("loglik") else "num_correct"
    examples = sum(tasks[t]["num_examples"] for t in present)
    correct = sum(tasks[t][count_key] for t in present)
    return {
        "accuracy": sum(tasks[t][key] for t in present) / len(present),
        "micro_accuracy": correct / examples if examples else None,
        "num_tasks": len(present),
        "num_examples": examples,
        "missing_tasks": [t for t in names if t not in present],
    }
