"""Paths of the bundled demo data (`orca_jax/demo_data/`), written by `python -m orca_jax.data.demo_tasks`.

Nothing here reads the files; importing this module is free.
"""

from __future__ import annotations

import os

DEMO_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo_data")
# LLaMA-layout SentencePiece model (unk=0, bos=1, eos=2; pad id = its vocabulary size).
DEMO_TOKENIZER_PATH = os.path.join(DEMO_DATA_DIR, "tokenizer.model")
# BBH-format held-out evaluation set: one {task}.json per task, {"examples": [{"input", "target"}]}.
DEMO_BBH_EVAL_DIR = os.path.join(DEMO_DATA_DIR, "bbh_eval")
DEMO_MANIFEST_PATH = os.path.join(DEMO_DATA_DIR, "MANIFEST.json")

# OpenOrca-schema training files: {dataset}_{split}.parquet.
DEMO_DATASETS = ("terse", "explained", "answer_only")
DEMO_SPLITS = ("train", "validation")


def demo_file(dataset: str, split: str) -> str:
    """Path of one bundled OpenOrca-schema file, e.g. demo_file('explained', 'train').

    'terse': stage-one rows (short answers, the ChatGPT stand-in), all training queries.
    'explained': stage-two rows (step-by-step answers, the GPT-4 stand-in), a subset of them.
    'answer_only': the stage-two queries with the terse answers (ablation).
    """
    if dataset not in DEMO_DATASETS or split not in DEMO_SPLITS:
        raise ValueError(f"no demo file for dataset={dataset!r} split={split!r}")
    return os.path.join(DEMO_DATA_DIR, f"flan_demo_{dataset}_{split}.parquet")
