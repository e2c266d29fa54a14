"""Synthetic FLAN-v2-like input (JSONL or Parquet) for tests, benchmarks and dry runs.

Each collection gets tasks of very different sizes (task i has weight (i + 1)^2), so
stratified sampling visibly differs from proportional sampling. Half of the Flan2021
queries are multiple choice ("OPTIONS:" lists). A few rows exercise the input filters:
dialog rows, few-shot templates and a T0 BIG-bench task, all of which sampling skips.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orca_jax.data.system_messages import COLLECTIONS

DEFAULT_ROWS = {"cot": 60, "niv2": 300, "t0": 300, "flan2021": 400}
DEFAULT_TASKS = {"cot": 4, "niv2": 12, "t0": 8, "flan2021": 10}
SKIPPED_ROWS = 6  # each of: dialog, few-shot template, T0 BIG-bench


def _task_sizes(total: int, tasks: int) -> list[int]:
    weights = [(i + 1) ** 2 for i in range(tasks)]
    sizes = [max(1, total * w // sum(weights)) for w in weights]
    sizes[-1] += total - sum(sizes)
    return sizes


def _question(collection: str, task: int, n: int, multiple_choice: bool) -> str:
    text = f"[{collection} task {task} #{n}] Consider the statement number {n} about topic {task}."
    if multiple_choice:
        return text + " Is it true?\nOPTIONS:\n- yes\n- no\n- it is not possible to tell"
    if collection == "niv2":
        return f"Definition: Rewrite the input for task {task}.\n\nInput: {text}\n\nOutput:"
    return text + " Explain why it holds."


def synthetic_flan_rows(
    rows: Mapping[str, int] | None = None,
    tasks: Mapping[str, int] | None = None,
    markers: Mapping[str, int] | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows `id, collection, task, inputs, targets, template_type` (+ the skipped extras).

    `markers` maps a marker string (e.g. fake_teacher.LENGTH_MARKER) to how many queries,
    spread over the collections, get it appended.
    """
    rows = dict(DEFAULT_ROWS if rows is None else rows)
    tasks = dict(DEFAULT_TASKS if tasks is None else tasks)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for collection in COLLECTIONS:
        for task, size in enumerate(_task_sizes(rows.get(collection, 0), tasks[collection])):
            for n in range(size):
                mc = collection == "flan2021" and n % 2 == 0
                out.append(
                    {
                        "id": f"src-{collection}-{task}-{n}",
                        "collection": collection,
                        "task": f"{collection}_task_{task}",
                        "inputs": _question(collection, task, n, mc),
                        "targets": "yes" if mc else f"answer {n}",
                        "template_type": "zs_opt" if mc else "zs_noopt",
                    }
                )
    for n in range(SKIPPED_ROWS):
        out.append(
            {
                "id": f"dialog-{n}",
                "collection": "dialog",
                "task": "dialog_task",
                "inputs": f"Hi #{n}",
                "targets": "hello",
                "template_type": "zs_noopt",
            }
        )
        out.append(
            {
                "id": f"fs-{n}",
                "collection": "niv2",
                "task": "niv2_task_0",
                "inputs": f"Few shot #{n}",
                "targets": "x",
                "template_type": "fs_opt",
            }
        )
        out.append(
            {
                "id": f"bb-{n}",
                "collection": "t0",
                "task": "bigbench_logic_grid",
                "inputs": f"BIG-bench #{n}",
                "targets": "x",
                "template_type": "zs_noopt",
            }
        )
    usable = [r for r in out if r["id"].startswith("src-")]
    for marker, count in (markers or {}).items():
        for row in rng.sample(usable, count):
            row["inputs"] += f" {marker}"
    rng.shuffle(out)
    return out


def write_synthetic_flan(path: Path | str, fmt: str = "jsonl", **kwargs: Any) -> Path:
    """Write `synthetic_flan_rows(**kwargs)` to `path` as "jsonl" or "parquet"."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = synthetic_flan_rows(**kwargs)
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(data), path, row_group_size=128)
    elif fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as handle:
            for row in data:
                handle.write(json.dumps(row) + "\n")
    else:
        raise ValueError(f"fmt must be 'jsonl' or 'parquet', got {fmt!r}")
    return path
