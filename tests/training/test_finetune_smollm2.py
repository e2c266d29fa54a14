"""A real fine-tune: SmolLM2 (converted, its own tokenizer) trained through `python -m orca_jax.train`
on OpenOrca-schema rows with runs/smollm2_finetune_cpu.gin, then exported to Hugging Face,
loaded and run in transformers."""

import json
import os
import subprocess
import sys

import pytest

from orca_jax.convert.__main__ import main as convert_main
from orca_jax.testing.hf_reference import CHATML_JINJA
from orca_jax.training.metrics import read_metrics

from trainer_testlib import REPO, subprocess_env

pytestmark = pytest.mark.torch

QUESTION = "What is 17 + 25?\nOptions:\n(A) 42\n(B) 32"
RESPONSE = "First, 17 + 25 = 42.\nSo the answer is (A)."
STEPS = 5


def _write_rows(path):
    """Eight OpenOrca-schema rows, two per FLAN sub-collection, all the same query: every batch is alike."""
    with open(path, "w") as f:
        for i, prefix in enumerate(["cot", "niv", "t0", "flan"] * 2):
            row = {"id": f"{prefix}.{i}", "system_prompt": "", "question": QUESTION, "response": RESPONSE}
            f.write(json.dumps(row) + "\n")


def _response_loss(model_dir, tokenizer):
    """Mean next-token loss of RESPONSE (+ <|im_end|>) after the ChatML prompt, in transformers (fp32)."""
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": QUESTION}], chat_template=CHATML_JINJA, add_generation_prompt=True, tokenize=True
    )["input_ids"]
    response = tokenizer(RESPONSE + "<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + response])
    labels = torch.tensor([[-100] * len(prompt) + response])
    with torch.no_grad():
        loss = float(model(ids, labels=labels).loss)
        generated = model.generate(ids[:, : len(prompt)], max_new_tokens=8, do_sample=False)
    return loss, tokenizer.decode(generated[0, len(prompt) :])


def test_finetune_smollm2_then_export(smollm2_converted_dir, smollm2_hf_dir, tmp_path):
    import transformers

    rows = tmp_path / "rows.jsonl"
    _write_rows(rows)
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "orca_jax.train",
        "--gin_file=runs/smollm2_finetune_cpu.gin",
        f"--gin.MODEL_DIR={model_dir}",
        f"--gin.INIT_FROM={smollm2_converted_dir}",
        f"--gin.orca_teacher_patterns.gpt4=['{rows}']",
        f"--gin.STAGE1_TRAIN_STEPS={STEPS}",
        "--gin.SEQUENCE_LENGTH=64",
        "--gin.BATCH_SIZE=2",
        "--gin.OptimizerConfig.warmup_steps=1",
    ]
    env = subprocess_env(XLA_FLAGS="", JAX_PLATFORMS="cpu")  # one CPU device, as a user runs it
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]

    stage = model_dir / "stage1"
    losses = [r["loss"] for r in read_metrics(str(stage))]
    assert len(losses) == STEPS and losses[-1] < 0.7 * losses[0], losses
    card = json.loads((stage / "model_card.json").read_text())
    assert card["tokenizer"]["kind"] == "huggingface" and card["tokenizer"]["bos_id"] is None
    assert card["tokenizer"]["path"] == str(smollm2_converted_dir)

    hf_out = tmp_path / "hf"
    assert (
        convert_main(
            [
                "export_hf",
                f"--checkpoint={stage / 'checkpoints' / str(STEPS)}",
                f"--out_dir={hf_out}",
                f"--hf_config={smollm2_converted_dir / 'hf_config.json'}",
            ]
        )
        == 0
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(hf_out))  # export copies the card's tokenizer
    base_loss, _ = _response_loss(str(smollm2_hf_dir), tokenizer)
    tuned_loss, text = _response_loss(str(hf_out), tokenizer)
    assert tuned_loss < base_loss, (tuned_loss, base_loss)
    assert text.strip(), text
    assert os.path.exists(hf_out / "config.json")
