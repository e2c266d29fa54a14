"""The two synthetic teachers and the answer-only rendering, over the same queries.

* assistant (stage one, the ChatGPT stand-in, teacher tag 'demo-assistant'): a shorter
  trace that skips steps (`Problem.brief`), and a wrong final answer (`Problem.wrong`) for a
  stated fraction ASSISTANT_ERROR_RATE of queries, drawn per query from a seeded hash.
* expert (stage two, the GPT-4 stand-in, 'demo-expert'): the complete, correct trace.
* answer only ('demo-answer-only'): the expert's answer alone, in BBH's format (style
  imitation without explanations: the Vicuna-like baseline).
"""

from __future__ import annotations

import hashlib

from orca_jax.demo.families import Problem

ASSISTANT = "demo-assistant"
EXPERT = "demo-expert"
ANSWER_ONLY = "demo-answer-only"
TEACHERS = (ASSISTANT, EXPERT, ANSWER_ONLY)
ASSISTANT_ERROR_RATE = 0.2


def assistant_is_wrong(query_id: str, rate: float = ASSISTANT_ERROR_RATE) -> bool:
    """Whether the assistant answers query `query_id` wrongly (a fixed fraction `rate` of ids)."""
    digest = hashlib.blake2b(f"assistant-error|{query_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < rate


def respond(teacher: str, problem: Problem, query_id: str) -> str:
    """`teacher`'s response to `problem` asked as query `query_id`."""
    if teacher == EXPERT:
        return problem.explained()
    if teacher == ASSISTANT:
        return problem.explained(problem.brief, problem.wrong if assistant_is_wrong(query_id) else problem.target)
    if teacher == ANSWER_ONLY:
        return problem.target
    raise ValueError(f"unknown demo teacher {teacher!r}; expected one of {TEACHERS}")
