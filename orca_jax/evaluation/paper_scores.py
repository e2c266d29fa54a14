"""Scores reported in the Orca paper, from docs/orca_facts.md#5-reported-scores (5a, 5b).

`verified=False` marks cells that the fact sheet calls UNVERIFIED (recalled, and checked
only by arithmetic). results.md shows those cells with a dagger. The paper's per-task BBH
scores were not found, so only the 23-task BBH average is listed.
"""

from __future__ import annotations

import dataclasses

PAPER_MODELS: tuple[str, ...] = ("Orca-13B", "ChatGPT", "GPT-4", "Vicuna-13B")


@dataclasses.dataclass(frozen=True)
class PaperScore:
    value: float
    """Accuracy in percent."""
    verified: bool


def _row(orca, chatgpt, gpt4, vicuna, verified=(False, False, False, False)):
    return {m: PaperScore(v, ok) for m, v, ok in zip(PAPER_MODELS, (orca, chatgpt, gpt4, vicuna), verified)}


# docs/orca_facts.md#5b-agieval-per-task: every per-task cell is UNVERIFIED except SAT-Math for Orca-13B and ChatGPT.
AGIEVAL_TASKS: dict[str, tuple[str, dict[str, PaperScore]]] = {
    "aqua-rat": ("AQuA-RAT", _row(27.9, 31.9, 40.6, 20.1)),
    "logiqa-en": ("LogiQA", _row(35.2, 35.0, 49.3, 29.8)),
    "lsat-ar": ("LSAT-AR", _row(21.3, 24.4, 35.2, 20.4)),
    "lsat-lr": ("LSAT-LR", _row(43.9, 52.6, 80.6, 32.6)),
    "lsat-rc": ("LSAT-RC", _row(57.3, 65.4, 85.9, 32.7)),
    "sat-math": ("SAT-Math", _row(32.3, 42.7, 64.6, 28.6, verified=(True, True, False, False))),
    "sat-en": ("SAT-English", _row(76.7, 81.1, 88.8, 44.2)),
    "sat-en-without-passage": ("SAT-English (w/o passage)", _row(38.8, 44.2, 51.0, 26.2)),
}
# docs/orca_facts.md#5a-aggregates: Orca-13B, ChatGPT, Vicuna-13B [S2]; GPT-4 62.0 UNVERIFIED.
AGIEVAL_AVERAGE = _row(41.7, 47.2, 62.0, 29.3, verified=(True, True, False, True))
# docs/orca_facts.md#5a-aggregates: all four [S2] (23 tasks, 5,511 examples).
BBH_AVERAGE = _row(49.7, 48.9, 67.4, 23.3, verified=(True, True, True, True))
