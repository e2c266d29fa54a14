"""Decide from a query's text whether it is a multiple-choice question.

The paper uses system messages #8 and #10 only for multiple-choice queries (section 3.1.1),
but FLAN rows carry no such flag, so it is read off the text. The rule: a query is
multiple choice if it has

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
