"""The model card: what a checkpoint needs to be used as it was trained, written beside every one.

`<dir>/model_card.json` sits in a stage run directory (written by the trainer), a converted
directory (`python -m orca_jax.convert import_hf`) and a Hugging Face export (`export_hf`)::

    {"format": 1,
     "created_by": "orca_jax.train",
     "model_config": {...LlamaConfig fields...},
     "tokenizer": {"path": "...", "kind": "huggingface", "sha256": "...",
                   "vocab_size": 49152, "bos_id": null, "eos_id": 2, "pad_id": 2},
     "chat_template": {"name": "chatml", "omit_empty_system": true,
                       "empty_system_example": "<|im_start|>user\\n{user}<|im_end|>\\n<|im_start|>assistant\\n"}}

A relative tokenizer path is relative to the card's directory ("." for a converted or exported
directory that holds the tokenizer files). Readers: `python -m orca_jax.evaluate` (tokenizer
and chat template, unless given), `import_hf` (chat template of an exported directory) and
`export_hf` (tokenizer and chat template). No TensorFlow, no gin: this module is imported by
orca_jax.training.checkpoints, which must import after gin is locked.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
from etils import epath

from orca_jax.models import LlamaConfig

MODEL_CARD_FILE = "model_card.json"
CARD_FORMAT = 1


def template_record(name: str, omit_empty_system: bool) -> dict[str, Any]:
    """The card's chat_template entry: its name and how an empty system message renders."""
    from orca_jax.data import prompts  # registers gin configurables: not at import time

    example = prompts.get_template(name).render("", "{user}", omit_empty_system=omit_empty_system)
    return {"name": name, "omit_empty_system": bool(omit_empty_system), "empty_system_example": example}


def tokenizer_record(tokenizer: Any, path: str) -> dict[str, Any]:
    """The card's tokenizer entry for a loaded tokenizer (orca_jax.data.tokenizer) stored at `path`."""
    return {
        "path": path,
        "kind": tokenizer.kind,
        "sha256": tokenizer.sha256,
        "vocab_size": tokenizer.vocab_size,
        "bos_id": tokenizer.bos_id,
        "eos_id": tokenizer.eos_id,
        "pad_id": tokenizer.pad_id,
    }


def build_card(
    config: LlamaConfig,
    *,
    tokenizer: Any = None,
    tokenizer_path: str | None = None,
    chat_template: dict[str, Any] | None = None,
    created_by: str = "orca_jax.train",
) -> dict[str, Any]:
    """A model card dict; `tokenizer`/`chat_template` (a template_record) None record that there was none
    (synthetic data)."""
    return {
        "format": CARD_FORMAT,
        "created_by": created_by,
        "model_config": dataclasses.asdict(config),
        "tokenizer": None if tokenizer is None else tokenizer_record(tokenizer, tokenizer_path or tokenizer.path),
        "chat_template": chat_template,
    }


def card_from_iterator(config: LlamaConfig, iterator: Any) -> dict[str, Any]:
    """The card of a training run fed by `iterator` (the data pipeline's, or synthetic batches)."""
    tokenizer = getattr(iterator, "tokenizer", None)
    settings = iterator.state_dict().get("config", {}) if tokenizer is not None else {}
    path = None if tokenizer is None else tokenizer.path
    path = path if path is None or "://" in path else os.path.abspath(path)
    template = settings.get("template")
    chat_template = None if template is None else template_record(template, settings.get("omit_empty_system", True))
    return build_card(config, tokenizer=tokenizer, tokenizer_path=path, chat_template=chat_template)


def save_card(directory: str, card: dict[str, Any]) -> None:
    """Write `<directory>/model_card.json` (primary host only)."""
    if jax.process_index() != 0:
        return
    path = epath.Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_CARD_FILE).write_text(json.dumps(card, indent=2))


def find_card(checkpoint: str) -> epath.Path | None:
    """The card file of a run, step (`<run>/checkpoints/<step>`) or converted directory, or None."""
    path = epath.Path(checkpoint)
    for candidate in (path, path.parent.parent):
        if (candidate / MODEL_CARD_FILE).exists():
            return candidate / MODEL_CARD_FILE
    return None


def load_card(checkpoint: str) -> dict[str, Any] | None:
    """The model card recorded with `checkpoint`, or None when there is none."""
    file = find_card(checkpoint)
    if file is None:
        return None
    try:
        card = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"model card {file} is not valid JSON: {e}") from None
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"model card {file} has format {card.get('format')!r}; this code reads {CARD_FORMAT}")
    card["directory"] = os.fspath(file.parent)
    return card


def card_tokenizer_path(card: dict[str, Any]) -> str | None:
    """The card's tokenizer path, relative ones resolved against the card's directory."""
    entry = card.get("tokenizer")
    if not entry:
        return None
    path = entry["path"]
    if "://" in path or os.path.isabs(path):
        return path
    if "://" in card["directory"]:
        return os.fspath(epath.Path(card["directory"]) / path)
    return os.path.normpath(os.path.join(card["directory"], path))


def copy_tokenizer(source: str, out_dir: str) -> Any:
    """Copy the tokenizer at `source` (a tokenizer file, or a directory such as a Hugging Face model's)
    into `out_dir`; the loaded tokenizer, or None when `source` is a directory without one."""
    from orca_jax.data.tokenizer import load_tokenizer, tokenizer_kind

    try:
        tokenizer_kind(source)
    except ValueError:
        return None
    tokenizer = load_tokenizer(source)
    out = epath.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in tokenizer.files.items():
        (out / name).write_bytes(content)
    return tokenizer


def copied_card(
    tokenizer_source: str | None,
    out_dir: str,
    config: LlamaConfig,
    chat_template: dict[str, Any] | None,
    created_by: str,
) -> dict[str, Any]:
    """The card of a directory made from another (HF import, HF export): the tokenizer at
    `tokenizer_source` (a tokenizer file or directory; None: none) is copied into `out_dir`
    and recorded there as "."."""
    tokenizer = None if tokenizer_source is None else copy_tokenizer(tokenizer_source, out_dir)
    return build_card(
        config, tokenizer=tokenizer, tokenizer_path=".", chat_template=chat_template, created_by=created_by
    )
