"""The manifest: the sampled queries of one output folder, written once and atomically.

`manifest.jsonl` holds one entry per query (`id, source_id, collection, task,
system_message_id, multiple_choice, question, targets`) in processing order, and
`manifest.meta.json` its counts and sampling parameters. The manifest is written to a
temporary file and renamed; the meta file is renamed last and is the commit point: a
manifest without meta (a crash during sampling) does not count, and a committed one is
never resampled, so a restarted run works on exactly the same queries.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np

from orca_jax.augment.store.durable import atomic_write_json, atomic_writer, read_json
from orca_jax.augment.store.layout import OutputLayout
from orca_jax.augment.store.schema import COLLECTION_TO_PREFIX, parse_id
from orca_jax.data.system_messages import COLLECTIONS, ID_PREFIX_TO_COLLECTION, system_message

FORMAT_VERSION = 1
_ID_PREFIX = re.compile(rb'^\{"id": ?"([^"\\]+)"')


class ManifestError(RuntimeError):
    """The manifest is missing, incomplete, or already there when it should not be."""


@dataclass(frozen=True)
class ManifestEntry:
    """One sampled query and the system message drawn for it."""

    id: str
    source_id: str
    collection: str
    task: str
    system_message_id: int
    multiple_choice: bool
    question: str
    targets: str

    @property
    def system_prompt(self) -> str:
        return system_message(self.system_message_id)

    def to_line(self) -> bytes:
        fields = {
            "id": self.id,
            "source_id": self.source_id,
            "collection": self.collection,
            "task": self.task,
            "system_message_id": self.system_message_id,
            "multiple_choice": self.multiple_choice,
            "question": self.question,
            "targets": self.targets,
        }
        return (json.dumps(fields, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_line(cls, line: bytes | str) -> ManifestEntry:
        return cls(**json.loads(line))


@dataclass
class ManifestMeta:
    """Counts and parameters of a committed manifest."""

    rows: int
    manifest_bytes: int
    counts: dict[str, int]
    id_space: dict[str, int]
    system_message_counts: dict[str, int]
    sampling: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    created: str = ""
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestMeta:
        return cls(**data)


def has_manifest(layout: OutputLayout) -> bool:
    """True if the folder holds a committed manifest."""
    return layout.manifest_meta.exists() and layout.manifest.exists()


def load_meta(layout: OutputLayout) -> ManifestMeta:
    """The committed manifest's meta; checks that the manifest file matches it."""
    if not layout.manifest_meta.exists():
        raise ManifestError(f"no committed manifest in {layout.root}; run `sample` first")
    meta = ManifestMeta.from_dict(read_json(layout.manifest_meta))
    if meta.format_version != FORMAT_VERSION:
        raise ManifestError(f"manifest format {meta.format_version} is not supported (expected {FORMAT_VERSION})")
    if not layout.manifest.exists() or layout.manifest.stat().st_size != meta.manifest_bytes:
        raise ManifestError(f"{layout.manifest} does not match {layout.manifest_meta}; the manifest is damaged")
    return meta


def iter_entries(layout: OutputLayout) -> Iterator[ManifestEntry]:
    """The manifest's entries in processing order."""
    with open(layout.manifest, "rb") as handle:
        for line in handle:
            if line.strip():
                yield ManifestEntry.from_line(line)


class ManifestWriter:
    """Accumulate manifest lines in a temporary file, then commit manifest and meta."""

    def __init__(self, layout: OutputLayout, force: bool = False) -> None:
        if has_manifest(layout) and not force:
            raise ManifestError(
                f"{layout.root} already has a manifest; it is never resampled (use a new folder or --force)"
            )
        if layout.row_files() or layout.failures.exists():
            raise ManifestError(
                f"{layout.root} already holds teacher outputs; their ids belong to its manifest (use a new folder)"
            )
        self.layout = layout
        self.counts: Counter[str] = Counter()
        self.messages: Counter[str] = Counter()
        self.id_space: dict[str, int] = {p: 0 for p in COLLECTION_TO_PREFIX.values()}
        self.rows = 0
        self._context = atomic_writer(layout.manifest, "wb")
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> ManifestWriter:
        if self.layout.manifest_meta.exists():
            self.layout.manifest_meta.unlink()  # --force: uncommit before rewriting
        self._handle = self._context.__enter__()
        return self

    def write_line(self, line: bytes, collection: str, system_message_id: int, row_id: str) -> None:
        """Append one serialized entry."""
        assert self._handle is not None
        self._handle.write(line)
        prefix, number = parse_id(row_id)
        self.id_space[prefix] = max(self.id_space[prefix], number + 1)
        self.counts[collection] += 1
        self.messages[str(system_message_id)] += 1
        self.rows += 1

    def write(self, entry: ManifestEntry) -> None:
        self.write_line(entry.to_line(), entry.collection, entry.system_message_id, entry.id)

    def commit(
        self, sampling: dict[str, Any], parent: str | None = None, id_space: dict[str, int] | None = None
    ) -> ManifestMeta:
        """Rename the manifest into place, then write the meta file (the commit point)."""
        assert self._handle is not None
        self._context.__exit__(None, None, None)
        self._handle = None
        meta = ManifestMeta(
            rows=self.rows,
            manifest_bytes=self.layout.manifest.stat().st_size,
            counts={c: self.counts.get(c, 0) for c in COLLECTIONS},
            id_space=dict(id_space or self.id_space),
            system_message_counts=dict(sorted(self.messages.items(), key=lambda kv: int(kv[0]))),
            sampling=sampling,
            parent=parent,
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        )
        atomic_write_json(self.layout.manifest_meta, asdict(meta))
        return meta

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._handle is not None:  # not committed: discard the temporary file
            self._context.__exit__(exc_type or RuntimeError, exc or RuntimeError("manifest not committed"), tb)
            self._handle = None


def write_subset(
    source: OutputLayout, target: OutputLayout, size: int, seed: int = 0, force: bool = False
) -> ManifestMeta:
    """A uniformly random subset of `source`'s manifest (same ids, same system messages).

    This is how FLAN-1M (GPT-4) is drawn from FLAN-5M; the ids stay those of the parent,
    so responses of the two teachers can be joined by id.
    """
    parent = load_meta(source)
    if not 0 <= size <= parent.rows:
        raise ManifestError(f"subset size {size} is not within 0..{parent.rows}")
    chosen = np.zeros(parent.rows, dtype=bool)
    chosen[np.random.default_rng([seed, 4]).choice(parent.rows, size=size, replace=False)] = True
    with ManifestWriter(target, force=force) as writer:
        with open(source.manifest, "rb") as handle:
            for row, line in enumerate(handle):
                if chosen[row]:
                    match = _ID_PREFIX.match(line)
                    if match is None:
                        raise ManifestError(f"{source.manifest}:{row + 1} does not start with an id")
                    row_id = match.group(1).decode()
                    collection = ID_PREFIX_TO_COLLECTION[parse_id(row_id)[0]]
                    message = json.loads(line)["system_message_id"]
                    writer.write_line(line, collection, message, row_id)
        sampling = {"subset_of": str(source.root.resolve()), "size": size, "seed": seed, "parent_rows": parent.rows}
        return writer.commit(sampling, parent=str(source.root.resolve()), id_space=parent.id_space)
