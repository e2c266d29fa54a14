"""The final report: counts per collection, kept-apart and failure reasons, tokens, cost.

Cost is estimated from the token counts the teacher reported, for training rows and rows
kept apart alike (both were paid for), at the given prices per 1K prompt and completion
tokens. Failures are counted by the reason of their latest record, and only while the id
is still unanswered.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from orca_jax.augment.store.durable import atomic_write_json, iter_rows
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import load_meta
from orca_jax.augment.store.schema import parse_id
from orca_jax.data.system_messages import COLLECTIONS, ID_PREFIX_TO_COLLECTION


def _collection_of(row_id: str) -> str:
    return ID_PREFIX_TO_COLLECTION[parse_id(row_id)[0]]


def build_report(
    layout: OutputLayout, price_prompt_per_1k: float = 0.0, price_completion_per_1k: float = 0.0
) -> dict[str, Any]:
    """Read the folder's outputs and summarise them."""
    meta = load_meta(layout)
    seen = {prefix: np.zeros(size, dtype=bool) for prefix, size in meta.id_space.items()}
    rows: Counter[str] = Counter()
    kept: Counter[str] = Counter()
    kept_reasons: Counter[str] = Counter()
    finish_reasons: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    teachers: Counter[str] = Counter()
    duplicates = 0
    prompt_tokens = completion_tokens = 0
    for path in layout.row_files():
        is_kept_file = path == layout.kept_apart
        for row in iter_rows(path):
            try:
                prefix, number = parse_id(row["id"])
                if seen[prefix][number]:
                    duplicates += 1
                    continue
            except (KeyError, ValueError, IndexError, TypeError):
                continue
            seen[prefix][number] = True
            collection = ID_PREFIX_TO_COLLECTION[prefix]
            if is_kept_file:
                kept[collection] += 1
                kept_reasons[str(row.get("kept_apart_reason"))] += 1
            else:
                rows[collection] += 1
                messages[str(row.get("system_message_id"))] += 1
            finish_reasons[str(row.get("finish_reason"))] += 1
            teachers[str(row.get("teacher"))] += 1
            prompt_tokens += int(row.get("prompt_tokens") or 0)
            completion_tokens += int(row.get("completion_tokens") or 0)

    latest: dict[str, dict[str, Any]] = {}
    events = 0
    if layout.failures.exists():
        for record in iter_rows(layout.failures):
            if isinstance(record.get("id"), str):
                latest[record["id"]] = record
                events += 1
    failed: Counter[str] = Counter()
    failure_reasons: Counter[str] = Counter()
    for row_id, record in latest.items():
        try:
            prefix, number = parse_id(row_id)
            if seen[prefix][number]:
                continue
        except (ValueError, IndexError):
            continue
        failed[_collection_of(row_id)] += 1
        failure_reasons[str(record.get("reason"))] += 1

    per_collection = {}
    for collection in COLLECTIONS:
        sampled = meta.counts.get(collection, 0)
        finished = rows[collection] + kept[collection] + failed[collection]
        per_collection[collection] = {
            "sampled": sampled,
            "rows": rows[collection],
            "kept_apart": kept[collection],
            "failed": failed[collection],
            "pending": sampled - finished,
        }
    totals = {
        key: sum(v[key] for v in per_collection.values())
        for key in ("sampled", "rows", "kept_apart", "failed", "pending")
    }
    cost = prompt_tokens / 1000.0 * price_prompt_per_1k + completion_tokens / 1000.0 * price_completion_per_1k
    return {
        "output_dir": str(layout.root),
        "totals": totals,
        "complete": totals["pending"] == 0 and totals["failed"] == 0,
        "per_collection": per_collection,
        "kept_apart_by_reason": dict(kept_reasons),
        "failures_by_reason": dict(failure_reasons),
        "failure_events": events,
        "duplicate_rows_ignored": duplicates,
        "finish_reasons": dict(finish_reasons),
        "system_message_ids": dict(sorted(messages.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0)),
        "teachers": dict(teachers),
        "tokens": {
            "prompt": prompt_tokens,
            "completion": completion_tokens,
            "total": prompt_tokens + completion_tokens,
        },
        "estimated_cost": {
            "total": round(cost, 6),
            "price_per_1k_prompt_tokens": price_prompt_per_1k,
            "price_per_1k_completion_tokens": price_completion_per_1k,
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a few readable lines."""
    t = report["totals"]
    lines = [
        f"augmentation report for {report['output_dir']}",
        f"  sampled {t['sampled']}: rows {t['rows']}, kept apart {t['kept_apart']}, failed {t['failed']}, pending {t['pending']}"
        + ("  (complete)" if report["complete"] else ""),
    ]
    for collection, c in report["per_collection"].items():
        lines.append(
            f"  {collection:>8}: sampled {c['sampled']}, rows {c['rows']}, kept apart {c['kept_apart']}, failed {c['failed']}, pending {c['pending']}"
        )
    if report["kept_apart_by_reason"]:
        lines.append(
            "  kept apart by reason: "
            + ", ".join(f"{k} {v}" for k, v in sorted(report["kept_apart_by_reason"].items()))
        )
    if report["failures_by_reason"]:
        lines.append(
            "  failures by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(report["failures_by_reason"].items()))
        )
    tokens, cost = report["tokens"], report["estimated_cost"]
    lines.append(f"  tokens: prompt {tokens['prompt']}, completion {tokens['completion']}, total {tokens['total']}")
    lines.append(
        f"  estimated cost: {cost['total']:.2f} (at {cost['price_per_1k_prompt_tokens']} / {cost['price_per_1k_completion_tokens']} per 1K prompt / completion tokens)"
    )
    return "\n".join(lines)


def write_report(layout: OutputLayout, report: dict[str, Any]) -> None:
    """Save the report as `report.json` (atomically)."""
    atomic_write_json(layout.report, report)
