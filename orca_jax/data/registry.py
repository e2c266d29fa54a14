"""The one registry of Orca tasks and mixtures: plain-Python specs, filled by `import tasks`.

A `TaskSpec` says where a task's OpenOrca-schema rows are (glob patterns per split,
with `{data_dir}` / `{demo_data_dir}` / `{tokenizer}` placeholders filled in from the
`Locations` the reader passes in when it opens the data), which teacher wrote them,
which FLAN sub-collections it keeps and which tokenizer it uses. A `MixtureSpec` lists
tasks and, optionally, Orca's paper rates. Nothing here reads files or gin:
`orca_jax.data.pipeline` resolves the locations and the rates where it reads the data,
and `tasks.seqio_face` derives the SeqIO tasks and mixtures from these same specs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from orca_jax.data import fileio
from orca_jax.data.system_messages import COLLECTIONS
from orca_jax.demo.files import DEMO_DATA_DIR

# Orca Table 3: queries sampled per FLAN-v2 sub-collection for FLAN-5M.
PAPER_COLLECTION_SIZES: dict[str, int] = {
    "cot": 150_000,
    "niv2": 440_000,
    "flan2021": 2_500_000,
    "t0": 2_000_000,
}


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where the real data is: the values of `{data_dir}` and `{tokenizer}` (None: not set).

    `{tokenizer}` defaults to `{data_dir}/tokenizer.model`; `{demo_data_dir}` is the bundled demo data.
    """

    data_dir: str | None = None
    tokenizer: str | None = None

    def expand(self, template: str) -> str:
        """`template` with its placeholders filled; a needed location that is not set is an error."""
        values = {}
        if "{demo_data_dir}" in template:
            values["demo_data_dir"] = DEMO_DATA_DIR
        if "{data_dir}" in template or ("{tokenizer}" in template and not self.tokenizer):
            if not self.data_dir:
                raise ValueError(
                    "the Orca data location is not set: bind gin orca_data_dir.path or export ORCA_DATA_DIR"
                )
            values["data_dir"] = self.data_dir.rstrip("/")
        if "{tokenizer}" in template:
            values["tokenizer"] = self.tokenizer or values["data_dir"] + "/tokenizer.model"
        return template.format(**values) if values else template


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One Orca task: rows of some sub-collections from one teacher's files.

    Attributes:
      name: registry (and SeqIO) name.
      splits: split name -> glob patterns (may use Locations placeholders), or a function
        returning them (called when the data is opened, e.g. to read gin).
      teacher: teacher tag, e.g. 'chatgpt', 'gpt-4', 'demo-terse'.
      tokenizer: tokenizer path template.
      collections: sub-collections kept (by id prefix); None keeps all.
      unknown_prefix_collection: collection for ids with unknown prefixes (None: bad row).
      description: one line for listings.
    """

    name: str
    splits: Mapping[str, tuple[str, ...] | Callable[[], Sequence[str]]]
    teacher: str
    tokenizer: str
    collections: tuple[str, ...] | None = None
    unknown_prefix_collection: str | None = None
    description: str = ""

    def __post_init__(self):
        for c in self.collections or ():
            if c not in COLLECTIONS:
                raise ValueError(f"task {self.name}: unknown collection {c!r}")

    def patterns(self, split: str, where: Locations = Locations()) -> list[str]:
        """Resolved glob patterns of `split`."""
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; it has {sorted(self.splits)}")
        patterns = self.splits[split]
        if callable(patterns):
            patterns = patterns()
        return [where.expand(p) for p in patterns]

    def files(self, split: str, where: Locations = Locations()) -> list[str]:
        """Files of `split` (error naming the pattern if one matches nothing)."""
        return fileio.expand_patterns(self.patterns(split, where))

    def tokenizer_path(self, where: Locations = Locations()) -> str:
        return where.expand(self.tokenizer)

    def keeps(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """Tasks mixed by rate.

    Attributes:
      name: registry (and SeqIO) name.
      tasks: task names.
      paper_rates: task -> rate under mixing_rate_mode 'paper'; None: rates by example counts only.
    """

    name: str
    tasks: tuple[str, ...]
    paper_rates: Mapping[str, float] | None = None


_TASKS: dict[str, TaskSpec] = {}
_MIXTURES: dict[str, MixtureSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add a task (re-registering the same name replaces it)."""
    if spec.name in _MIXTURES:
        raise ValueError(f"{spec.name!r} is already a mixture")
    _TASKS[spec.name] = spec
    return spec


def register_mixture(spec: MixtureSpec) -> MixtureSpec:
    """Add a mixture; its tasks must be registered."""
    missing = [t for t in spec.tasks if t not in _TASKS]
    if missing:
        raise ValueError(f"mixture {spec.name!r} names unregistered tasks {missing}")
    if spec.name in _TASKS:
        raise ValueError(f"{spec.name!r} is already a task")
    _MIXTURES[spec.name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    if name not in _TASKS:
        raise ValueError(f"unknown Orca task {name!r}; registered: {sorted(_TASKS)} (did you `import tasks`?)")
    return _TASKS[name]


def get_mixture_or_task(name: str) -> TaskSpec | MixtureSpec | None:
    """The spec registered under `name`, or None."""
    return _TASKS.get(name) or _MIXTURES.get(name)


def task_names() -> list[str]:
    return sorted(_TASKS)


def mixture_names() -> list[str]:
    return sorted(_MIXTURES)


def paper_rates(task_collections: Mapping[str, str]) -> dict[str, float]:
    """task -> Orca's sub-collection size, for tasks that each hold one sub-collection."""
    return {t: float(PAPER_COLLECTION_SIZES[c]) for t, c in task_collections.items()}


def describe() -> str:
    """A listing of the registered tasks and mixtures."""
    lines = [f"task    {t.name}: {t.description}" for t in _TASKS.values()]
    lines += [f"mixture {m.name}: {', '.join(m.tasks)}" for m in _MIXTURES.values()]
    return "\n".join(lines)
