"""The output row schema (OpenOrca columns plus provenance) and OpenOrca-style ids.

A training row is `id, system_prompt, question, response` (the OpenOrca schema that the
SeqIO tasks read) followed by `collection, teacher, system_message_id, finish_reason,
prompt_tokens, completion_tokens`. Rows kept apart from the training set (truncated or
filtered) add `kept_apart_reason`. Ids are `<prefix>.<n>` with prefix cot/niv/t0/flan.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from orca_jax.data.sources import OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from orca_jax.data.system_messages import COLLECTIONS, ID_PREFIX_TO_COLLECTION

COLLECTION_TO_PREFIX: dict[str, str] = {c: p for p, c in ID_PREFIX_TO_COLLECTION.items()}
PREFIXES: tuple[str, ...] = tuple(COLLECTION_TO_PREFIX[c] for c in COLLECTIONS)

# The columns the data pipeline reads (OpenOrca's four, then the tool's extras), so that
# what this tool writes is what the SeqIO tasks accept.
OPENORCA_FIELDS: tuple[str, ...] = REQUIRED_COLUMNS
ROW_FIELDS: tuple[str, ...] = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
KEPT_APART_FIELDS: tuple[str, ...] = ROW_FIELDS + ("kept_apart_reason",)

ROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("system_prompt", pa.string()),
        pa.field("question", pa.string()),
        pa.field("response", pa.string()),
        pa.field("collection", pa.string()),
        pa.field("teacher", pa.string()),
        pa.field("system_message_id", pa.int32()),
        pa.field("finish_reason", pa.string()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
    ]
)
KEPT_APART_SCHEMA = ROW_SCHEMA.append(pa.field("kept_apart_reason", pa.string()))


def make_id(collection: str, n: int) -> str:
    """The OpenOrca id of the `n`-th sampled query of `collection`, e.g. `niv.42`."""
    return f"{COLLECTION_TO_PREFIX[collection]}.{n}"


def parse_id(row_id: str) -> tuple[str, int]:
    """`(prefix, n)` of an OpenOrca id; raises ValueError on anything else."""
    prefix, sep, number = row_id.partition(".")
    if not sep or prefix not in ID_PREFIX_TO_COLLECTION or not number.isdigit():
        raise ValueError(f"not an OpenOrca id: {row_id!r}")
    return prefix, int(number)


def make_row(
    *,
    row_id: str,
    system_prompt: str,
    question: str,
    response: str,
    collection: str,
    teacher: str,
    system_message_id: int,
    finish_reason: str | None,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    kept_apart_reason: str | None = None,
) -> dict[str, Any]:
    """One output row with the fields in schema order."""
    row: dict[str, Any] = {
        "id": row_id,
        "system_prompt": system_prompt,
        "question": question,
        "response": response,
        "collection": collection,
        "teacher": teacher,
        "system_message_id": system_message_id,
        "finish_reason": finish_reason,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }
    if kept_apart_reason is not None:
        row["kept_apart_reason"] = kept_apart_reason
    return row
