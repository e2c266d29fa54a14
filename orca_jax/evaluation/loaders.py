"""Loaders for BBH-format directories and AGIEval v1 JSONL files.

BBH format (suzgunmirac/BIG-Bench-Hard `bbh/`): one `<task>.json` per task holding
`{"examples": [{"input": str, "target": str}, ...]}` (a "canary" key may sit beside it).
Any directory in this format is a benchmark: the public BBH, or custom held-out tasks.

AGIEval v1 (ruixiangcui/AGIEval `data/v1/`): one `<task>.jsonl` per task, rows with
`passage` (str | null), `question`, `options` (list like "(A)..." | null), `label`
("A".. | null), `answer` (cloze answer | null; absent in sat-*), `other`. Option strings are
not uniform in the public files (" A. text  ", "A text", "B? text" next to "(C)text"), so
each option is re-labelled by its position and its own label prefix is removed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable, Sequence

from orca_jax.evaluation import answer_types as at

BBH_TASKS: tuple[str, ...] = (
    "boolean_expressions",
    "causal_judgement",
    "date_understanding",
    "disambiguation_qa",
    "dyck_languages",
    "formal_fallacies",
    "geometric_shapes",
    "hyperbaton",
    "logical_deduction_five_objects",
    "logical_deduction_seven_objects",
    "logical_deduction_three_objects",
    "movie_recommendation",
    "multistep_arithmetic_two",
    "navigate",
    "object_counting",
    "penguins_in_a_table",
    "reasoning_about_colored_objects",
    "ruin_names",
    "salient_translation_error_detection",
    "snarks",
    "sports_understanding",
    "temporal_sequences",
    "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
    "web_of_lies",
    "word_sorting",
)
# Left out of the paper's 23-task / 5,511-example BBH aggregate (docs/orca_facts.md#4a-bbh-and-agieval-sets).
BBH_FREE_FORM_TASKS: tuple[str, ...] = ("dyck_languages", "multistep_arithmetic_two", "object_counting", "word_sorting")
BBH_PAPER_TASKS: tuple[str, ...] = tuple(t for t in BBH_TASKS if t not in BBH_FREE_FORM_TASKS)

# The paper's AGIEval set: the English multiple-choice tasks (docs/orca_facts.md#4a-bbh-and-agieval-sets).
AGIEVAL_ENGLISH_MC_TASKS: tuple[str, ...] = (
    "aqua-rat",
    "logiqa-en",
    "lsat-ar",
    "lsat-lr",
    "lsat-rc",
    "sat-math",
    "sat-en",
    "sat-en-without-passage",
)
AGIEVAL_MATH_TASKS: tuple[str, ...] = ("math",)
AGIEVAL_DEFAULT_TASKS: tuple[str, ...] = AGIEVAL_ENGLISH_MC_TASKS + AGIEVAL_MATH_TASKS
# Also in v1 and loadable by name (--tasks), but not part of the paper's table.
AGIEVAL_OTHER_ENGLISH_TASKS: tuple[str, ...] = ("gaokao-english",)

_BBH_OPTION = re.compile(r"^\(([A-Z])\)[ \t]*(.*?)\s*$", re.M)
_LABEL_PREFIX = r"^\s*(?:\(\s*{l}\s*\)|{l}\s*[.?:)．、]|{l}(?=\s))\s*"


@dataclasses.dataclass(frozen=True)
class Example:
    """One benchmark question with its gold answer, in the form the scorer needs."""

    benchmark: str
    """'bbh', 'agieval', or the name of a custom BBH-format benchmark."""
    task: str
    index: int
    """Position of the example in its task file."""
    question: str
    """BBH: the whole `input`; AGIEval: `question`."""
    target: str
    """BBH: `target` as written; AGIEval: the label letter (MC) or `answer` (cloze)."""
    answer_type: str
    passage: str | None = None
    """AGIEval passage (None or "" when there is none)."""
    options: tuple[tuple[str, str], ...] = ()
    """(letter, option text) pairs: AGIEval's re-labelled options, or those parsed from a BBH input."""
    labels: tuple[str, ...] = ()
    """The closed answer set of a `label` task (e.g. ("False", "True"))."""

    @property
    def uid(self) -> str:
        return f"{self.benchmark}/{self.task}/{self.index}"


def parse_bbh_options(text: str) -> tuple[tuple[str, str], ...]:
    """The `(A) text` lines of a BBH input, in order."""
    return tuple((m.group(1), m.group(2)) for m in _BBH_OPTION.finditer(text))


