"""Helpers for the data tests: small OpenOrca-schema files and registered throwaway tasks."""

from __future__ import annotations

import itertools
import os

from orca_jax.data import registry, sources
from orca_jax.demo import files as demo_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PREFIXES = ("cot", "niv", "t0", "flan")
_counter = itertools.count()


def make_rows(n: int, start: int = 0, *, long_every: int = 0) -> list[dict]:
    """Valid rows whose question carries a unique marker 'Q<i>' and whose response 'R<i>'."""
    rows = []
    for i in range(start, start + n):
        words = " ".join(["apple", "river", "stone", "cloud"][j % 4] for j in range((i * 7) % 23 + 1))
        question = f"Q{i} please answer: {words}"
        if long_every and i % long_every == 0:
            question += " filler" * 300
        rows.append(
            {
                "id": f"{PREFIXES[i % 4]}.{i}",
                "system_prompt": "" if i % 3 == 0 else "You are an AI assistant.",
                "question": question,
                "response": f"R{i} the answer is {words[: (i * 5) % 40 + 1]}",
            }
        )
    return rows


def register_rows_task(
    directory: str,
    files: dict[str, list[dict]],
    *,
    collections: tuple[str, ...] | None = None,
    row_group_size: int = 50,
    name: str | None = None,
) -> str:
    """Write `files` (name -> rows) into `directory` and register a task reading '*' there."""
    for filename, rows in files.items():
        sources.write_rows(os.path.join(directory, filename), rows, row_group_size=row_group_size)
    name = name or f"test_task_{next(_counter)}"
    registry.register_task(
        registry.TaskSpec(
            name=name,
            splits={"train": (os.path.join(directory, "*"),)},
            teacher="test",
            tokenizer=demo_files.DEMO_TOKENIZER_PATH,
            collections=collections,
        )
    )
    return name
