"""Paths of the bundled demo data (`orca_jax/demo_data/`), written by `python -m orca_jax.demo.dataset`.

Nothing here reads the files; importing this module is free (no jax, no TensorFlow).
"""

from __future__ import annotations

import os

DEMO_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo_data")
# LLaMA-layout SentencePiece model (unk=0, bos=1, eos=2; pad id = its vocabulary size).
DEMO_TOKENIZER_PATH = os.path.join(DEMO_DATA_DIR, "tokenizer.model")
# BBH-format held-out evaluation sets: one {task}.json per task, {"examples": [{"input", "target"}]}.
DEMO_BBH_EVAL_DIR = os.path.join(DEMO_DATA_DIR, "bbh_eval")  # same sizes as training queries
DEMO_BBH_OOD_DIR = os.path.join(DEMO_DATA_DIR, "bbh_eval_ood")  # longer chains, more digits
DEMO_MANIFEST_PATH = os.path.join(DEMO_DATA_DIR, "MANIFEST.json")

# OpenOrca-schema training files: flan_demo_{dataset}_{split}.parquet.
DEMO_DATASETS = ("assistant", "expert", "answer_only")
DEMO_SPLITS = ("train", "validation")


def demo_file(dataset: str, split: str) -> str:
    """Path of one bundled OpenOrca-schema file, e.g. demo_file('expert', 'train').

    'assistant': stage-one rows (the ChatGPT stand-in: shorter traces, some wrong answers), all queries.
    'expert': stage-two rows (the GPT-4 stand-in: complete, correct traces), a random 1/5 of them.
    'answer_only': the expert's queries answered with the bare answer (the Vicuna-like baseline).
    """
    if dataset not in DEMO_DATASETS or split not in DEMO_SPLITS:
        raise ValueError(f"no demo file for dataset={dataset!r} split={split!r}")
    return os.path.join(DEMO_DATA_DIR, f"flan_demo_{dataset}_{split}.parquet")
