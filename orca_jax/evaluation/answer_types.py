"""Answer types and how a task's type is read off its targets.

Every example is scored by the extractor of its answer type (extraction.py). A BBH-format
task gets its type from its targets (`classify_targets`); AGIEval tasks are
`multiple_choice` when they have options and `math` otherwise (the cloze task).

The public BBH tasks classify as follows (checked against all 6,511 targets):

| answer type       | BBH tasks                                                                 | targets look like            |
|-------------------|---------------------------------------------------------------------------|------------------------------|
| `multiple_choice` | date_understanding, disambiguation_qa, geometric_shapes, hyperbaton,       | `(A)` .. `(R)`               |
|                   | logical_deduction_{three,five,seven}_objects, movie_recommendation,       |                              |
|                   | penguins_in_a_table, reasoning_about_colored_objects, ruin_names,         |                              |
|                   | salient_translation_error_detection, snarks, temporal_sequences,           |                              |
|                   | tracking_shuffled_objects_{three,five,seven}_objects                       |                              |
| `label`           | boolean_expressions (True/False), causal_judgement, navigate, web_of_lies  | one word of a closed set     |
|                   | (Yes/No), sports_understanding (yes/no), formal_fallacies (valid/invalid) |                              |
| `number`          | multistep_arithmetic_two, object_counting                                  | `-35`, `8`                   |
| `word_list`       | word_sorting                                                               | `apple bear cat`             |
| `dyck`            | dyck_languages                                                             | `] ) >`                      |

Three targets in the public files are option *texts*, not letters, because BBH split those
options on a comma (movie_recommendation: "Monsters, Inc"; ruin_names: "dearth, wind, &
fire", "rita, sue and bob poo"). Such an example is scored as `free_text` (normalised exact
match), so the gold answer still scores as correct.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MULTIPLE_CHOICE = "multiple_choice"
LABEL = "label"
NUMBER = "number"
WORD_LIST = "word_list"
DYCK = "dyck"
MATH = "math"
FREE_TEXT = "free_text"
ANSWER_TYPES = (MULTIPLE_CHOICE, LABEL, NUMBER, WORD_LIST, DYCK, MATH, FREE_TEXT)

LETTER_TARGET = re.compile(r"^\(([A-Z])\)$")
_NUMBER_TARGET = re.compile(r"^-?\d+(?:\.\d+)?$")
_DYCK_TARGET = re.compile(r"^[\s()\[\]{}<>]+$")
_WORD = re.compile(r"^[A-Za-z][\w'-]*$")

# A label set seen only in part (e.g. a two-example subset whose targets are all "True")
# still gets its complement, so the extractor knows both answers.
LABEL_COMPLEMENTS = {"true": "false", "false": "true", "yes": "no", "no": "yes", "valid": "invalid", "invalid": "valid"}
MAX_LABELS = 4


def classify_targets(targets: Sequence[str]) -> str:
    """The answer type of a task whose gold answers are `targets` (see the module table)."""
    targets = [t.strip() for t in targets]
    if not targets:
        return FREE_TEXT
    if sum(bool(LETTER_TARGET.match(t)) for t in targets) >= 0.9 * len(targets):
        return MULTIPLE_CHOICE
    if all(_NUMBER_TARGET.match(t) for t in targets):
        return NUMBER
    if all(_DYCK_TARGET.match(t) for t in targets):
        return DYCK
    distinct = {t.lower() for t in targets}
    if len(distinct) <= MAX_LABELS and all(_WORD.match(t) for t in distinct) and len(targets) > len(distinct):
        return LABEL
    if distinct <= set(LABEL_COMPLEMENTS):
        return LABEL
    tokens = [t.split() for t in targets]
    if all(tok == sorted(tok) for tok in tokens) and sum(len(tok) > 1 for tok in tokens) >= len(tokens) / 2:
        return WORD_LIST
    return FREE_TEXT


def label_set(targets: Sequence[str]) -> tuple[str, ...]:
    """The closed answer set of a `label` task: its distinct targets plus known complements."""
    labels: dict[str, str] = {}
    for t in targets:
        labels.setdefault(t.strip().lower(), t.strip())
    for low, original in list(labels.items()):
        other = LABEL_COMPLEMENTS.get(low)
        if other and other not in labels:
            labels[other] = other.capitalize() if original[:1].isupper() else other
    return tuple(sorted(labels.values(), key=str.lower))
