"""The paper's per-collection sample sizes (Table 3) and their scaling.

FLAN-5M: CoT all of it, NIV2 440K, Flan2021 2.5M, T0 2M (Dialog skipped); FLAN-1M is a
random 1M subset of FLAN-5M. A size factor `s` scales every quota: a fixed quota `q`
becomes `round(q * s)`, and "all" (CoT) becomes `round(available * s)`, i.e. all of it at
s = 1. Every quota is capped by the rows available (Algorithm 1 stops when data runs out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from orca_jax.data.system_messages import COLLECTIONS

# None means "take every available query".
FLAN5M_QUOTAS: dict[str, int | None] = {"cot": None, "niv2": 440_000, "flan2021": 2_500_000, "t0": 2_000_000}
FLAN1M_SIZE = 1_000_000


def round_half_up(value: float) -> int:
    """Round to the nearest integer, halves upwards (no banker's rounding)."""
    return int(math.floor(value + 0.5))


def resolve_quotas(
    available: Mapping[str, int],
    size_factor: float = 1.0,
    overrides: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """The number of queries to sample from each collection."""
    if size_factor <= 0:
        raise ValueError(f"size factor must be positive, got {size_factor}")
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(COLLECTIONS)
    if unknown:
        raise ValueError(f"quota overrides for unknown collections {sorted(unknown)}; expected {COLLECTIONS}")
    quotas: dict[str, int] = {}
    for collection in COLLECTIONS:
        have = int(available.get(collection, 0))
        paper = FLAN5M_QUOTAS[collection]
        if collection in overrides:
            wanted = int(overrides[collection])
        elif paper is None:
            wanted = round_half_up(have * size_factor)
        else:
            wanted = round_half_up(paper * size_factor)
        if wanted < 0:
            raise ValueError(f"negative quota for {collection}: {wanted}")
        quotas[collection] = min(have, wanted)
    return quotas


def subset_size(size_factor: float = 1.0) -> int:
    """Size of the GPT-4 subset (FLAN-1M) at this size factor."""
    return round_half_up(FLAN1M_SIZE * size_factor)
