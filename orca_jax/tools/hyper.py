"""Tiny hyperparameter-sweep algebra in the spirit of xmanager's / T5X's `hyper` module.

A sweep is a list of points; a point is a dict {gin binding name: Python value}.

    from orca_jax.tools import hyper
    hyper.sweep("LEARNING_RATE", [1e-5, 2e-5])
        # [{'LEARNING_RATE': 1e-05}, {'LEARNING_RATE': 2e-05}]
    hyper.product([hyper.sweep("LEARNING_RATE", [1e-5, 2e-5]),
                   hyper.zipit([hyper.sweep("BATCH_SIZE", [64, 128]),
                                hyper.sweep("MICROBATCHES", [1, 2])])])
        # 4 points: every learning rate with (64, 1) and with (128, 2)
    hyper.chainit([hyper.fixed("INIT_FROM", "a"), hyper.fixed("INIT_FROM", "b")])  # 2 points

* `sweep(name, values)`: one point per value.
* `fixed(name, value)`: one point (a constant to combine with `product`).
* `product(sweeps)`: Cartesian product; the first sweep varies slowest.
* `zipit(sweeps)`: element-wise; the sweeps must have the same length.
* `chainit(sweeps)`: concatenation.

Values become gin literals with `gin_literal`: numbers and booleans as Python writes
them (`1e-05`, `True`), None as `None`, strings quoted (`"orca_stage1"`), lists/tuples
element-wise; `raw("@my_fn()")` passes gin text through unchanged (references,
macros, configurable calls).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

Point = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class raw:  # noqa: N801  (reads like a function in sweep files)
    """A gin expression passed through verbatim, e.g. raw("@orca_jax.optimizers.adamw()")."""

    text: str

    def __str__(self) -> str:
        return self.text


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or any(c.isspace() or c == "=" for c in name):
        raise ValueError(f"bad gin binding name: {name!r}")
    return name


def sweep(name: str, values: Iterable[Any]) -> list[Point]:
    _check_name(name)
    values = list(values)
    if not values:
        raise ValueError(f"sweep({name!r}, ...) has no values")
    return [{name: v} for v in values]


def fixed(name: str, value: Any) -> list[Point]:
    return sweep(name, [value])


def _merge(points: Sequence[Point]) -> Point:
    out: Point = {}
    for p in points:
        clash = set(out) & set(p)
        if clash:
            raise ValueError(f"binding(s) {sorted(clash)} set twice in one point")
        out.update(p)
    return out


def product(sweeps: Sequence[Sequence[Point]]) -> list[Point]:
    sweeps = [list(s) for s in sweeps]
    if not sweeps:
        return [{}]
    return [_merge(combo) for combo in itertools.product(*sweeps)]


def zipit(sweeps: Sequence[Sequence[Point]]) -> list[Point]:
    sweeps = [list(s) for s in sweeps]
    lengths = {len(s) for s in sweeps}
    if len(lengths) > 1:
        raise ValueError(f"zipit: sweeps have different lengths {[len(s) for s in sweeps]}")
    return [_merge(combo) for combo in zip(*sweeps)]


def chainit(sweeps: Sequence[Sequence[Point]]) -> list[Point]:
    return [dict(p) for s in sweeps for p in s]


def gin_literal(value: Any) -> str:
    """A Python value as gin text (what follows `--gin.NAME=`)."""
    if isinstance(value, raw):
        return value.text
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        inner = ", ".join(gin_literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(gin_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{gin_literal(k)}: {gin_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no gin literal for {type(value).__name__}: {value!r}")
