"""Draw each query's system message from the ids its collection allows (paper Figure 6).

CoT {6, 11, 16}; NIV2 {1, 2, 5, 7, 9, 12, 13, 14, 15}; T0 {1, 2, 3, 5, 7}; Flan2021
{3, 4, 7}, or {3, 4, 7, 8, 10} for multiple-choice queries (see multiple_choice.py).
The draw is uniform over the allowed ids, as in both public reimplementations; the
paper's exact per-id frequencies are not known.
"""

from __future__ import annotations

from orca_jax.augment.multiple_choice import is_multiple_choice
from orca_jax.data.system_messages import allowed_system_message_ids


def choose_system_message(collection: str, question: str, u: float) -> tuple[int, bool]:
    """`(system message id, is multiple choice)` for a query, given a uniform `u` in [0, 1)."""
    if not 0.0 <= u < 1.0:
        raise ValueError(f"u must lie in [0, 1), got {u}")
    multiple_choice = is_multiple_choice(question)
    allowed = allowed_system_message_ids(collection, multiple_choice=multiple_choice)
    return allowed[int(u * len(allowed))], multiple_choice
