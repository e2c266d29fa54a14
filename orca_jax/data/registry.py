"""Plain-Python registry of Orca tasks and mixtures (what `tasks/` registers besides SeqIO).

A `TaskSpec` says where a task's OpenOrca-schema rows are (glob patterns per
split, with `{data_dir}` / `{demo_data_dir}` placeholders filled in when the data
is opened, so gin can set the location after registration), which teacher wrote
them, which FLAN sub-collections it keeps and which tokenizer it uses. A
`MixtureSpec` lists tasks with rates. `pipeline.make_batch_iterator` reads these
specs directly, without TensorFlow; `tasks/` also registers the same names as
SeqIO tasks and mixtures for T5X-style tooling.

Data location (first that is set wins):
  1. gin: `orca_data_dir.path = '...'`
  2. gin macro: `ORCA_DATA_DIR = 'gs://bucket/openorca'`
  3. environment variable ORCA_DATA_DIR
The LLaMA tokenizer: `orca_tokenizer_path.path`, macro/env ORCA_TOKENIZER_PATH,
else `{data_dir}/tokenizer.model`.

Mixing rates (gin `mixing_rate_mode.mode`): 'paper' uses Orca's FLAN-5M
sub-collection sizes (CoT 150K, NIV2 440K, Flan2021 2.5M, T0 2M; FLAN-1M is a
uniform subset, so the same proportions); 'num_examples' counts the rows of each
task in its files (ids only, cached per process).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence

import gin

from orca_jax.data import fileio, sources
from orca_jax.demo.files import DEMO_DATA_DIR
from orca_jax.data.rows import collection_of_id
from orca_jax.data.system_messages import COLLECTIONS, ID_PREFIX_TO_COLLECTION

# Orca Table 3: queries sampled per FLAN-v2 sub-collection for FLAN-5M.
PAPER_COLLECTION_SIZES: dict[str, int] = {
    "cot": 150_000,
    "niv2": 440_000,
    "flan2021": 2_500_000,
    "t0": 2_000_000,
}
RATE_MODES = ("paper", "num_examples")


def _gin_macro(name: str) -> str | None:
    try:
        return gin.query_parameter(f"%{name}")
    except ValueError:
        return None


@gin.configurable
def orca_data_dir(path: str | None = None) -> str:
    """Directory (local or gs://) holding the OpenOrca-schema files; see module doc for the lookup order."""
    value = path or _gin_macro("ORCA_DATA_DIR") or os.environ.get("ORCA_DATA_DIR")
    if not value:
        raise ValueError(
            "the Orca data location is not set: define the gin macro ORCA_DATA_DIR, bind "
            "orca_data_dir.path, or export ORCA_DATA_DIR"
        )
    return value.rstrip("/")


@gin.configurable
def orca_tokenizer_path(path: str | None = None) -> str:
    """The LLaMA SentencePiece model for the real Orca tasks; see module doc for the lookup order."""
    value = path or _gin_macro("ORCA_TOKENIZER_PATH") or os.environ.get("ORCA_TOKENIZER_PATH")
    return value or orca_data_dir() + "/tokenizer.model"


@gin.configurable
def mixing_rate_mode(mode: str = "paper") -> str:
    """'paper' (Orca's sub-collection sizes) or 'num_examples' (rows actually present)."""
    if mode not in RATE_MODES:
        raise ValueError(f"mixing_rate_mode must be one of {RATE_MODES}, got {mode!r}")
    return mode


def expand_placeholders(template: str) -> str:
    """Fill {data_dir}, {demo_data_dir} and {tokenizer} in a path template (each resolved only if used)."""
    values = {}
    if "{data_dir}" in template:
        values["data_dir"] = orca_data_dir()
    if "{demo_data_dir}" in template:
        values["demo_data_dir"] = DEMO_DATA_DIR
    if "{tokenizer}" in template:
        values["tokenizer"] = orca_tokenizer_path()
    return template.format(**values) if values else template


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One Orca task: rows of some sub-collections from one teacher's files.

    Attributes:
      name: registry (and SeqIO) name.
      splits: split name -> glob patterns (may use placeholders, see expand_placeholders),
        or a function returning them (called when the data is opened, e.g. to read gin).
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

    def patterns(self, split: str) -> list[str]:
        """Resolved glob patterns of `split`."""
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; it has {sorted(self.splits)}")
        patterns = self.splits[split]
        if callable(patterns):
            patterns = patterns()
        return [expand_placeholders(p) for p in patterns]

    def files(self, split: str) -> list[str]:
        """Files of `split` (error naming the pattern if one matches nothing)."""
        return fileio.expand_patterns(self.patterns(split))

    def tokenizer_path(self) -> str:
        return expand_placeholders(self.tokenizer)

    def keeps(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """Tasks mixed by rate.

    Attributes:
      name: registry (and SeqIO) name.
      tasks: task names.
      paper_rates: task -> rate under mixing_rate_mode 'paper'; None means 'num_examples' only.
    """

    name: str
    tasks: tuple[str, ...]
    paper_rates: Mapping[str, float] | None = None

    def rates(self, split: str = "train", mode: str | None = None) -> dict[str, float]:
        """task -> mixing rate under `mode` (gin's mixing_rate_mode() when None)."""
        mode = mixing_rate_mode() if mode is None else mode
        if mode == "paper" and self.paper_rates is not None:
            return {t: float(self.paper_rates[t]) for t in self.tasks}
        return {t: float(num_examples(get_task(t), split)) for t in self.tasks}


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


def num_examples(spec: TaskSpec, split: str = "train") -> int:
    """Rows of `spec` in `split`: rows whose id prefix maps to a kept sub-collection."""
    return _count(tuple(spec.files(split)), spec.collections, spec.unknown_prefix_collection)


@functools.cache
def _count(paths: tuple[str, ...], collections: tuple[str, ...] | None, unknown: str | None) -> int:
    total = 0
    for unit in sources.list_units(paths):
        for row_id in sources.iter_unit_ids(unit):
            if not isinstance(row_id, str):
                continue
            collection = collection_of_id(row_id, ID_PREFIX_TO_COLLECTION) or unknown
            if collection is not None and (collections is None or collection in collections):
                total += 1
    return total


def describe() -> str:
    """A listing of the registered tasks and mixtures."""
    lines = [f"task    {t.name}: {t.description}" for t in _TASKS.values()]
    lines += [f"mixture {m.name}: {', '.join(m.tasks)}" for m in _MIXTURES.values()]
    return "\n".join(lines)
