"""Each query's system message: drawn from the ids its collection allows (paper Figure 6).

CoT {6, 11, 16}; NIV2 {1, 2, 5, 7, 9, 12, 13, 14, 15}; T0 {1, 2, 3, 5, 7}; Flan2021
{3, 4, 7}, or {3, 4, 7, 8, 10} for multiple-choice queries
(docs/orca_facts.md#1b-system-messages-per-collection). The draw is uniform over the
allowed ids, as in both public reimplementations; the paper's exact per-id frequencies are
not known.

Whether a query is multiple choice: the paper uses system messages #8 and #10 only for
multiple-choice queries (section 3.1.1), but FLAN rows carry no such flag, so it is read
off the text. The rule: a query is multiple choice if it has

1. an options header followed by a colon (any letter case): "Options:", "OPTIONS:",
   "Options are:", "Choices:", "Answer choices:", "Possible answers:", "Available
   options/choices:", or "Choose/Select/Pick" + optional "your/the/one/an" + optional
   "answer/option" + optional "from" + optional "the following" + ":" (so "Choose your
   answer from:", "Select from:", "Pick one:"); or "Choose/Select/Pick from the
   following." ending in a period; or
2. at least two lettered options in order: "(A) ... (B)", "(a) ... (b)", "[A] ... [B]",
   or lines starting "A) ... B)", "A. ... B.", "A: ... B:" (either letter case).

This covers FLAN-v2's option templates ("OPTIONS:" followed by "- " lines, "Choose your
answer from:", "Select from: (1). ...", "Pick from: (A). ...", "Options are: (i) ...").
Plain bullet lists without a header are not taken as options.
"""

from __future__ import annotations

import re

from orca_jax.data.system_messages import allowed_system_message_ids

_HEADER_COLON = re.compile(
    r"(?i)\b(?:"
    r"options(?:\s+are)?"
    r"|choices(?:\s+are)?"
    r"|answer\s+(?:choices|options)"
    r"|possible\s+answers"
    r"|available\s+(?:options|choices)"
    r"|(?:choose|select|pick)(?:\s+(?:your|the|one|an))?(?:\s+(?:answer|option))?(?:\s+from)?(?:\s+the\s+following)?"
    r")\s*:"
)
_HEADER_PERIOD = re.compile(r"(?i)\b(?:choose|select|pick)\s+(?:\w+\s+)?from\s+the\s+following\s*[.:]")
_LETTERED = (
    re.compile(r"\(A\)[\s\S]*?\(B\)"),
    re.compile(r"\(a\)[\s\S]*?\(b\)"),
    re.compile(r"\[A\][\s\S]*?\[B\]"),
    re.compile(r"\[a\][\s\S]*?\[b\]"),
    re.compile(r"(?m)^[ \t]*A[).:][ \t][\s\S]*?^[ \t]*B[).:][ \t]"),
    re.compile(r"(?m)^[ \t]*a[).:][ \t][\s\S]*?^[ \t]*b[).:][ \t]"),
)


def is_multiple_choice(text: str) -> bool:
    """True if `text` looks like a multiple-choice query (rule in the module docstring)."""
    if _HEADER_COLON.search(text) or _HEADER_PERIOD.search(text):
        return True
    return any(pattern.search(text) for pattern in _LETTERED)


def choose_system_message(collection: str, question: str, u: float) -> tuple[int, bool]:
    """`(system message id, is multiple choice)` for a query, given a uniform `u` in [0, 1)."""
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must lie in [0, 1), got {u}")
    multiple_choice = is_multiple_choice(question)
    allowed = allowed_system_message_ids(collection, multiple_choice=multiple_choice)
    return allowed[int(u * len(allowed))], multiple_choice