def normalize_agieval_options(options: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """(letter, text) pairs with each option's own label prefix removed, in letter order.

    Letters are positional (A, B, ...), except when every option carries a clear "(X)" label
    and those labels are a permutation of the positional ones (a few logiqa-en rows list
    "(A) (C) (B) (D)"): the printed letters are the ones the gold label refers to, so they
    are kept and the options sorted by them. A bare "A text" prefix (letter then space) is
    stripped only when every option of the row that lacks a clearer label starts that way
    (and, if only one does, the next word is not lower case), so "A person ..." is kept.
    """
    texts = [o.strip() for o in options]
    letters = [chr(ord("A") + i) for i in range(len(texts))]
    printed = [re.match(r"^\(\s*([A-Z])\s*\)", t) for t in texts]
    if texts and all(printed) and sorted(m.group(1) for m in printed) == letters:
        pairs = sorted((m.group(1), t[m.end() :].strip()) for m, t in zip(printed, texts))
        return tuple(pairs)
    clear = [re.compile(_LABEL_PREFIX.replace("|{l}(?=\\s)", "").format(l=l)) for l in letters]
    loose = [re.compile(_LABEL_PREFIX.format(l=l)) for l in letters]
    unclear = [i for i, t in enumerate(texts) if not clear[i].match(t)]
    strip_loose = (
        bool(unclear)
        and all(loose[i].match(texts[i]) for i in unclear)
        and (len(unclear) > 1 or not loose[unclear[0]].sub("", texts[unclear[0]], count=1)[:1].islower())
    )
    out = []
    for i, t in enumerate(texts):
        pattern = loose[i] if strip_loose else clear[i]
        out.append((letters[i], pattern.sub("", t, count=1).strip()))
    return tuple(out)


def _task_names(directory: str, suffix: str) -> list[str]:
    return sorted(f[: -len(suffix)] for f in os.listdir(directory) if f.endswith(suffix))


def _select(available: Sequence[str], tasks: Iterable[str] | None, directory: str) -> list[str]:
    if tasks is None:
        return list(available)
    tasks = list(tasks)
    missing = [t for t in tasks if t not in available]
    if missing:
        raise FileNotFoundError(f"tasks {missing} not found in {directory} (it has {list(available)})")
    return tasks


def load_bbh_format_dir(
    directory: str, tasks: Iterable[str] | None = None, benchmark: str = "bbh"
) -> dict[str, list[Example]]:
    """Every `<task>.json` of a BBH-format directory (or only `tasks`), as {task: examples}.

    The answer type of each task is classified from all its targets (answer_types.py).
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"BBH-format directory {directory!r} does not exist "
            "(fetch the public sets with `python -m orca_jax.evaluate download`)"
        )
    out = {}
    for task in _select(_task_names(directory, ".json"), tasks, directory):
        with open(os.path.join(directory, task + ".json"), encoding="utf-8") as f:
            rows = json.load(f)["examples"]
        targets = [str(r["target"]) for r in rows]
        task_type = at.classify_targets(targets)
        labels = at.label_set(targets) if task_type == at.LABEL else ()
        examples = []
        for i, row in enumerate(rows):
            text, target = str(row["input"]), str(row["target"]).strip()
            answer_type = task_type
            if task_type == at.MULTIPLE_CHOICE and not at.LETTER_TARGET.match(target):
                answer_type = at.FREE_TEXT  # a BBH target that is an option's text (see answer_types)
            options = parse_bbh_options(text) if task_type == at.MULTIPLE_CHOICE else ()
            examples.append(Example(benchmark, task, i, text, target, answer_type, options=options, labels=labels))
        out[task] = examples
    return out


def load_agieval_dir(
    directory: str, tasks: Iterable[str] | None = None, benchmark: str = "agieval"
) -> dict[str, list[Example]]:
    """AGIEval v1 tasks as {task: examples}; default: the paper's English MC tasks + math (when present)."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"AGIEval directory {directory!r} does not exist "
            "(fetch the public sets with `python -m orca_jax.evaluate download`)"
        )
    available = _task_names(directory, ".jsonl")
    if tasks is None:
        tasks = [t for t in AGIEVAL_DEFAULT_TASKS if t in available]
    out = {}
    for task in _select(available, tasks, directory):
        examples = []
        with open(os.path.join(directory, task + ".jsonl"), encoding="utf-8") as f:
            for i, line in enumerate(l for l in f if l.strip()):
                row = json.loads(line)
                options = normalize_agieval_options(row.get("options") or [])
                if options:
                    target, answer_type = str(row["label"]).strip(), at.MULTIPLE_CHOICE
                else:
                    target, answer_type = str(row.get("answer") or "").strip(), at.MATH
                examples.append(
                    Example(
                        benchmark,
                        task,
                        i,
                        str(row["question"]),
                        target,
                        answer_type,
                        passage=row.get("passage") or None,
                        options=options,
                    )
                )
        out[task] = examples
    return out


def take(tasks: dict[str, list[Example]], max_examples_per_task: int | None) -> dict[str, list[Example]]:
    """The first `max_examples_per_task` examples of each task (all when None)."""
    if max_examples_per_task is None:
        return tasks
    return {t: ex[:max_examples_per_task] for t, ex in tasks.items()}
