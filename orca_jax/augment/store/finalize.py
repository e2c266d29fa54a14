"""Write the finished rows as Parquet (OpenOrca schema plus provenance) under `final/`.

`final/train-XXXXX-of-NNNNN.parquet` holds the training rows (first row of each id only),
`final/kept_apart.parquet` the rows kept apart, and `final/report.json` (and `report.json`) the report. The
folder is built under a temporary name and swapped in, so a crash never leaves half a
`final/`. Refuses while queries are pending or failed unless `allow_incomplete`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orca_jax.augment.store.durable import atomic_write_json, fsync_dir, iter_rows
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.manifest import load_meta
from orca_jax.augment.store.output_report import build_report, write_report
from orca_jax.augment.store.schema import KEPT_APART_SCHEMA, ROW_SCHEMA, parse_id
from orca_jax.augment.store.state import repair_outputs

_BATCH = 10_000


class IncompleteOutput(RuntimeError):
    """Queries are still pending or failed."""


def _unique_rows(paths: Iterable[Path], seen: dict[str, np.ndarray]) -> Iterator[dict[str, Any]]:
    for path in paths:
        for row in iter_rows(path):
            try:
                prefix, number = parse_id(row["id"])
                if seen[prefix][number]:
                    continue
            except (KeyError, ValueError, IndexError, TypeError):
                continue
            seen[prefix][number] = True
            yield row


def _write_parquet(
    rows: Iterable[dict[str, Any]], schema: pa.Schema, folder: Path, stem: str, rows_per_file: int | None
) -> list[Path]:
    """Write `rows` to `stem-00000.parquet`, ... (or `stem.parquet` without a limit)."""
    files: list[Path] = []
    writer: pq.ParquetWriter | None = None
    in_file = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer, in_file
        if not batch:
            return
        if writer is None:
            path = folder / (f"{stem}-{len(files):05d}.parquet" if rows_per_file else f"{stem}.parquet")
            files.append(path)
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
        in_file += len(batch)
        batch.clear()
        if rows_per_file and in_file >= rows_per_file:
            writer.close()
            writer, in_file = None, 0

    for row in rows:
        batch.append(row)
        if len(batch) >= _BATCH or (rows_per_file and in_file + len(batch) >= rows_per_file):
            flush()
    flush()
    if writer is not None:
        writer.close()
    return files


def finalize(
    layout: OutputLayout,
    rows_per_file: int = 500_000,
    allow_incomplete: bool = False,
    price_prompt_per_1k: float = 0.0,
    price_completion_per_1k: float = 0.0,
) -> dict[str, Any]:
    """Write `final/` and return the report."""
    with layout.lock():
        meta = load_meta(layout)
        repair_outputs(layout)
        report = build_report(layout, price_prompt_per_1k, price_completion_per_1k)
        if not report["complete"] and not allow_incomplete:
            t = report["totals"]
            raise IncompleteOutput(
                f"{t['pending']} queries pending and {t['failed']} failed; run again (with --retry-failures), or finalize with --allow-incomplete"
            )
        staging = layout.root / "final.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        seen = {prefix: np.zeros(size, dtype=bool) for prefix, size in meta.id_space.items()}
        parts = _write_parquet(_unique_rows(layout.data_shards(), seen), ROW_SCHEMA, staging, "train", rows_per_file)
        for i, part in enumerate(parts):
            part.rename(staging / f"train-{i:05d}-of-{len(parts):05d}.parquet")
        if layout.kept_apart.exists():
            _write_parquet(_unique_rows([layout.kept_apart], seen), KEPT_APART_SCHEMA, staging, "kept_apart", None)
        atomic_write_json(staging / "report.json", report)
        fsync_dir(staging)
        old = layout.root / "final.old"
        shutil.rmtree(old, ignore_errors=True)
        if layout.final_dir.exists():
            os.rename(layout.final_dir, old)
        os.rename(staging, layout.final_dir)
        fsync_dir(layout.root)
        shutil.rmtree(old, ignore_errors=True)
        write_report(layout, report)
        return report
