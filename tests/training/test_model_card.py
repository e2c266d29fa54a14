"""The model card: written beside a trainer run and a converted directory, read back by evaluation."""

import json
import logging
import subprocess
import sys

import gin
import pytest

from orca_jax import evaluate as cli
from orca_jax import gin_utils
from orca_jax.data.tokenizer import load_tokenizer
from orca_jax.demo import files as demo_files
from orca_jax.models import get_preset
from orca_jax.training import model_card, trainer

from trainer_testlib import REPO, TINY_BINDINGS, subprocess_env


def test_card_round_trip_and_lookup_from_a_step_dir(tmp_path):
    tokenizer = load_tokenizer(demo_files.DEMO_TOKENIZER_PATH)
    card = model_card.build_card(
        get_preset("tiny"),
        tokenizer=tokenizer,
        tokenizer_path="tok/tokenizer.model",
        chat_template=model_card.template_record("instruct", omit_empty_system=False),
    )
    model_card.save_card(str(tmp_path), card)
    step_dir = tmp_path / "checkpoints" / "7"
    step_dir.mkdir(parents=True)
    loaded = model_card.load_card(str(step_dir))
    assert loaded["model_config"] == card["model_config"] and loaded["directory"] == str(tmp_path)
    assert loaded["tokenizer"]["sha256"] == tokenizer.sha256 and loaded["tokenizer"]["bos_id"] == 1
    assert model_card.card_tokenizer_path(loaded) == str(tmp_path / "tok" / "tokenizer.model")
    assert loaded["chat_template"] == {
        "name": "instruct",
        "omit_empty_system": False,
        "empty_system_example": "### System:\n\n\n### User:\n{user}\n\n### Assistant:\n",
    }
    assert model_card.template_record("chatml", True)["empty_system_example"].startswith("<|im_start|>user\n")
    assert model_card.load_card(str(tmp_path / "elsewhere")) is None


def test_bad_card_is_a_clear_error(tmp_path):
    (tmp_path / model_card.MODEL_CARD_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="model_card.json has format 99"):
        model_card.load_card(str(tmp_path))


@pytest.mark.slow
def test_instruct_checkpoint_is_evaluated_with_instruct(tmp_path, clean_gin, caplog):
    """Train two steps with the non-default template (and the empty system block kept); `python -m
    orca_jax.evaluate`, in a fresh process, with no template or tokenizer flag renders with both."""
    bindings = [
        f"MODEL_DIR = '{tmp_path}'",
        *TINY_BINDINGS,
        "STAGE1_MIXTURE_OR_TASK_NAME = 'orca_demo_stage1_assistant'",
        "STAGE1_TRAIN_STEPS = 2",
        "RunConfig.stages = ('stage1',)",
        "render_prompt.template = 'instruct'",
        "render_prompt.omit_empty_system = False",
    ]
    gin_utils.parse_gin(["runs/tiny_cpu.gin"], bindings)
    trainer.run_stages(*trainer.configs_from_gin())
    stage = tmp_path / "stage1"
    card = json.loads((stage / model_card.MODEL_CARD_FILE).read_text())
    assert card["chat_template"] == model_card.template_record("instruct", omit_empty_system=False)
    assert card["created_by"] == "orca_jax.train"
    assert card["tokenizer"]["sha256"] == load_tokenizer(demo_files.DEMO_TOKENIZER_PATH).sha256
    assert card["model_config"]["vocab_size"] == get_preset("tiny").vocab_size
    gin.clear_config()

    common = [
        f"--checkpoint={stage}",
        "--bbh_format_dir=demo={demo_data_dir}/bbh_eval",
        "--benchmarks",
        "demo",
        "--tasks",
        "navigate",
        "--max_examples_per_task=2",
        "--max_new_tokens=2",
        "--batch_size=2",
        "--gin.EvalConfig.mesh_shape=None",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "orca_jax.evaluate", *common, f"--output_dir={tmp_path / 'eval'}"],
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "chat template instruct from the model card" in result.stderr
    settings = json.loads((tmp_path / "eval" / "results.json").read_text())["settings"]
    assert settings["template"] == "instruct" and settings["omit_empty_system"] is False
    assert settings["tokenizer"]["path"] == demo_files.DEMO_TOKENIZER_PATH
    rows = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:  # Orca's empty system message #1, its block kept as trained
        assert row["prompt"].startswith("### System:\n\n\n### User:\n") and row["prompt"].endswith("### Assistant:\n")
        assert "<|im_start|>" not in row["prompt"]

    with caplog.at_level(logging.WARNING, logger="orca_jax.evaluation.runner"):
        assert cli.main([*common, f"--output_dir={tmp_path / 'eval2'}", "--template=chatml"]) == 0
    assert "template=chatml overrides the checkpoint's chat template instruct" in caplog.text
    prompt = json.loads((tmp_path / "eval2" / "predictions.jsonl").read_text().splitlines()[0])["prompt"]
    assert prompt.startswith("<|im_start|>system\n<|im_end|>\n<|im_start|>user\n")
