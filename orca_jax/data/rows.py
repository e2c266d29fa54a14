"""Validation of raw OpenOrca-schema rows into `OrcaRow`s, with a reason for every rejection.

A row is kept when `id`, `system_prompt`, `question` and `response` are all present,
are strings, are valid UTF-8 (no lone surrogates from JSON escapes; Parquet binary
columns are decoded), the response and question are not blank, and the id's prefix
(text before the first '.') names a FLAN sub-collection (`cot.`, `niv.`, `t0.`,
`flan.`). The empty system prompt is valid: it is Orca's system message #1.

Rejections are returned as reason strings (see `BAD_ROW_REASONS`), never raised: the
pipeline counts them per reason and moves on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from orca_jax.data.sources import REQUIRED_COLUMNS, BadRow
from orca_jax.data.system_messages import COLLECTIONS, ID_PREFIX_TO_COLLECTION

MISSING_FIELD = "missing_field"
NON_STRING_FIELD = "non_string_field"
EMPTY_RESPONSE = "empty_response"
EMPTY_QUESTION = "empty_question"
INVALID_UTF8 = "invalid_utf8"
UNKNOWN_ID_PREFIX = "unknown_id_prefix"
MALFORMED_JSON = "malformed_json"
BAD_ROW_REASONS = (
    MISSING_FIELD,
    NON_STRING_FIELD,
    EMPTY_RESPONSE,
    EMPTY_QUESTION,
    INVALID_UTF8,
    UNKNOWN_ID_PREFIX,
    MALFORMED_JSON,
)


@dataclasses.dataclass(frozen=True)
class OrcaRow:
    """One valid training row: a FLAN query with its system message and teacher response."""

    id: str
    system_prompt: str
    question: str
    response: str
    collection: str  # One of system_messages.COLLECTIONS.
    teacher: str  # The source's teacher tag, e.g. "chatgpt" or "gpt-4".


def id_prefix(row_id: str) -> str:
    """'niv.242684' -> 'niv'; an id without '.' is its own prefix."""
    return row_id.split(".", 1)[0]


def collection_of_id(row_id: str, id_prefix_to_collection: Mapping[str, str] = ID_PREFIX_TO_COLLECTION) -> str | None:
    """The FLAN sub-collection an OpenOrca id belongs to, or None for an unknown prefix."""
    return id_prefix_to_collection.get(id_prefix(row_id))


def _as_text(value: Any) -> str | None:
    """A str (bytes decoded as UTF-8) or None if not text; raises UnicodeError on bad UTF-8."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, str):
        value.encode("utf-8")  # Lone surrogates (e.g. JSON "\ud800") are not valid UTF-8.
        return value
    return None


def validate_row(
    raw: Mapping[str, Any] | BadRow,
    *,
    teacher: str,
    id_prefix_to_collection: Mapping[str, str] = ID_PREFIX_TO_COLLECTION,
    unknown_prefix_collection: str | None = None,
) -> OrcaRow | str:
    """An `OrcaRow`, or the reason (one of BAD_ROW_REASONS) the raw row is rejected.

    Args:
      raw: a dict from a source reader, or a BadRow for an unparseable record.
      teacher: tag stored on the row (the source's teacher).
      id_prefix_to_collection: id prefix -> sub-collection.
      unknown_prefix_collection: sub-collection for ids with an unknown prefix
        (e.g. data from elsewhere); None rejects them as 'unknown_id_prefix'.
    """
    if isinstance(raw, BadRow):
        return raw.reason
    fields: dict[str, str] = {}
    for name in REQUIRED_COLUMNS:
        value = raw.get(name)
        if value is None:
            return MISSING_FIELD
        try:
            text = _as_text(value)
        except UnicodeError:
            return INVALID_UTF8
        if text is None:
            return NON_STRING_FIELD
        fields[name] = text
    if not fields["response"].strip():
        return EMPTY_RESPONSE
    if not fields["question"].strip():
        return EMPTY_QUESTION
    collection = collection_of_id(fields["id"], id_prefix_to_collection)
    if collection is None:
        if unknown_prefix_collection is None:
            return UNKNOWN_ID_PREFIX
        collection = unknown_prefix_collection
    if collection not in COLLECTIONS:
        raise ValueError(f"id prefix map sends {fields['id']!r} to unknown collection {collection!r}")
    return OrcaRow(
        id=fields["id"],
        system_prompt=fields["system_prompt"],
        question=fields["question"],
        response=fields["response"],
        collection=collection,
        teacher=teacher,
    )
